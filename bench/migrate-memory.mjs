// Peak memory of `tenancy migrate` over 10,000 SQLite sites with one new migration, and then with
// nothing pending (issue 19), the whole process with its default flags, as an operator runs it.
// Target: ≤ 150 MB each. Beside the first,
// the raw single-threaded loop (bench/raw/migrate.mjs: plain better-sqlite3 opening each site,
// one transaction, closing it) as a whole process over 1,000 of the same sites: a Node process's
// floor for the same work, which does not grow with the sites. Peak RSS from GNU time (`%M`,
// the kernel's high-water mark of the process); skipped without /usr/bin/time.
//
// The sites are one real site's files copied 10,000 times with a registry row each (`cloneSites`;
// with the CLI it would take an hour), on /dev/shm when it has room: memory, not disk speed, is
// measured here, and 10,000 fsynced commits on this machine's disk would take minutes. The
// migrate's wall time is reported for information.
//
//   node bench/migrate-memory.mjs [--quick]     (--quick: 2,000 sites)
import { spawnSync } from 'node:child_process'
import { existsSync, rmSync, statfsSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { BIN, ROOT, cloneSites, lib, newBench, record, writeResults } from './common.mjs'

const quick = process.argv.includes('--quick')
const SITES = quick ? 2000 : 10_000
const RAW_SITES = Math.min(SITES, 1000)
const TIME = '/usr/bin/time'
const env = { ...process.env, TENANCY_ADMIN_PASSWORD: 'bench-pw', NO_COLOR: '1' }

if (!existsSync(TIME)) {
  console.log(`migrate peak memory: ${TIME} (GNU time) not found; skipped`)
  process.exit(0)
}

/** Free bytes under `dir`. */
const free = (dir) => {
  const s = statfsSync(dir)
  return s.bavail * s.bsize
}
// About 170 KB a site (shared_lib's tables), and room to spare.
const parent = existsSync('/dev/shm') && free('/dev/shm') > SITES * 400_000 ? '/dev/shm' : tmpdir()

/** `node ARGS` under GNU time: wall ms and peak RSS in MB; throws when it fails. */
function measured(args, cwd) {
  const started = process.hrtime.bigint()
  const r = spawnSync(TIME, ['-f', 'peak-rss-kb %M', process.execPath, ...args], {
    cwd,
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
    maxBuffer: 1 << 26,
  })
  const ms = Number(process.hrtime.bigint() - started) / 1e6
  const stderr = String(r.stderr)
  if (r.status !== 0) throw new Error(`${args.join(' ')} failed (${r.status}): ${stderr.slice(-2000)}`)
  const kb = /peak-rss-kb (\d+)\s*$/.exec(stderr)
  if (!kb) throw new Error(`no peak RSS from ${TIME}: ${stderr.slice(-500)}`)
  return { ms, mb: Number(kb[1]) / 1024 }
}

const bench = newBench('tenancy-bench-migrate-memory-', parent)
try {
  const setup = performance.now()
  const b = await lib.openBench({ cwd: bench, env })
  await lib.newSite(b, { site: 'template.localhost', installApps: ['shared_lib'] })
  await b.close()
  const names = Array.from({ length: SITES }, (_, i) => `m${String(i).padStart(5, '0')}.localhost`)
  cloneSites(bench, 'template.localhost', names)
  const setupS = (performance.now() - setup) / 1000

  writeFileSync(
    join(bench, 'apps', 'shared_lib', 'migrations', '0100_bench_invoices.sql'),
    'CREATE TABLE bench_invoices (id VARCHAR(32) PRIMARY KEY, customer VARCHAR(64), amount DECIMAL(12,2), issued_at VARCHAR(32));\nCREATE INDEX bench_invoices_customer ON bench_invoices (customer);\n',
  )
  const ours = measured([BIN, 'migrate'], bench)
  // Every site got it: the first, the last and one between.
  for (const name of [names[0], names[SITES >> 1], names.at(-1)]) {
    const db = new Database(join(bench, 'sites', name, 'db.sqlite'), { readonly: true })
    const applied = db.prepare("select 1 from tenancy_migrations where name = '0100_bench_invoices'").get()
    db.close()
    if (!applied) throw new Error(`migrate left ${name} without the new migration`)
  }
  // The same fleet again, now up to date: every site read, none written.
  const noop = measured([BIN, 'migrate'], bench)
  const raw = measured(
    [join(ROOT, 'bench', 'raw', 'migrate.mjs'), join(bench, 'sites'), String(RAW_SITES), 'bench_raw'],
    bench,
  )

  console.log(
    `migrate peak memory (${SITES} SQLite sites on ${parent}, made in ${setupS.toFixed(0)} s; one new migration)\n`,
  )
  const what = `migrate, ${SITES} sites, one new migration: peak RSS (process) vs raw loop over ${RAW_SITES}`
  const figure = record({ figure: what, tenancy: ours.mb, raw: raw.mb, unit: 'MB', target: '<= 150 MB' })
  console.log(
    `${what.padEnd(78)} ${ours.mb.toFixed(1).padStart(7)} MB vs ${raw.mb.toFixed(1).padStart(6)} MB  (target <= 150 MB: ${figure.met ? 'met' : 'MISSED'})`,
  )
  const wall = record({ figure: `  its wall time (${SITES} sites; tmpfs: no fsync cost)`, tenancy: ours.ms })
  console.log(`${wall.figure.padEnd(78)} ${ours.ms.toFixed(0).padStart(7)} ms`)
  const idle = `migrate, ${SITES} sites, nothing pending: peak RSS (process)`
  const idleFigure = record({ figure: idle, tenancy: noop.mb, unit: 'MB', target: '<= 150 MB' })
  console.log(
    `${idle.padEnd(78)} ${noop.mb.toFixed(1).padStart(7)} MB  (target <= 150 MB: ${idleFigure.met ? 'met' : 'MISSED'}; ${noop.ms.toFixed(0)} ms)`,
  )
  writeResults('migrate-memory.json', {
    [what]: { ...figure, sites: SITES, raw_sites: RAW_SITES, on: parent, setup_s: +setupS.toFixed(1) },
    [wall.figure.trim()]: wall,
    [idle]: { ...idleFigure, ms: +noop.ms.toFixed(0) },
  })
} finally {
  rmSync(bench, { recursive: true, force: true })
}
