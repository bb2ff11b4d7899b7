// Backup benchmark (issue 14), side by side in one run: `tenancy backup` of one SQLite site
// holding about 50 MB against `sqlite3 site.db ".backup out"` followed by `gzip`. Target:
// ours ≤ 1.5× the raw pair. Prints medians and the ratio; writes bench/results/backup.json.
//
//   node bench/backup.mjs [--quick]
import { execFileSync, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { ROOT, median, newBench } from './common.mjs'

const BIN = join(ROOT, 'bin', 'tenancy.js')
const ROUNDS = process.argv.includes('--quick') ? 3 : 7
const TARGET_MB = 50

const time = (fn) => {
  const started = process.hrtime.bigint()
  fn()
  return Number(process.hrtime.bigint() - started) / 1e6
}
const run = (command, args, options = {}) => {
  const r = spawnSync(command, args, { stdio: ['ignore', 'ignore', 'pipe'], ...options })
  if (r.status !== 0) throw new Error(`${command} ${args.join(' ')} failed: ${r.stderr}`)
}

const bench = newBench('tenancy-bench-backup-')
run(process.execPath, [BIN, 'new-site', 'big.localhost', '--install-app', 'tenant_ops'], { cwd: bench })
const file = join(bench, 'sites', 'big.localhost', 'db.sqlite')
{
  // Rows that compress like real data: words and numbers, with some random ids.
  const db = new Database(file)
  const insert = db.prepare(
    'insert into customers (id, customer_name, status, notes, created_at, updated_at) values (?, ?, ?, ?, ?, ?)',
  )
  const words = 'invoice project task customer contact billing terms hours note renewal'.split(' ')
  db.transaction(() => {
    for (
      let i = 0;
      i % 1000 !== 0 ||
      db.pragma('page_count', { simple: true }) * db.pragma('page_size', { simple: true }) < TARGET_MB * 1e6;
      i++
    ) {
      const notes = Array.from({ length: 60 }, (_, k) => `${words[(i + k) % words.length]} ${i * k}`).join(' ')
      const now = new Date(1.7e12 + i * 1000).toISOString()
      insert.run(`CUST-${i}-${randomBytes(4).toString('hex')}`, `Customer ${i}`, 'active', notes, now, now)
    }
  })()
  db.close()
}
const mb = statSync(file).size / 1e6

const scratch = join(bench, 'raw')
mkdirSync(scratch)
const ours = []
const raw = []
for (let i = 0; i < ROUNDS; i++) {
  ours.push(time(() => run(process.execPath, [BIN, 'backup', '--site', 'big.localhost'], { cwd: bench })))
  rmSync(join(bench, 'backups'), { recursive: true, force: true })
  raw.push(
    time(() => {
      execFileSync('sqlite3', [file, `.backup ${join(scratch, 'out.sqlite')}`])
      execFileSync('gzip', ['-f', join(scratch, 'out.sqlite')])
    }),
  )
  rmSync(join(scratch, 'out.sqlite.gz'), { force: true })
}
const result = {
  database_mb: +mb.toFixed(1),
  rounds: ROUNDS,
  ours_ms: +median(ours).toFixed(0),
  raw_ms: +median(raw).toFixed(0),
  ratio: +(median(ours) / median(raw)).toFixed(2),
  target: '≤ 1.5×',
}
result.verdict = result.ratio <= 1.5 ? 'met' : 'missed'
console.log(
  `backup of one ${result.database_mb} MB SQLite site: tenancy backup ${result.ours_ms} ms, ` +
    `sqlite3 .backup + gzip ${result.raw_ms} ms, ratio ${result.ratio} (target ${result.target}: ${result.verdict})`,
)
mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true })
writeFileSync(join(ROOT, 'bench', 'results', 'backup.json'), `${JSON.stringify(result, null, 2)}\n`)
rmSync(bench, { recursive: true, force: true })
