// What the benchmark scripts share: the median, a bench with the example apps, many sites
// cloned fast, the servers (TENANCY_TEST_POSTGRES_URL / TENANCY_TEST_MARIADB_URL, else the
// local defaults) and their admin, the side-by-side report line, and `record`, which hands
// each figure to the run's one table (bench/all.mjs, bench/report.mjs).
//
// A new benchmark is a script bench/NAME.mjs that prints its own lines and calls, for each
// figure, `record({ figure, tenancy, raw, target })` (or `reporter().line(...)`, which prints
// and records): `npm run bench` then runs it after the known ones and puts its figures in the
// table. Modules that only help (fixtures, raw programs) go in bench/raw/ or record nothing.
import { spawnSync } from 'node:child_process'
import {
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { availableParallelism, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import Database from 'better-sqlite3'
import pg from 'pg'
import mysql from 'mysql2/promise'
import { meets, record } from './report.mjs'

export { formatTable, meets, record } from './report.mjs'

export const ROOT = fileURLToPath(new URL('..', import.meta.url))
export const BIN = join(ROOT, 'bin', 'tenancy.js')
export const lib = await import(join(ROOT, 'dist', 'index.js'))

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

/** Milliseconds `fn` takes (awaited when it returns a promise). */
export async function time(fn) {
  const started = process.hrtime.bigint()
  await fn()
  return Number(process.hrtime.bigint() - started) / 1e6
}

/**
 * CPU milliseconds (user + system) of this process's waited-for children so far, from
 * /proc/self/stat (Linux); undefined elsewhere. The difference around a run is what it cost.
 */
export function childCpuMs() {
  try {
    const fields = readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ')
    // cutime and cstime are fields 16 and 17 of stat(5), in clock ticks (100 a second on Linux).
    return ((Number(fields[13]) + Number(fields[14])) * 1000) / 100
  } catch {
    return undefined
  }
}

/**
 * Wall and CPU milliseconds of `fn`, which runs programs to completion (spawnSync): the CPU is
 * theirs (user + system, `childCpuMs`), steadier than wall time on a busy machine, where work
 * spread over more threads gets a larger share of the cores. `cpu` is undefined off Linux.
 */
export async function timeWithCpu(fn) {
  const cpu = childCpuMs()
  const ms = await time(fn)
  return { ms, cpu: cpu === undefined ? undefined : childCpuMs() - cpu }
}

/**
 * Wall and CPU milliseconds (`childCpuMs`; undefined off Linux) of one `node ARGS` process, which
 * must succeed; with `output: 'pipe'`, `stdout` is what it printed.
 */
export function timeNode(args, { cwd, env = process.env, output = 'ignore' } = {}) {
  const cpu = childCpuMs()
  const started = process.hrtime.bigint()
  const r = spawnSync(process.execPath, args, { cwd, env, stdio: ['ignore', output, 'pipe'], maxBuffer: 1 << 26 })
  const ms = Number(process.hrtime.bigint() - started) / 1e6
  if (r.status !== 0) throw new Error(`node ${args.join(' ')} failed (${r.status}): ${r.stderr}`)
  return { ms, cpu: cpu === undefined ? undefined : childCpuMs() - cpu, stdout: r.stdout?.toString() }
}

/** Runs a program to completion, throwing with its stderr when it fails. */
export function run(command, args, options = {}) {
  const r = spawnSync(command, args, { stdio: ['ignore', 'ignore', 'pipe'], maxBuffer: 1 << 26, ...options })
  if (r.status !== 0) throw new Error(`${command} ${args.join(' ')} failed: ${r.stderr}`)
  return r
}

/**
 * A bench with the example apps, plus `tenant_ops_nohook`: tenant_ops without its after_install
 * hook; in a new directory under `parent` (the system's temporary directory unless told).
 */
export function newBench(prefix = 'tenancy-bench-', parent = tmpdir()) {
  const dir = mkdtempSync(join(parent, prefix))
  lib.initBench(dir, { withExampleApps: true })
  const copy = join(dir, 'apps', 'tenant_ops_nohook')
  cpSync(join(dir, 'apps', 'tenant_ops'), copy, { recursive: true })
  const manifest = JSON.parse(readFileSync(join(copy, 'app.json'), 'utf8'))
  writeFileSync(join(copy, 'app.json'), JSON.stringify({ ...manifest, name: 'tenant_ops_nohook', hooks: {} }))
  return dir
}

export const SERVERS = {
  postgres: new URL(process.env.TENANCY_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres'),
  mariadb: new URL(process.env.TENANCY_TEST_MARIADB_URL ?? 'mysql://root@127.0.0.1:3306/'),
}

/** Admin access to a server (in `database` when given): run statements, and close. */
export async function admin(kind, database) {
  const url = SERVERS[kind]
  if (kind === 'postgres') {
    const target = new URL(url)
    if (database) target.pathname = `/${database}`
    const client = new pg.Client({ connectionString: target.toString() })
    await client.connect()
    return { query: (q, p) => client.query(q, p), close: () => client.end() }
  }
  const conn = await mysql.createConnection({
    host: url.hostname,
    port: Number(url.port || 3306),
    user: decodeURIComponent(url.username || 'root'),
    password: decodeURIComponent(url.password),
    database,
    multipleStatements: true,
  })
  return { query: (q, p) => conn.query(q, p), close: () => conn.end() }
}

/** Whether the server answers (else says it is skipped). */
export async function reachable(kind) {
  try {
    const a = await admin(kind)
    await a.close()
    return true
  } catch (error) {
    console.log(`${kind}: not reachable (${error.message}); skipped`)
    return false
  }
}

/** A bench (see `newBench`) whose new sites go on the server `kind`. */
export function serverBench(kind) {
  const dir = newBench(`tenancy-bench-${kind}-`)
  const url = SERVERS[kind]
  const file = join(dir, 'tenancy.config.json')
  const config = JSON.parse(readFileSync(file, 'utf8'))
  config.db = {
    type: kind,
    host: url.hostname,
    port: Number(url.port || (kind === 'postgres' ? 5432 : 3306)),
    root_user: decodeURIComponent(url.username),
  }
  writeFileSync(file, JSON.stringify(config, null, 2))
  return dir
}

/** The environment tenancy runs in on the server `kind`: its admin password, no colour. */
export const envFor = (kind) => ({
  ...process.env,
  NO_COLOR: '1',
  TENANCY_ADMIN_PASSWORD: 'bench-pw',
  TENANCY_DB_ROOT_PASSWORD: decodeURIComponent(SERVERS[kind].password),
})

/** Drops server databases and the users of the same name. */
export async function dropRaw(kind, names) {
  const a = await admin(kind)
  for (const name of names) {
    if (kind === 'postgres') {
      await a.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)
      await a.query(`DROP ROLE IF EXISTS "${name}"`)
    } else {
      await a.query(`DROP DATABASE IF EXISTS \`${name}\``)
      await a.query(`DROP USER IF EXISTS '${name}'@'%'`)
    }
  }
  await a.close()
}

/**
 * A report of side-by-side figures: `line(name, ours, raw, target)` prints one and records it
 * (`record`), the target `<= 1.5x`, `< 1x` (faster than), `>= 5x`, `<= 500 ms` or `info`;
 * `results` holds them for the script's own JSON.
 */
export function reporter(width = 66) {
  const results = {}
  const line = (name, ours, raw, target, extra = '') => {
    const ratio = ours / raw
    const met = meets(target, { ratio, tenancy: ours, unit: 'ms' })
    const verdict = met === null ? '' : met ? 'met' : 'MISSED'
    results[name] = { ours_ms: +ours.toFixed(1), raw_ms: +raw.toFixed(1), ratio: +ratio.toFixed(2), target, verdict }
    record({ figure: name, tenancy: ours, raw, target })
    console.log(
      `${name.padEnd(width)} ${ours.toFixed(1).padStart(8)} ms  vs ${raw.toFixed(1).padStart(8)} ms  = ${ratio.toFixed(2).padStart(5)}x  (target ${target}${verdict ? `: ${verdict}` : ''})${extra}`,
    )
    return results[name]
  }
  return { results, line }
}

/**
 * Writes `bench/results/<file>`: `{ at, node, results }`; with `section`, only that section
 * of the file (`{ <section>: { at, node, results } }`), keeping the others another script wrote.
 */
export function writeResults(file, results, section) {
  const dir = join(ROOT, 'bench', 'results')
  mkdirSync(dir, { recursive: true })
  const path = join(dir, file)
  const figures = { at: new Date().toISOString(), node: process.version, cores: availableParallelism(), results }
  let whole = figures
  if (section) {
    let earlier = {}
    try {
      if (existsSync(path)) earlier = JSON.parse(readFileSync(path, 'utf8'))
    } catch {}
    // Only other sections are kept: a file in another layout (an older run) is replaced.
    const sections = Object.entries(earlier).filter(([, value]) => value?.results)
    whole = { ...Object.fromEntries(sections), [section]: figures }
  }
  writeFileSync(path, `${JSON.stringify(whole, null, 2)}\n`)
}

/**
 * Turns the bench's one SQLite site `template` into `names.length` sites: its directory copied
 * under each name (and, with `rawDir`, a second copy there for the raw side to touch identical
 * files), a registry row each, and the template itself removed. Creating 1,000 sites with the
 * CLI would take minutes.
 */
export function cloneSites(bench, template, names, rawDir) {
  const sitesDir = join(bench, 'sites')
  const registryDb = new Database(join(bench, '.tenancy', 'registry.db'))
  const row = registryDb.prepare('select * from sites where name = ?').get(template)
  const insert = registryDb.prepare(
    'insert into sites (name, state, db_type, db_name, db_host, db_port, db_user, apps, tenant_id, owner, created_at, updated_at) values (?, ?, ?, ?, null, null, null, ?, null, null, ?, ?)',
  )
  // A site is a directory of plain files: each copied on its own, faster than cpSync's walk
  // (10,000 sites for bench/migrate-memory.mjs).
  const entries = readdirSync(join(sitesDir, template), { withFileTypes: true })
  const copy = (to) => {
    mkdirSync(to, { mode: 0o750 })
    for (const entry of entries) {
      const [from, into] = [join(sitesDir, template, entry.name), join(to, entry.name)]
      if (entry.isDirectory()) cpSync(from, into, { recursive: true })
      else copyFileSync(from, into)
    }
  }
  registryDb.transaction(() => {
    names.forEach((name, i) => {
      copy(join(sitesDir, name))
      if (rawDir) copy(join(rawDir, name))
      insert.run(name, 'ready', 'sqlite', `_c${i}`, row.apps, row.created_at, row.updated_at)
    })
    registryDb.prepare('delete from sites where name = ?').run(template)
  })()
  registryDb.close()
  rmSync(join(sitesDir, template), { recursive: true, force: true })
}
