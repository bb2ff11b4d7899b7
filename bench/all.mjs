// `npm run bench`: every benchmark script, one after another, each as a child process printing
// its own lines, then ONE table of all their figures (figure, tenancy, raw, ratio, target, met),
// also written to bench/results/latest.json with the date, Node's version, the cores and the
// load average (before, after, and as each script started: the machine may be shared).
//
// The scripts: the known ones in the order below, then any other bench/*.mjs that records
// figures (a new benchmark is picked up by being there and calling `record` or `reporter`, from
// bench/common.mjs); a module there that records nothing (a helper the tests share) is not run.
// `record` appends each figure to the file this driver names in TENANCY_BENCH_RESULTS. A script
// that fails is reported and the others still run; the driver then exits 1.
//
//   node bench/all.mjs [--quick] [--only run,pool]     --quick is passed on to every script
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { availableParallelism, loadavg, tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { formatTable } from './report.mjs'

const BENCH = fileURLToPath(new URL('.', import.meta.url))
const ORDER = [
  'startup',
  'run',
  'hooks',
  'pool',
  'migrate-memory',
  'rename',
  'fleet-run',
  'fleet-execute',
  'fleet-rollback',
  'lists',
  'backup',
  'servers',
  'backup-servers',
  'machines',
]
// Not benchmarks: the shared code and this driver (the raw programs live in bench/raw/).
const NOT_SCRIPTS = new Set(['common', 'report', 'all'])

const args = process.argv.slice(2)
const onlyAt = args.indexOf('--only')
const only = onlyAt >= 0 ? new Set((args[onlyAt + 1] ?? '').split(',').filter(Boolean)) : undefined
const passOn = args.filter((_, i) => onlyAt < 0 || (i !== onlyAt && i !== onlyAt + 1))

const records = (name) => /\b(record|reporter)\(/.test(readFileSync(join(BENCH, `${name}.mjs`), 'utf8'))
const found = readdirSync(BENCH)
  .filter((f) => f.endsWith('.mjs'))
  .map((f) => basename(f, '.mjs'))
  .filter((name) => !NOT_SCRIPTS.has(name) && (ORDER.includes(name) || records(name)))
const known = [...ORDER.filter((s) => found.includes(s)), ...found.filter((s) => !ORDER.includes(s)).sort()]
const scripts = known.filter((s) => !only || only.has(s))
if (only?.size === 0) {
  console.error('--only needs script names, comma-separated: --only run,pool')
  process.exit(2)
}
for (const name of only ?? [])
  if (!known.includes(name)) {
    const why = existsSync(join(BENCH, `${name}.mjs`)) ? 'records no figures' : 'does not exist'
    console.error(`--only: bench/${name}.mjs ${why}; the scripts are ${known.join(', ')}`)
    process.exit(2)
  }

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
