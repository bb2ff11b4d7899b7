import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { afterAll, afterEach } from 'vitest'
import { query, setConfig } from './helpers.js'

// Server tests run against real servers named by TENANCY_TEST_POSTGRES_URL and
// TENANCY_TEST_MARIADB_URL (mysql://root@127.0.0.1:3306). Without them they are skipped, and
// say so; with TENANCY_REQUIRE_SERVERS=1 a missing URL fails the tests that need it.

export type BackendName = 'sqlite' | 'mariadb' | 'postgres'

const REQUIRED = process.env.TENANCY_REQUIRE_SERVERS === '1'
const URLS: Record<Exclude<BackendName, 'sqlite'>, string | undefined> = {
  postgres: process.env.TENANCY_TEST_POSTGRES_URL,
  mariadb: process.env.TENANCY_TEST_MARIADB_URL,
}
const warned = new Set<string>()
/** The connection URL of a test server (throws when it is required but not set). */
export function serverUrl(name: Exclude<BackendName, 'sqlite'>): string {
  const url = URLS[name]
  if (!url) throw new Error(`TENANCY_REQUIRE_SERVERS=1 but TENANCY_TEST_${name.toUpperCase()}_URL is not set`)
  return url
}

/** Whether tests on `name` run here: SQLite always; a server when its URL is set or required. */
export function enabled(name: BackendName): boolean {
  if (name === 'sqlite' || URLS[name] || REQUIRED) return true
  if (!warned.has(name)) {
    warned.add(name)
    console.warn(`skipping ${name} tests: TENANCY_TEST_${name.toUpperCase()}_URL is not set`)
  }
  return false
}

/** The backends site tests loop over, each with whether it runs here. */
export const SITE_BACKENDS: { name: BackendName; skip: boolean }[] = (['sqlite', 'mariadb', 'postgres'] as const).map(
  (name) => ({ name, skip: !enabled(name) }),
)

/** The registries the race tests loop over. */
export const REGISTRIES: { name: 'sqlite' | 'postgres'; skip: boolean }[] = (['sqlite', 'postgres'] as const).map(
  (name) => ({ name, skip: !enabled(name) }),
)

export interface AsUser {
  user: string
  password: string
  database: string
}

export interface QueryResult {
  rows: any[]
  error?: string
}

/** Runs SQL on a server, as its admin (from the test URL) or as the given user; never throws. */
export async function serverQuery(
  name: Exclude<BackendName, 'sqlite'>,
  text: string,
  as?: AsUser,
  database?: string,
): Promise<QueryResult> {
  const url = new URL(serverUrl(name))
  if (name === 'postgres') {
    const { default: pg } = await import('pg')
    const client = new pg.Client({
      host: url.hostname,
      port: Number(url.port || 5432),
      user: as?.user ?? decodeURIComponent(url.username || 'postgres'),
      password: as?.password ?? decodeURIComponent(url.password),
      database: as?.database ?? database ?? (url.pathname.slice(1) || 'postgres'),
      types: {
        getTypeParser: ((oid: number, format: any) =>
          oid === 20
            ? Number
            : oid === 16
              ? (v: string) => (v === 't' ? 1 : 0)
              : pg.types.getTypeParser(oid, format)) as any,
      },
    })
    client.on('error', () => {})
    try {
      await client.connect()
      return { rows: (await client.query(text)).rows }
    } catch (error) {
      return { rows: [], error: (error as Error).message }
    } finally {
      await client.end().catch(() => {})
    }
  }
  const { default: mysql } = await import('mysql2/promise')
  let conn
  try {
    conn = await mysql.createConnection({
      host: url.hostname,
      port: Number(url.port || 3306),
      user: as?.user ?? decodeURIComponent(url.username || 'root'),
      password: as?.password ?? decodeURIComponent(url.password),
      database: as?.database ?? database,
      supportBigNumbers: true,
      bigNumberStrings: false,
      decimalNumbers: true,
    })
    const [rows] = await conn.query(text)
    // A statement that returns no rows (ALTER, INSERT) gives a result header instead.
    if (!Array.isArray(rows)) return { rows: [] }
    return {
      // A statement that returns no rows (insert, update) gives its result header instead.
      rows: (Array.isArray(rows) ? (rows as any[]) : []).map((r) =>
        Object.fromEntries(Object.entries(r).map(([k, v]) => [k, typeof v === 'bigint' ? Number(v) : v])),
      ),
    }
  } catch (error) {
    return { rows: [], error: (error as Error).message }
  } finally {
    await conn?.end().catch(() => {})
  }
}

/** The connection settings a site was given, from its site_config.json. */
export function siteConfig(bench: string, site: string): Record<string, any> {
  return JSON.parse(readFileSync(join(bench, 'sites', site, 'site_config.json'), 'utf8'))
}

/** Runs SQL in a site's database as the site's own user (SQLite: on its file). */
export async function asSite(bench: string, site: string, text: string): Promise<QueryResult> {
  const cfg = siteConfig(bench, site)
  if (cfg.db_type === 'sqlite') {
    try {
      return { rows: query(join(bench, 'sites', site, cfg.db_file ?? 'db.sqlite'), text) }
    } catch (error) {
      return { rows: [], error: (error as Error).message }
    }
  }
  return serverQuery(cfg.db_type, text, { user: cfg.db_user, password: cfg.db_password, database: cfg.db_name })
}

