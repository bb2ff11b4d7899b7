// execute benchmark (issue 15), side by side in one run: `tenancy execute count.mjs --site all`
// over 1,000 SQLite sites, the module counting one table's rows through the Kysely it is handed,
// against a raw better-sqlite3 loop opening each site's file, running the same query and closing
// it. Target: ours ≤ 1.5× the raw loop. Both sides are whole processes (node started, results
// printed), as an operator runs either; the raw loop in this process is reported too.
// Writes bench/results/fleet-execute.json.
//
//   node bench/fleet-execute.mjs [--quick]
import { spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { ROOT, cloneSites, lib, median, newBench } from './common.mjs'

const BIN = join(ROOT, 'bin', 'tenancy.js')
const quick = process.argv.includes('--quick')
const SITES = quick ? 200 : 1000
const ROUNDS = quick ? 3 : 7
const ROWS = 100
const QUERY = 'select count(*) as n from customers'

const bench = newBench('tenancy-bench-execute-')
const env = { ...process.env, TENANCY_ADMIN_PASSWORD: 'bench-pw', NO_COLOR: '1' }
{
  const b = await lib.openBench({ cwd: bench, env })
  await lib.newSite(b, { site: 'template.localhost', installApps: ['tenant_ops_nohook'] })
  await b.close()
  const db = new Database(join(bench, 'sites', 'template.localhost', 'db.sqlite'))
  const insert = db.prepare(
    "insert into customers (id, customer_name, status, created_at, updated_at) values (?, ?, 'active', ?, ?)",
  )
  db.transaction(() => {
    for (let i = 0; i < ROWS; i++) insert.run(`CUST-${i}`, `Customer ${i}`, '2026-01-01', '2026-01-01')
  })()
  db.close()
}
const rawDir = mkdtempSync(join(tmpdir(), 'tenancy-rawexec-'))
const names = Array.from({ length: SITES }, (_, i) => `e${i}.localhost`)
cloneSites(bench, 'template.localhost', names, rawDir)

writeFileSync(
  join(bench, 'count.mjs'),
  `export default async ({ db }) =>
  Number((await db.selectFrom('customers').select(db.fn.countAll().as('n')).executeTakeFirstOrThrow()).n)
`,
)
// The raw side as an operator would write it: the same query on every file, one line a site.
const rawScript = join(rawDir, 'raw-count.mjs')
writeFileSync(
  rawScript,
  `import Database from ${JSON.stringify(join(ROOT, 'node_modules', 'better-sqlite3', 'lib', 'index.js'))}
const names = ${JSON.stringify(names)}
const lines = []
for (const name of names) {
  const db = new Database(${JSON.stringify(rawDir)} + '/' + name + '/db.sqlite', { fileMustExist: true })
  lines.push(name + ': ' + JSON.stringify(db.prepare(${JSON.stringify(QUERY)}).get().n))
  db.close()
}
process.stdout.write(lines.join('\\n') + '\\n')
`,
)

const timed = (args, cwd) => {
  const started = process.hrtime.bigint()
  const r = spawnSync(process.execPath, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 })
  const ms = Number(process.hrtime.bigint() - started) / 1e6
  if (r.status !== 0) throw new Error(`${args.join(' ')} failed (${r.status}): ${r.stderr}`)
  return { ms, stdout: r.stdout.toString() }
}
const rawInProcess = () => {
  const started = performance.now()
  for (const name of names) {
    const db = new Database(join(rawDir, name, 'db.sqlite'), { fileMustExist: true })
    db.prepare(QUERY).get()
    db.close()
  }
  return performance.now() - started
}

// One run of each first, to check both give every site's count (and to warm the page cache).
const check = timed([BIN, 'execute', 'count.mjs', '--site', 'all', '--json'], bench)
const parsed = JSON.parse(check.stdout)
if (parsed.succeeded !== SITES || parsed.sites.some((s) => s.result !== ROWS))
  throw new Error(`execute did not count ${ROWS} rows on each of ${SITES} sites`)
if (timed([rawScript], rawDir).stdout.trim().split('\n').length !== SITES) throw new Error('the raw loop missed sites')

const ours = []
const raw = []
const rawHere = []
for (let i = 0; i < ROUNDS; i++) {
  // Alternated round by round so machine noise hits both alike.
  ours.push(timed([BIN, 'execute', 'count.mjs', '--site', 'all'], bench).ms)
  raw.push(timed([rawScript], rawDir).ms)
  rawHere.push(rawInProcess())
}
const nodeStart = median(Array.from({ length: ROUNDS }, () => timed(['-e', '0'], rawDir).ms))
const result = {
  sites: SITES,
  rounds: ROUNDS,
  ours_ms: +median(ours).toFixed(0),
  raw_ms: +median(raw).toFixed(0),
  ratio: +(median(ours) / median(raw)).toFixed(2),
  target: '≤ 1.5×',
  raw_in_process_ms: +median(rawHere).toFixed(0),
  ratio_to_raw_in_process: +(median(ours) / median(rawHere)).toFixed(2),
  node_startup_ms: +nodeStart.toFixed(0),
}
result.verdict = result.ratio <= 1.5 ? 'met' : 'missed'
console.log(
  `execute counting rows over ${SITES} SQLite sites: tenancy execute ${result.ours_ms} ms, ` +
    `raw better-sqlite3 loop ${result.raw_ms} ms (both whole processes), ratio ${result.ratio} ` +
    `(target ${result.target}: ${result.verdict})\n` +
    `  the raw loop alone in this process: ${result.raw_in_process_ms} ms (ratio ${result.ratio_to_raw_in_process}); ` +
    `node -e 0: ${result.node_startup_ms} ms`,
)
mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true })
writeFileSync(join(ROOT, 'bench', 'results', 'fleet-execute.json'), `${JSON.stringify(result, null, 2)}\n`)
rmSync(rawDir, { recursive: true, force: true })
rmSync(bench, { recursive: true, force: true })
