// execute benchmark (issue 15), side by side in one run: `tenancy execute count.mjs --site all`
// over 1,000 SQLite sites, the module counting one table's rows through the Kysely it is handed,
// against a raw better-sqlite3 loop opening each site's file, running the same query and closing
// it. Target: ours ≤ 1.5× the raw loop. Both sides are whole processes (node started, results
// printed), as an operator runs either. Also reported: CPU time (steadier than wall time on a busy
// machine), a run over one site and the cost of each further site (where the time goes), the
// module written with the sql tag, and the raw loop inside this process.
// Writes bench/results/fleet-execute.json.
//
//   node bench/fleet-execute.mjs [--quick]
import { spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { ROOT, childCpuMs, cloneSites, lib, median, newBench, record } from './common.mjs'

const BIN = join(ROOT, 'bin', 'tenancy.js')
const quick = process.argv.includes('--quick')
const SITES = quick ? 200 : 1000
const ROUNDS = quick ? 3 : 4
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
  `// Through Kysely's query builder, as most modules would be written.
export default async ({ db }) =>
  Number((await db.selectFrom('customers').select(db.fn.countAll().as('n')).executeTakeFirstOrThrow()).n)
// The very query the raw loop runs, through Kysely's sql tag.
export const sqlTag = async ({ db, sql }) => (await sql\`${QUERY}\`.execute(db)).rows[0].n
`,
)
// The raw side as an operator would write it: the same query on every file, one line a site.
const rawScript = join(rawDir, 'raw-count.mjs')
writeFileSync(
  rawScript,
  `import Database from ${JSON.stringify(join(ROOT, 'node_modules', 'better-sqlite3', 'lib', 'index.js'))}
const names = process.argv[2] === 'one' ? ${JSON.stringify(names.slice(0, 1))} : ${JSON.stringify(names)}
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
  const cpu = childCpuMs()
  const started = process.hrtime.bigint()
  const r = spawnSync(process.execPath, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 })
  const ms = Number(process.hrtime.bigint() - started) / 1e6
  if (r.status !== 0) throw new Error(`${args.join(' ')} failed (${r.status}): ${r.stderr}`)
  return { ms, cpu: cpu === undefined ? undefined : childCpuMs() - cpu, stdout: r.stdout.toString() }
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
for (const module of ['count.mjs', 'count.mjs#sqlTag']) {
  const parsed = JSON.parse(timed([BIN, 'execute', module, '--site', 'all', '--json'], bench).stdout)
  if (parsed.succeeded !== SITES || parsed.sites.some((s) => s.result !== ROWS))
    throw new Error(`execute ${module} did not count ${ROWS} rows on each of ${SITES} sites`)
}
if (timed([rawScript], rawDir).stdout.trim().split('\n').length !== SITES) throw new Error('the raw loop missed sites')

const sides = {
  ours: () => timed([BIN, 'execute', 'count.mjs', '--site', 'all'], bench),
  raw: () => timed([rawScript], rawDir),
  ours_sql: () => timed([BIN, 'execute', 'count.mjs#sqlTag', '--site', 'all'], bench),
  ours_one: () => timed([BIN, 'execute', 'count.mjs', '--site', names[0]], bench),
  raw_one: () => timed([rawScript, 'one'], rawDir),
  node: () => timed(['-e', '0'], rawDir),
}
const runs = Object.fromEntries(Object.keys(sides).map((k) => [k, []]))
const rawHere = []
for (let i = 0; i < ROUNDS; i++) {
  // Alternated round by round so machine noise hits every side alike.
  for (const [name, side] of Object.entries(sides)) runs[name].push(side())
  rawHere.push(rawInProcess())
}
const wall = (name) => median(runs[name].map((r) => r.ms))
const cpu = (name) => (runs[name][0].cpu === undefined ? undefined : median(runs[name].map((r) => r.cpu)))
const round = (x) => (x === undefined ? null : +x.toFixed(0))
const ratio = (a, b) => (a === undefined || b === undefined ? null : +(a / b).toFixed(2))
const perSite = (all, one) => (all === undefined ? undefined : (all - one) / (SITES - 1))
const result = {
  sites: SITES,
  rounds: ROUNDS,
  ours_ms: round(wall('ours')),
  raw_ms: round(wall('raw')),
  ratio: ratio(wall('ours'), wall('raw')),
  target: '≤ 1.5×',
  cpu: {
    ours_ms: round(cpu('ours')),
    raw_ms: round(cpu('raw')),
    ratio: ratio(cpu('ours'), cpu('raw')),
  },
  // Where the time goes: a run over one site (start-up, registry, module) and what each further site adds.
  fixed_ms: { ours: round(wall('ours_one')), raw: round(wall('raw_one')), node_startup: round(wall('node')) },
  per_site_us: {
    ours: round(perSite(wall('ours'), wall('ours_one')) * 1000),
    raw: round(perSite(wall('raw'), wall('raw_one')) * 1000),
  },
  sql_tag: { ours_ms: round(wall('ours_sql')), ratio: ratio(wall('ours_sql'), wall('raw')) },
  raw_in_process_ms: round(median(rawHere)),
}
result.verdict = result.ratio <= 1.5 ? 'met' : 'missed'
record({
  figure: `execute count.mjs --site all, ${SITES} sites (process) vs raw better-sqlite3 loop (process)`,
  tenancy: wall('ours'),
  raw: wall('raw'),
  target: '<= 1.5x',
})
record({ figure: '  CPU time: same', tenancy: cpu('ours'), raw: cpu('raw') })
record({
  figure: '  one site (process) vs the raw loop over one site',
  tenancy: wall('ours_one'),
  raw: wall('raw_one'),
})
record({ figure: '  the module through the sql tag vs the raw loop', tenancy: wall('ours_sql'), raw: wall('raw') })
console.log(
  `execute counting rows over ${SITES} SQLite sites (both sides whole processes, ${ROUNDS} rounds, medians):\n` +
    `  tenancy execute ${result.ours_ms} ms, raw better-sqlite3 loop ${result.raw_ms} ms: ratio ${result.ratio} ` +
    `(target ${result.target}: ${result.verdict}); CPU ${result.cpu.ours_ms} vs ${result.cpu.raw_ms} ms = ${result.cpu.ratio}\n` +
    `  one site: ${result.fixed_ms.ours} vs ${result.fixed_ms.raw} ms (node -e 0: ${result.fixed_ms.node_startup} ms); ` +
    `each further site: ${result.per_site_us.ours} vs ${result.per_site_us.raw} µs\n` +
    `  the module through the sql tag: ${result.sql_tag.ours_ms} ms (ratio ${result.sql_tag.ratio}); ` +
    `the raw loop inside this process: ${result.raw_in_process_ms} ms`,
)
mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true })
writeFileSync(join(ROOT, 'bench', 'results', 'fleet-execute.json'), `${JSON.stringify(result, null, 2)}\n`)
rmSync(rawDir, { recursive: true, force: true })
rmSync(bench, { recursive: true, force: true })
