import { existsSync } from 'node:fs'
import { join, relative } from 'node:path'
import Database from 'better-sqlite3'
import { beforeAll, expect } from 'vitest'
import { benchTemplate, makeBench, tenancy } from './helpers.js'
import { asSite, registryRows, serverHas, siteConfig, useBackend, type BackendName } from './backends.js'

// What the restore tests share: a site with data and a backup of it, and every table read back.

/** The names of a site's tables, sorted, read as the site's own user. */
export async function tableNames(bench: string, site: string): Promise<string[]> {
  const cfg = siteConfig(bench, site)
  const list =
    cfg.db_type === 'sqlite'
      ? "select name from sqlite_master where type = 'table' and name not like 'sqlite_%'"
      : cfg.db_type === 'postgres'
        ? "select tablename as name from pg_tables where schemaname = 'public'"
        : 'select table_name as name from information_schema.tables where table_schema = database()'
  const tables = await asSite(bench, site, list)
  expect(tables.error).toBeUndefined()
  return tables.rows.map((r) => r.name as string).sort()
}

/** Every table of a site, every row, in a stable order: what a restore must bring back. */
export async function allTables(bench: string, site: string): Promise<Record<string, unknown[]>> {
  const cfg = siteConfig(bench, site)
  const tables = { rows: (await tableNames(bench, site)).map((name) => ({ name })) }
  const out: Record<string, unknown[]> = {}
  for (const { name } of tables.rows) {
    const q = cfg.db_type === 'mariadb' ? `\`${name}\`` : `"${name}"`
    const rows = await asSite(bench, site, `select * from ${q}`)
    expect(rows.error, name).toBeUndefined()
    // Rows as JSON, sorted: the same rows in any physical order compare equal.
    out[name] = rows.rows.map((r) => JSON.stringify(r)).sort()
  }
  return out
}

export async function ok(bench: string, args: string[], env: Record<string, string>) {
  const r = await tenancy(bench, args, { env })
  expect(r.exitCode, `${args.join(' ')}: ${r.stderr}`).toBe(0)
  return r
}

/** Runs a writing statement as the site's own user (SQLite: on its file). */
export async function write(bench: string, site: string, text: string): Promise<{ error?: string }> {
  const cfg = siteConfig(bench, site)
  if (cfg.db_type !== 'sqlite') return asSite(bench, site, text)
  const db = new Database(join(bench, 'sites', site, cfg.db_file), { timeout: 15_000 })
  try {
    db.prepare(text).run()
    return {}
  } catch (error) {
    return { error: (error as Error).message }
  } finally {
    db.close()
  }
}

/** Writes, changes and deletes rows of the sample app's tables, as a customer's use would. */
export async function changeData(bench: string, site: string, tag: string): Promise<void> {
  const now = new Date().toISOString()
  for (const text of [
    `insert into customers (id, customer_name, created_at, updated_at) values ('${tag}-1', 'First ${tag}', '${now}', '${now}')`,
    `insert into customers (id, customer_name, created_at, updated_at) values ('${tag}-2', 'Second ${tag}', '${now}', '${now}')`,
    `insert into contacts (id, customer_id, first_name, created_at, updated_at) values ('${tag}-C', '${tag}-1', 'Ann', '${now}', '${now}')`,
    `update customers set customer_name = 'Renamed ${tag}' where id = '${tag}-2'`,
    // Rows the install wrote (the hook's audit entries): gone until a restore brings them back.
    `delete from audit_log`,
  ]) {
    const r = await write(bench, site, text)
    expect(r.error, text).toBeUndefined()
  }
}

/** The site's database name as the registry records it. */
export async function recordedDb(bench: string, site: string): Promise<string> {
  const [row] = await registryRows(bench, 'select db_name from sites where name = ?', site)
  return row.db_name
}

export async function databaseExists(
  backend: BackendName,
  bench: string,
  site: string,
  db: { name: string; file?: string },
) {
  if (backend === 'sqlite') return existsSync(join(bench, 'sites', site, db.file!))
  return (await serverHas(backend, db.name)).database
}

/** Makes the site `r.localhost` with tenant_ops, changes its data and backs it up into `set`. */
async function makeSiteWithData(bench: string, env: Record<string, string>) {
  await ok(bench, ['new-site', 'r.localhost', '--install-app', 'tenant_ops'], env)
  await changeData(bench, 'r.localhost', 'SAVED')
  const backup = await ok(bench, ['backup', '--site', 'r.localhost', '--json'], env)
  return { set: relative(bench, backup.json.sites[0].path as string), saved: await allTables(bench, 'r.localhost') }
}

const sqliteSiteWithData = benchTemplate((bench) => makeSiteWithData(bench, {}))

/**
 * A bench whose site `r.localhost` (tenant_ops) holds changed data, backed up into `set`;
 * `saved` is every table as the set holds it. On SQLite, a copy of one made once per file.
 * `forFile`: kept for the tests of the file (made in `beforeAll`), see `tempDir`.
 */
export async function siteWithData(backend: BackendName, options: { forFile?: boolean } = {}) {
  if (backend === 'sqlite') {
    const { bench, made } = await sqliteSiteWithData(options)
    return { bench, env: {}, set: join(bench, made.set), saved: made.saved }
  }
  const bench = makeBench(options)
  const env = useBackend(bench, backend, options)
  const { set, saved } = await makeSiteWithData(bench, env)
  return { bench, env, set: join(bench, set), saved }
}

/**
 * `siteWithData` made once, in `beforeAll`, for the tests of the enclosing describe (making it
 * is what costs); its fields are there once that has run, each test taking the site as the
 * test before left it.
 */
export function sharedSiteWithData(backend: BackendName) {
  const site = {} as Awaited<ReturnType<typeof siteWithData>>
  beforeAll(async () => {
    Object.assign(site, await siteWithData(backend, { forFile: true }))
  })
  return site
}
