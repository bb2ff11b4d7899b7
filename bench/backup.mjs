// Backup benchmarks on SQLite (issue 14), each side by side with the plain tools in one run:
//   - `tenancy backup --site S` of one site holding about 50 MB against `sqlite3 site.db
//     ".backup out"` followed by `gzip`. Target: ≤ 1.5×.
//   - `tenancy backup --site all --concurrency 2` over 200 sites (tenant_ops without its hook,
//     which only adds a process to each site's setup, and a few hundred customers each) against a sequential shell loop of `sqlite3 .backup` (plain) and of
//     `sqlite3 .backup` + `gzip` (fair). Target: faster than the loop (< 1×).
//   - `tenancy restore` of the 50 MB site from one set against `gunzip -c` of it (info).
// Prints medians and ratios, with CPU time (the programs' user + system) beside wall time;
// writes the `sqlite` section of bench/results/backup.json (bench/backup-servers.mjs writes its
// `servers` section).
//
//   node bench/backup.mjs [--quick]
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdirSync, rmSync, statSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { BIN, lib, median, newBench, reporter, run, timeWithCpu, writeResults } from './common.mjs'

const quick = process.argv.includes('--quick')
const ROUNDS = quick ? 2 : 3
const FLEET_ROUNDS = quick ? 2 : 3
const TARGET_MB = 50
const SITES = 200
const ROWS_PER_SITE = 300
const WORDS = 'invoice project task customer contact billing terms hours note renewal'.split(' ')

const { results, line } = reporter(76)
const cpuMedian = (runs) => (runs[0].cpu === undefined ? undefined : median(runs.map((r) => r.cpu)))
/** A report line of two sides' runs (`timeWithCpu`): wall medians, with CPU medians beside them. */
const sideLine = (name, ours, raw, target) => {
  const [a, b] = [cpuMedian(ours), cpuMedian(raw)]
  const cpuText = a === undefined ? '' : `; CPU ${a.toFixed(0)} vs ${b.toFixed(0)} ms = ${(a / b).toFixed(2)}x`
  const figure = line(name, median(ours.map((r) => r.ms)), median(raw.map((r) => r.ms)), target, cpuText)
  if (a !== undefined) Object.assign(figure, { cpu_ours_ms: +a.toFixed(0), cpu_raw_ms: +b.toFixed(0) })
  return figure
}
const tenancy = (bench, ...args) => run(process.execPath, [BIN, ...args], { cwd: bench })

/** Adds customers to a site's file: notes of 60 words and numbers, a random part in each id. */
function addCustomers(file, { rows, untilBytes }) {
  const db = new Database(file)
  const insert = db.prepare(
    'insert into customers (id, customer_name, status, notes, created_at, updated_at) values (?, ?, ?, ?, ?, ?)',
  )
  const big = () => db.pragma('page_count', { simple: true }) * db.pragma('page_size', { simple: true }) >= untilBytes
  db.transaction(() => {
    for (let i = 0; rows !== undefined ? i < rows : i % 1000 !== 0 || !big(); i++) {
      const notes = Array.from({ length: 60 }, (_, k) => `${WORDS[(i + k) % WORDS.length]} ${i * k}`).join(' ')
      const now = new Date(1.7e12 + i * 1000).toISOString()
      insert.run(`CUST-${i}-${randomBytes(4).toString('hex')}`, `Customer ${i}`, 'active', notes, now, now)
    }
  })()
  db.close()
}

console.log(
  `tenancy backup on SQLite (${ROUNDS} rounds, ${FLEET_ROUNDS} for the fleet, medians; node ${process.version}, ${execFileSync('nproc').toString().trim()} cores)\n`,
)

