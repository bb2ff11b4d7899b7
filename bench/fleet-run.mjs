// `tenancy run` benchmark (issue 15), side by side in one run: `tenancy run --site all
// --concurrency 4 -- true` over 200 SQLite sites against `xargs -P4` running `true` 200 times.
// Target: ours ≤ 1.3× xargs. Also times `tenancy run` on one site (the CLI's own start, which the
// ratio includes). Prints medians and the ratio; writes bench/results/fleet-run.json. The sites
// are made once (in-process, setup only) and every round reuses them.
//
//   node bench/fleet-run.mjs [--quick]
import { spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ROOT, lib, median } from './common.mjs'

const BIN = join(ROOT, 'bin', 'tenancy.js')
const QUICK = process.argv.includes('--quick')
const ROUNDS = QUICK ? 3 : 7
const SITES = 200
const CONCURRENCY = 4

const run = (command, args, options = {}) => {
  const started = process.hrtime.bigint()
  const r = spawnSync(command, args, { stdio: ['pipe', 'ignore', 'pipe'], ...options })
  const ms = Number(process.hrtime.bigint() - started) / 1e6
  if (r.status !== 0) throw new Error(`${command} ${args.join(' ')} failed (${r.status}): ${r.stderr}`)
  return ms
}

const bench = mkdtempSync(join(tmpdir(), 'tenancy-bench-fleet-run-'))
lib.initBench(bench, { withExampleApps: false })
const names = Array.from({ length: SITES }, (_, i) => `s${String(i).padStart(3, '0')}.localhost`)
const setupStarted = performance.now()
await lib.usingBench({ config: join(bench, 'tenancy.config.json') }, async (b) => {
  for (let i = 0; i < names.length; i += 8)
    await Promise.all(names.slice(i, i + 8).map((site) => lib.newSite(b, { site })))
})
const setupMs = performance.now() - setupStarted

const tenancyArgs = [BIN, 'run', '--site', 'all', '--concurrency', String(CONCURRENCY), '--', 'true']
const oneSiteArgs = [BIN, 'run', '--site', names[0], '--', 'true']
const xargsInput = `${names.join('\n')}\n`
// One warm-up of each, so the first round does not pay for a cold page cache.
run(process.execPath, tenancyArgs, { cwd: bench })
run('xargs', ['-P', String(CONCURRENCY), '-n', '1', 'true'], { input: xargsInput })

const ours = []
const raw = []
const start = []
for (let i = 0; i < ROUNDS; i++) {
  ours.push(run(process.execPath, tenancyArgs, { cwd: bench }))
  raw.push(run('xargs', ['-P', String(CONCURRENCY), '-n', '1', 'true'], { input: xargsInput }))
  start.push(run(process.execPath, oneSiteArgs, { cwd: bench }))
}
const result = {
  sites: SITES,
  concurrency: CONCURRENCY,
  rounds: ROUNDS,
  setup_ms: +setupMs.toFixed(0),
  ours_ms: +median(ours).toFixed(0),
  raw_ms: +median(raw).toFixed(0),
  one_site_ms: +median(start).toFixed(0),
  ratio: +(median(ours) / median(raw)).toFixed(2),
  target: '≤ 1.3×',
}
result.verdict = result.ratio <= 1.3 ? 'met' : 'missed'
console.log(
  `run -- true over ${SITES} SQLite sites, ${CONCURRENCY} at a time: tenancy run ${result.ours_ms} ms, ` +
    `xargs -P${CONCURRENCY} ${result.raw_ms} ms, ratio ${result.ratio} (target ${result.target}: ${result.verdict}); ` +
    `tenancy run on one site ${result.one_site_ms} ms`,
)
mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true })
writeFileSync(join(ROOT, 'bench', 'results', 'fleet-run.json'), `${JSON.stringify(result, null, 2)}\n`)
rmSync(bench, { recursive: true, force: true })
