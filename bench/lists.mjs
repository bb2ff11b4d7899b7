// Long listings (issue 18, SPEC §11), the whole process each time, on an SQLite registry filled
// by SQL (bench/seed-rows.mjs):
//   - `tenant list --limit 100` with 100,000 tenants vs `tenant list` with 100 tenants, round
//     by round so machine noise hits both alike (medians of 5). Target: ≤ 1.3× (a page costs
//     the same whatever the registry's size).
//   - peak RSS of `tenant list --with-pending --json`, all 100,000 tenants (GNU time's maximum
//     resident set size). Target: ≤ 150 MB. For information, the same for humans (piped).
// Prints figures and ratios; writes bench/results/lists.json.
//
//   node bench/lists.mjs [--quick]
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { BIN, childCpuMs, median, newBench, record, reporter, run, writeResults } from './common.mjs'
import { seedTenants } from './seed-rows.mjs'

const ROUNDS = 5
const TENANTS = 100_000
const MEMORY_TARGET_MB = 150
const env = { ...process.env, NO_COLOR: '1' }
const { results, line } = reporter(70)

/** Wall-clock and CPU milliseconds of one `tenancy ARGS` process, which must succeed. */
function timeProcess(args, cwd) {
  const cpu = childCpuMs()
  const started = process.hrtime.bigint()
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd, env, stdio: ['ignore', 'ignore', 'pipe'] })
  const ms = Number(process.hrtime.bigint() - started) / 1e6
  if (r.status !== 0) throw new Error(`tenancy ${args.join(' ')} failed: ${r.stderr}`)
  return { ms, cpu: cpu === undefined ? undefined : childCpuMs() - cpu }
}

/** Peak resident memory (MB) of one `tenancy ARGS` process, its output thrown away. */
function peakMb(args, cwd) {
  const report = join(mkdtempSync(join(tmpdir(), 'tenancy-bench-time-')), 'time.txt')
  run('/usr/bin/time', ['-f', '%M', '-o', report, process.execPath, BIN, ...args], { cwd, env })
  const kb = Number(readFileSync(report, 'utf8').trim().split('\n').pop())
  rmSync(join(report, '..'), { recursive: true, force: true })
  return kb / 1024
}

/** A bench whose registry holds `count` seeded tenants, each with its site's row. */
async function benchOf(count) {
  const bench = newBench('tenancy-bench-lists-')
  run(process.execPath, [BIN, 'tenant', 'list'], { cwd: bench, env })
  await seedTenants(bench, count, { sites: true })
  return bench
}

console.log(
  `tenancy listings (${ROUNDS} rounds, medians; node ${process.version}, ${execFileSync('nproc').toString().trim()} cores)\n`,
)
const large = await benchOf(TENANTS)
const small = await benchOf(100)

const page = ['tenant', 'list', '--limit', '100']
const whole = ['tenant', 'list']
timeProcess(page, large)
timeProcess(whole, small)
const a = []
const b = []
for (let i = 0; i < ROUNDS; i++) {
  a.push(timeProcess(page, large))
  b.push(timeProcess(whole, small))
}
const cpu = (runs) => median(runs.map((r) => r.cpu))
const figure = line(
  `tenant list --limit 100 (${TENANTS.toLocaleString('en-US')} tenants) vs tenant list (100)`,
  median(a.map((r) => r.ms)),
  median(b.map((r) => r.ms)),
  '<= 1.3x',
  a[0].cpu === undefined ? '' : `; CPU ${cpu(a)} vs ${cpu(b)} ms`,
)
if (a[0].cpu !== undefined) figure.cpu = { ours_ms: cpu(a), raw_ms: cpu(b), ratio: +(cpu(a) / cpu(b)).toFixed(2) }

if (!existsSync('/usr/bin/time')) console.log('peak memory: /usr/bin/time (GNU time) is not installed; skipped')
else {
  for (const [name, args, target] of [
    [`tenant list --json, all ${TENANTS.toLocaleString('en-US')}: peak RSS`, ['--with-pending', '--json'], true],
    [`tenant list piped (humans), all ${TENANTS.toLocaleString('en-US')}: peak RSS`, ['--with-pending'], false],
  ]) {
    const mb = peakMb(['tenant', 'list', ...args], large)
    const verdict = target ? (mb <= MEMORY_TARGET_MB ? 'met' : 'MISSED') : ''
    results[name] = {
      ours_mb: +mb.toFixed(1),
      target: target ? `<= ${MEMORY_TARGET_MB} MB` : 'info',
      verdict,
    }
    record({ figure: name, tenancy: mb, unit: 'MB', target: results[name].target })
    console.log(
      `${name.padEnd(70)} ${mb.toFixed(1).padStart(8)} MB  (target ${target ? `<= ${MEMORY_TARGET_MB} MB: ${verdict}` : 'info'})`,
    )
  }
}

for (const bench of [large, small]) rmSync(bench, { recursive: true, force: true })
writeResults('lists.json', results)