// One site of about 50 MB.
{
  const bench = newBench('tenancy-bench-backup-')
  tenancy(bench, 'new-site', 'big.localhost', '--install-app', 'tenant_ops')
  const file = join(bench, 'sites', 'big.localhost', 'db.sqlite')
  addCustomers(file, { untilBytes: TARGET_MB * 1e6 })
  const mb = statSync(file).size / 1e6
  const scratch = join(bench, 'raw')
  mkdirSync(scratch)
  const ours = []
  const raw = []
  for (let i = 0; i < ROUNDS; i++) {
    ours.push(await timeWithCpu(() => tenancy(bench, 'backup', '--site', 'big.localhost')))
    rmSync(join(bench, 'backups'), { recursive: true, force: true })
    raw.push(
      await timeWithCpu(() => {
        execFileSync('sqlite3', [file, `.backup ${join(scratch, 'out.sqlite')}`])
        execFileSync('gzip', ['-f', join(scratch, 'out.sqlite')])
      }),
    )
    rmSync(join(scratch, 'out.sqlite.gz'), { force: true })
  }
  const figure = sideLine(
    `backup --site of one ${mb.toFixed(0)} MB site (process) vs sqlite3 .backup + gzip`,
    ours,
    raw,
    '<= 1.5x',
  )
  figure.database_mb = +mb.toFixed(1)

  // Its restore from one set, against gunzip alone writing the same file (restore also checks
  // the set's sha256s, makes the database beside the site's, runs quick_check and migrates).
  const backedUp = execFileSync(process.execPath, [BIN, 'backup', '--site', 'big.localhost', '--json'], { cwd: bench })
  const set = JSON.parse(backedUp.toString()).sites[0].path
  const restored = []
  const gunzip = []
  for (let i = 0; i < ROUNDS; i++) {
    restored.push(await timeWithCpu(() => tenancy(bench, 'restore', 'big.localhost', set, '--yes', '--no-backup')))
    gunzip.push(
      await timeWithCpu(() =>
        run('sh', ['-c', `gunzip -c "${join(set, 'database.sqlite.gz')}" > "${join(scratch, 'restored.sqlite')}"`]),
      ),
    )
    rmSync(join(scratch, 'restored.sqlite'), { force: true })
  }
  sideLine(`restore --no-backup of that site (process) vs gunzip -c of its set`, restored, gunzip, 'info')
  rmSync(bench, { recursive: true, force: true })
}

// 200 sites, made once (in-process; a setup cost), backed up every round.
{
  const bench = newBench('tenancy-bench-fleet-')
  const b = await lib.openBench({ cwd: bench })
  const made = performance.now()
  for (let i = 0; i < SITES; i++) {
    const site = `s${String(i).padStart(3, '0')}.localhost`
    await lib.newSite(b, { site, installApps: ['tenant_ops_nohook'] })
    addCustomers(join(bench, 'sites', site, 'db.sqlite'), { rows: ROWS_PER_SITE })
  }
  await b.close()
  const setupS = (performance.now() - made) / 1000
  const kb = statSync(join(bench, 'sites', 's000.localhost', 'db.sqlite')).size / 1e3
  const loop = (gzip) =>
    `mkdir -p out && for s in sites/*; do n=\${s#sites/}; sqlite3 "$s/db.sqlite" ".backup out/$n.sqlite"${gzip ? ' && gzip "out/$n.sqlite"' : ''} || exit 1; done`
  const side = {
    ours: () => tenancy(bench, 'backup', '--site', 'all', '--concurrency', '2'),
    plain: () => run('sh', ['-c', loop(false)], { cwd: bench }),
    fair: () => run('sh', ['-c', loop(true)], { cwd: bench }),
  }
  const times = { ours: [], plain: [], fair: [] }
  for (let i = 0; i < FLEET_ROUNDS; i++) {
    const order = i % 2 ? ['fair', 'plain', 'ours'] : ['ours', 'plain', 'fair']
    for (const name of order) {
      times[name].push(await timeWithCpu(side[name]))
      rmSync(join(bench, 'backups'), { recursive: true, force: true })
      rmSync(join(bench, 'out'), { recursive: true, force: true })
    }
  }
  const what = `backup --site all --concurrency 2, ${SITES} sites of ${kb.toFixed(0)} KB`
  const about = { sites: SITES, site_kb: +kb.toFixed(0), setup_s: +setupS.toFixed(1) }
  Object.assign(sideLine(`${what} vs a loop of sqlite3 .backup`, times.ours, times.plain, '< 1x'), about)
  Object.assign(sideLine(`${what} vs a loop of .backup + gzip`, times.ours, times.fair, '< 1x'), about)
  rmSync(bench, { recursive: true, force: true })
}

writeResults('backup.json', results, 'sqlite')