/** Whether a server database and a server user of that name exist (as the admin sees it). */
export async function serverHas(
  name: Exclude<BackendName, 'sqlite'>,
  dbName: string,
): Promise<{ database: boolean; user: boolean }> {
  const [db, user] =
    name === 'postgres'
      ? [
          `select count(*) as n from pg_database where datname = '${dbName}'`,
          `select count(*) as n from pg_roles where rolname = '${dbName}'`,
        ]
      : [
          `select count(*) as n from information_schema.schemata where schema_name = '${dbName}'`,
          `select count(*) as n from mysql.user where user = '${dbName}'`,
        ]
  const a = await serverQuery(name, db)
  const b = await serverQuery(name, user)
  if (a.error || b.error) throw new Error(a.error ?? b.error)
  return { database: Number(a.rows[0].n) === 1, user: Number(b.rows[0].n) === 1 }
}

type ServerBench = { bench: string; name: Exclude<BackendName, 'sqlite'> }
const serverBenches: ServerBench[] = []
const serverBenchesForFile: ServerBench[] = []
const registryDatabases: string[] = []

/**
 * Points a bench's new sites at `name` (db.* in its config) and returns the environment that
 * carries the root password. Databases the test leaves behind are dropped after it; with
 * `forFile` (a bench shared by the tests of a file, made in `beforeAll`), after the file.
 */
export function useBackend(
  bench: string,
  name: BackendName,
  options: { forFile?: boolean } = {},
): Record<string, string> {
  if (name === 'sqlite') return {}
  const url = new URL(serverUrl(name))
  setConfig(bench, (c) => {
    c.db = {
      type: name,
      host: url.hostname,
      port: Number(url.port || (name === 'postgres' ? 5432 : 3306)),
      root_user: decodeURIComponent(url.username || (name === 'postgres' ? 'postgres' : 'root')),
    }
  })
  ;(options.forFile ? serverBenchesForFile : serverBenches).push({ bench, name })
  return { TENANCY_DB_ROOT_PASSWORD: decodeURIComponent(url.password) }
}

/** Gives a bench a registry of its own on the PostgreSQL test server (SQLite: the default). */
export async function useRegistry(bench: string, name: 'sqlite' | 'postgres'): Promise<void> {
  if (name === 'sqlite') return
  const database = `tenancy_test_${randomBytes(6).toString('hex')}`
  const created = await serverQuery('postgres', `create database ${database}`)
  if (created.error) throw new Error(created.error)
  registryDatabases.push(database)
  const url = new URL(serverUrl('postgres'))
  url.pathname = `/${database}`
  setConfig(bench, (c) => (c.registry = url.toString()))
}

/** Rows from a bench's registry, whichever kind it is (`?` placeholders; booleans as 1/0). */
export async function registryRows(bench: string, text: string, ...params: (string | number)[]): Promise<any[]> {
  const config = JSON.parse(readFileSync(join(bench, 'tenancy.config.json'), 'utf8'))
  const url: string = config.registry ?? 'sqlite:.tenancy/registry.db'
  if (url.startsWith('sqlite:')) return query(join(bench, url.slice('sqlite:'.length)), text, ...params)
  let i = 0
  const inlined = text.replace(/\?/g, () => {
    const value = params[i++]
    return typeof value === 'number' ? String(value) : `'${String(value).replace(/'/g, "''")}'`
  })
  const result = await serverQuery('postgres', inlined, undefined, new URL(url).pathname.slice(1))
  if (result.error) throw new Error(result.error)
  return result.rows
}

/** Every site database a bench made (its sites and archived sites): what a test must drop. */
function databasesOf(bench: string): string[] {
  const names: string[] = []
  for (const dir of [join(bench, 'sites'), join(bench, 'archived', 'sites')]) {
    if (!existsSync(dir)) continue
    for (const site of readdirSync(dir)) {
      // An archive holds the site's directory as site/.
      for (const file of [join(dir, site, 'site_config.json'), join(dir, site, 'site', 'site_config.json')])
        if (existsSync(file)) names.push(JSON.parse(readFileSync(file, 'utf8')).db_name)
    }
  }
  return names
}

/** Drops the server databases (and users) the benches made. */
async function dropDatabasesOf(benches: ServerBench[]): Promise<void> {
  for (const { bench, name } of benches) {
    for (const db of databasesOf(bench)) {
      if (!/^[a-z0-9_]+$/.test(db)) continue
      if (name === 'postgres') {
        await serverQuery('postgres', `drop database if exists "${db}" with (force)`)
        await serverQuery('postgres', `drop role if exists "${db}"`)
      } else {
        await serverQuery('mariadb', `drop database if exists \`${db}\``)
        await serverQuery('mariadb', `drop user if exists '${db}'@'%'`)
      }
    }
  }
}

// Registered after helpers.ts's hooks, so they run first (hooks run as a stack): the benches still exist.
afterEach(async () => {
  await dropDatabasesOf(serverBenches.splice(0))
  for (const database of registryDatabases.splice(0))
    await serverQuery('postgres', `drop database if exists ${database} with (force)`)
})

afterAll(() => dropDatabasesOf(serverBenchesForFile.splice(0)))
