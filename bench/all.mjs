// `npm run bench`: every benchmark script, one after another, each as a child process printing
// its own lines, then ONE table of all their figures (figure, tenancy, raw, ratio, target, met),
// also written to bench/results/latest.json with the date, Node's version, the cores and the
// load average (before, after, and as each script started: the machine may be shared).
//
// The scripts: the known ones in the order below, then any other bench/*.mjs (a new benchmark
// is picked up by being there); each records its figures with `record` (bench/common.mjs),
// which appends them to the file this driver names in TENANCY_BENCH_RESULTS. A script that
// fails is reported and the others still run; the driver then exits 1.
//
//   node bench/all.mjs [--quick] [--only run,pool]     --quick is passed on to every script
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { availableParallelism, loadavg, tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { formatTable } from './common.mjs'

const BENCH = fileURLToPath(new URL('.', import.meta.url))
const ORDER = [
  'run',
  'hooks',
  'pool',
  'migrate-memory',
  'rename',
  'fleet-run',
  'fleet-execute',
  'fleet-rollback',
  'backup',
  'servers',
  'backup-servers',
  'machines',
]
// Not benchmarks: the shared code and this driver (the raw programs live in bench/raw/).
const NOT_SCRIPTS = new Set(['common', 'all'])

const args = process.argv.slice(2)
const onlyAt = args.indexOf('--only')
const only = onlyAt >= 0 ? new Set((args[onlyAt + 1] ?? '').split(',').filter(Boolean)) : undefined
const passOn = args.filter((_, i) => onlyAt < 0 || (i !== onlyAt && i !== onlyAt + 1))

const found = readdirSync(BENCH)
  .filter((f) => f.endsWith('.mjs'))
  .map((f) => basename(f, '.mjs'))
  .filter((name) => !NOT_SCRIPTS.has(name))
const scripts = [...ORDER.filter((s) => found.includes(s)), ...found.filter((s) => !ORDER.includes(s)).sort()].filter(
  (s) => !only || only.has(s),
)
if (only) for (const name of only) if (!scripts.includes(name)) throw new Error(`--only: no bench/${name}.mjs`)

const scratch = mkdtempSync(join(tmpdir(), 'tenancy-bench-all-'))
const resultsFile = join(scratch, 'figures.jsonl')
const load = () => loadavg().map((x) => +x.toFixed(2))
const started = { at: new Date(), load: load() }
const ran = []
for (const name of scripts) {
  console.log(`\n== bench/${name}.mjs (load average ${load().join(' ')})\n`)
  const t = performance.now()
  const atLoad = load()
  const r = spawnSync(process.execPath, [join(BENCH, `${name}.mjs`), ...passOn], {
    stdio: 'inherit',
    env: { ...process.env, TENANCY_BENCH_RESULTS: resultsFile },
  })
  const seconds = +((performance.now() - t) / 1000).toFixed(1)
  const status = r.status === 0 ? 'ok' : `failed (${r.signal ?? `exit ${r.status}`})`
  ran.push({ script: name, status, seconds, load_at_start: atLoad })
  if (r.status !== 0) console.log(`bench/${name}.mjs ${status}`)
}

const figures = existsSync(resultsFile)
  ? readFileSync(resultsFile, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l))
  : []
rmSync(scratch, { recursive: true, force: true })
const ended = { at: new Date(), load: load() }
const minutes = (ended.at - started.at) / 60_000
const missed = figures.filter((f) => f.met === false).length
const met = figures.filter((f) => f.met === true).length
console.log(
  `\n== all figures (${figures.length}; ${met} targets met, ${missed} missed; ${minutes.toFixed(1)} min; ` +
    `node ${process.version}, ${availableParallelism()} cores, load average ${started.load.join(' ')} at the start, ` +
    `${ended.load.join(' ')} at the end)\n`,
)
console.log(formatTable(figures))
for (const r of ran.filter((r) => r.status !== 'ok')) console.log(`\nbench/${r.script}.mjs ${r.status}`)

mkdirSync(join(BENCH, 'results'), { recursive: true })
writeFileSync(
  join(BENCH, 'results', 'latest.json'),
  `${JSON.stringify(
    {
      at: started.at.toISOString(),
      node: process.version,
      cores: availableParallelism(),
      load_average: { start: started.load, end: ended.load },
      minutes: +minutes.toFixed(1),
      quick: passOn.includes('--quick'),
      scripts: ran,
      figures,
    },
    null,
    2,
  )}\n`,
)
process.exitCode = ran.every((r) => r.status === 'ok') ? 0 : 1
