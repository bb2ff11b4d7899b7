// rename-site benchmarks (issue 16), side by side with bare `node -e 0` in the same run,
// round by round so machine noise hits both alike:
//   - `tenancy rename-site OLD NEW` of an SQLite site (tenant_ops installed, no tenant, no
//     backups), the whole process. Target: ≤ 2.5× `node -e 0`.
//   - the same for a tenant's site (`tenant rename`: the API user moves, new keys are issued
//     and the tenant's secret re-encrypted), a site with a backup set (its manifest rewritten
//     and fsynced), and `list-sites` (what every command pays to start and open the registry):
//     for information.
//   - `renameSite()` in-process, to show what the rename itself costs beyond process start.
// Prints medians and ratios; writes bench/results/rename.json.
//
//   node bench/rename.mjs [--quick]
import { execFileSync } from 'node:child_process'
import { rmSync } from 'node:fs'
import { BIN, lib, median, newBench, record, reporter, run, timeNode, writeResults } from './common.mjs'

const quick = process.argv.includes('--quick')
const ROUNDS = quick ? 5 : 9
const env = { ...process.env, NO_COLOR: '1', TENANCY_ADMIN_PASSWORD: 'bench-pw' }
const { results, line } = reporter(70)

/** Wall-clock and CPU milliseconds of one `node ARGS` process, which must succeed. */
const timeProcess = (args, cwd) => timeNode(args, { cwd, env })

/**
 * Medians of `ours()` and `node -e 0`, alternated round by round (after one round of each not
 * counted, which warms the file cache), wall time and CPU time (steadier on a busy machine).
 */
function sideBySide(name, target, ours) {
  ours()
  timeProcess(['-e', '0'])
  const a = []
  const b = []
  for (let i = 0; i < ROUNDS; i++) {
    a.push(ours())
    b.push(timeProcess(['-e', '0']))
  }
  const cpu = a[0].cpu === undefined ? '' : `; CPU ${median(a.map((r) => r.cpu))} vs ${median(b.map((r) => r.cpu))} ms`
  const figure = line(name, median(a.map((r) => r.ms)), median(b.map((r) => r.ms)), target, cpu)
  if (a[0].cpu !== undefined)
    figure.cpu = {
      ours_ms: median(a.map((r) => r.cpu)),
      raw_ms: median(b.map((r) => r.cpu)),
      ratio: +(median(a.map((r) => r.cpu)) / median(b.map((r) => r.cpu))).toFixed(2),
    }
}

/** A site's two names, taken in turn: each call gives [its name now, the other one] and flips. */
function toggler(a, b) {
  let now = a
  return () => {
    const pair = now === a ? [a, b] : [b, a]
    now = pair[1]
    return pair
  }
}

console.log(
  `tenancy rename-site (${ROUNDS} rounds, medians; node ${process.version}, ${execFileSync('nproc').toString().trim()} cores)\n`,
)

const bench = newBench('tenancy-bench-rename-')
const tenancy = (...args) => run(process.execPath, [BIN, ...args], { cwd: bench, env })
tenancy('new-site', 'plain-a.localhost', '--install-app', 'tenant_ops')
tenancy('new-site', 'kept-a.localhost', '--install-app', 'tenant_ops')
tenancy('backup', '--site', 'kept-a.localhost')
tenancy('tenant', 'create', 'acme', '--no-pool')
const plain = toggler('plain-a.localhost', 'plain-b.localhost')
const kept = toggler('kept-a.localhost', 'kept-b.localhost')
const acme = toggler('acme.localhost', 'acme-b.localhost')
sideBySide('rename-site, SQLite site (process) vs node -e 0', '<= 2.5x', () =>
  timeProcess([BIN, 'rename-site', ...plain()], bench),
)
sideBySide('  tenant rename (API user, new keys; process) vs node -e 0', 'info', () =>
  timeProcess([BIN, 'tenant', 'rename', 'acme', '--site', acme()[1]], bench),
)
sideBySide('  rename-site of a site with one backup set (process) vs node -e 0', 'info', () =>
  timeProcess([BIN, 'rename-site', ...kept()], bench),
)
sideBySide('  list-sites (start, open the registry; process) vs node -e 0', 'info', () =>
  timeProcess([BIN, 'list-sites'], bench),
)
{
  const b = await lib.openBench({ cwd: bench, env })
  const ms = []
  for (let i = 0; i < ROUNDS; i++) {
    const started = performance.now()
    await lib.renameSite(b, ...plain())
    ms.push(performance.now() - started)
  }
  await b.close()
  console.log(`${'  renameSite() in-process'.padEnd(70)} ${median(ms).toFixed(1).padStart(8)} ms`)
  results['renameSite() in-process'] = { ours_ms: +median(ms).toFixed(1), target: 'info' }
  record({ figure: '  renameSite() in-process', tenancy: median(ms) })
}
rmSync(bench, { recursive: true, force: true })
writeResults('rename.json', results)
