// `tenancy run` benchmark (issue 15), side by side in one run: `tenancy run --site all
// --concurrency 4 -- true` over 200 SQLite sites against `xargs -P4` running `true` 200 times.
// Target: ours ≤ 1.3× xargs. Where the time goes, also side by side: a plain Node script
// spawning `true` 200 times, 4 at a time, with child_process.spawn and its output piped (what
// any Node program pays to start a child: libuv forks the whole Node process and waits for the
// exec, on the main thread, so the forks never overlap); the same script with `detached: true`
// (each child in a session and process group of its own, as tenancy runs them so that a timeout
// or Ctrl-C stops a command with everything it started); `tenancy run` on one site (the CLI's
// own start, registry and selection) and `node -e 0`. CPU time (user + system of the process and
// its children) is reported beside wall time: steadier on a busy machine. Prints medians;
// writes bench/results/fleet-run.json. The sites are made once (in-process, setup only) and
// every round reuses them.
//
//   node bench/fleet-run.mjs [--quick]
import { execFileSync, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { BIN, childCpuMs, lib, median, reporter, writeResults } from './common.mjs'

const QUICK = process.argv.includes('--quick')
const ROUNDS = QUICK ? 2 : 3
const SITES = 200
const CONCURRENCY = 4

/** Runs a program to completion: its wall and CPU milliseconds (throws with its stderr when it fails). */
const timed = (command, args, options = {}) => {
  const cpu = childCpuMs()
  const started = process.hrtime.bigint()
  const r = spawnSync(command, args, { stdio: ['pipe', 'ignore', 'pipe'], ...options })
  const ms = Number(process.hrtime.bigint() - started) / 1e6
  if (r.status !== 0) throw new Error(`${command} ${args.join(' ')} failed (${r.status}): ${r.stderr}`)
  return { ms, cpu: cpu === undefined ? undefined : childCpuMs() - cpu }
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

// The Node side: the same 200 children, 4 at a time, each one's stdout and stderr read to the end.
const nodeScript = join(bench, 'spawn-true.mjs')
writeFileSync(
  nodeScript,
  `import { spawn } from 'node:child_process'
let left = ${SITES}
const one = () =>
  new Promise((resolve, reject) => {
    const child = spawn('true', [], { stdio: ['ignore', 'pipe', 'pipe'], detached: process.argv[2] === 'detached' })
    child.stdout.on('data', () => {})
    child.stderr.on('data', () => {})
    child.on('error', reject)
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error('true exited ' + code))))
  })
const lane = async () => {
  while (left-- > 0) await one()
}
await Promise.all(Array.from({ length: ${CONCURRENCY} }, lane))
`,
)

const xargsInput = `${names.join('\n')}\n`
const sides = {
  ours: () =>
    timed(process.execPath, [BIN, 'run', '--site', 'all', '--concurrency', String(CONCURRENCY), '--', 'true'], {
      cwd: bench,
    }),
  xargs: () => timed('xargs', ['-P', String(CONCURRENCY), '-n', '1', 'true'], { input: xargsInput }),
  node: () => timed(process.execPath, [nodeScript]),
  detached: () => timed(process.execPath, [nodeScript, 'detached']),
  one: () => timed(process.execPath, [BIN, 'run', '--site', names[0], '--', 'true'], { cwd: bench }),
  bare: () => timed(process.execPath, ['-e', '0']),
}
// One warm-up of each, so the first round does not pay for a cold page cache.
for (const side of Object.values(sides)) side()
const runs = Object.fromEntries(Object.keys(sides).map((k) => [k, []]))
// Alternated round by round so machine noise hits every side alike.
for (let i = 0; i < ROUNDS; i++) for (const [name, side] of Object.entries(sides)) runs[name].push(side())

const wall = (name) => median(runs[name].map((r) => r.ms))
const cpu = (name) => (runs[name][0].cpu === undefined ? undefined : median(runs[name].map((r) => r.cpu)))

const { results, line } = reporter(78)
/** One report line: side `a` against side `b`, wall medians, the CPU medians beside them. */
const pair = (name, a, b, target) => {
  const [ca, cb] = [cpu(a), cpu(b)]
  const cpuText = ca === undefined ? '' : `; CPU ${ca.toFixed(0)} vs ${cb.toFixed(0)} ms = ${(ca / cb).toFixed(2)}x`
  const figure = line(name, wall(a), wall(b), target, cpuText)
  return ca === undefined ? figure : Object.assign(figure, { cpu_ours_ms: +ca.toFixed(0), cpu_raw_ms: +cb.toFixed(0) })
}
console.log(
  `tenancy run -- true over ${SITES} SQLite sites, ${CONCURRENCY} at a time (whole processes; ${ROUNDS} rounds, medians; ` +
    `node ${process.version}, ${execFileSync('nproc').toString().trim()} cores)\n`,
)
const about = { sites: SITES, concurrency: CONCURRENCY, rounds: ROUNDS, setup_ms: +setupMs.toFixed(0) }
const what = `run --site all --concurrency ${CONCURRENCY} -- true`
Object.assign(pair(`${what} vs xargs -P${CONCURRENCY} true`, 'ours', 'xargs', '<= 1.3x'), about)
pair(`  Node's part: a Node script spawning true (pipes) vs xargs`, 'node', 'xargs', 'info')
pair(`  the process groups: that script with detached: true vs without`, 'detached', 'node', 'info')
pair(`  tenancy's part: the same run vs the detached script`, 'ours', 'detached', 'info')
pair('  the CLI alone: run --site S -- true (one site) vs node -e 0', 'one', 'bare', 'info')
writeResults('fleet-run.json', results)
rmSync(bench, { recursive: true, force: true })
