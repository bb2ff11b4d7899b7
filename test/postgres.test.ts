import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { makeBench, query, setConfig, tenancy } from './helpers.js'

// Runs against a real PostgreSQL server: TENANCY_TEST_POSTGRES_URL (postgres://user[:pw]@host:port/db).
// Without it the suite skips and says so, unless TENANCY_REQUIRE_SERVERS=1 makes that a failure.
const url = process.env.TENANCY_TEST_POSTGRES_URL
const required = process.env.TENANCY_REQUIRE_SERVERS === '1'
if (!url && !required) console.warn('skipping PostgreSQL tests: TENANCY_TEST_POSTGRES_URL is not set')

const server = url ? new URL(url) : undefined

/** A bench whose new sites go to the test server, with the admin password in the environment. */
function pgBench(): { bench: string; env: Record<string, string> } {
  if (!server) throw new Error('TENANCY_REQUIRE_SERVERS=1 but TENANCY_TEST_POSTGRES_URL is not set')
  const bench = makeBench()
  setConfig(bench, (c) => {
    c.db = { type: 'postgres', host: server.hostname, port: Number(server.port || 5432), root_user: decodeURIComponent(server.username || 'postgres') }
  })
  return { bench, env: { TENANCY_DB_ROOT_PASSWORD: decodeURIComponent(server.password) } }
}

async function psql(sql: string, as?: { user: string; password: string; database: string }): Promise<{ rows: any[]; error?: string }> {
  const { default: pg } = await import('pg')
  const client = new pg.Client(
    as
      ? { host: server!.hostname, port: Number(server!.port || 5432), user: as.user, password: as.password, database: as.database }
      : { connectionString: url },
  )
  client.on('error', () => {})
  try {
    await client.connect()
    const result = await client.query(sql)
    return { rows: result.rows }
  } catch (error) {
    return { rows: [], error: (error as Error).message }
  } finally {
    await client.end().catch(() => {})
  }
}

const siteConfig = async (bench: string, site: string) => JSON.parse((await import('node:fs')).readFileSync(join(bench, 'sites', site, 'site_config.json'), 'utf8'))

describe.skipIf(!url && !required)('PostgreSQL sites', () => {
  it('new-site makes a database owned by its own role, installs the sample apps, and drop-site removes both', async () => {
    const { bench, env } = pgBench()
    const r = await tenancy(bench, ['new-site', 'pga.localhost', '--install-app', 'tenant_ops', '--json'], { env })
    expect(r.exitCode, r.stderr).toBe(0)
    expect(r.json).toMatchObject({ db_type: 'postgres' })
    const config = await siteConfig(bench, 'pga.localhost')
    expect(config).toMatchObject({ db_type: 'postgres', db_name: r.json.db_name, db_user: r.json.db_name })
    const owner = await psql(`select pg_get_userbyid(datdba) as owner from pg_database where datname = '${config.db_name}'`)
    expect(owner.rows).toEqual([{ owner: config.db_user }])
    const asSite = { user: config.db_user, password: config.db_password, database: config.db_name }
    expect((await psql("select count(*)::int as n from projects where id = 'PRJ-ONBOARDING'", asSite)).rows).toEqual([{ n: 1 }])
    const apps = await tenancy(bench, ['list-apps', '--site', 'pga.localhost', '--json'], { env })
    expect(apps.json.apps.map((a: any) => [a.app, a.pending_migrations])).toEqual([
      ['shared_lib', []],
      ['tenant_ops', []],
    ])
    const drop = await tenancy(bench, ['drop-site', 'pga.localhost', '--yes', '--json'], { env })
    expect(drop.exitCode, drop.stderr).toBe(0)
    expect((await psql(`select count(*)::int as n from pg_database where datname = '${config.db_name}'`)).rows).toEqual([{ n: 0 }])
    expect((await psql(`select count(*)::int as n from pg_roles where rolname = '${config.db_user}'`)).rows).toEqual([{ n: 0 }])
  })

  it("one site's credentials cannot reach another site's database", async () => {
    const { bench, env } = pgBench()
    for (const site of ['a.localhost', 'b.localhost']) expect((await tenancy(bench, ['new-site', site, '--install-app', 'shared_lib'], { env })).exitCode).toBe(0)
    const a = await siteConfig(bench, 'a.localhost')
    const b = await siteConfig(bench, 'b.localhost')
    const intoB = await psql('select 1', { user: a.db_user, password: a.db_password, database: b.db_name })
    expect(intoB.error).toMatch(/permission denied for database/)
    const own = await psql('select count(*)::int as n from settings', { user: a.db_user, password: a.db_password, database: a.db_name })
    expect(own.rows[0].n).toBeGreaterThan(0)
    for (const site of ['a.localhost', 'b.localhost']) await tenancy(bench, ['drop-site', site, '--yes', '--no-archive'], { env })
  })

  it('a failing migration rolls the new site back, database and role included; migrate is one transaction per site', async () => {
    const { bench, env } = pgBench()
    const { writeFileSync, mkdirSync } = await import('node:fs')
    mkdirSync(join(bench, 'apps', 'broken', 'migrations'), { recursive: true })
    writeFileSync(join(bench, 'apps', 'broken', 'app.json'), JSON.stringify({ name: 'broken', version: '0.1.0' }))
    writeFileSync(join(bench, 'apps', 'broken', 'migrations', '0001_boom.sql'), 'CREATE TABLE ok_table (id INTEGER);\nSELECT * FROM missing_table;\n')
    const before = (await psql("select count(*)::int as n from pg_database where datname like '\\_%'")).rows[0].n
    const r = await tenancy(bench, ['new-site', 'x.localhost', '--install-app', 'broken', '--json'], { env })
    expect(r.exitCode).toBe(1)
    expect(r.json.error.message).toMatch(/missing_table/)
    expect((await psql("select count(*)::int as n from pg_database where datname like '\\_%'")).rows[0].n).toBe(before)

    expect((await tenancy(bench, ['new-site', 'm.localhost', '--install-app', 'shared_lib'], { env })).exitCode).toBe(0)
    writeFileSync(join(bench, 'apps', 'shared_lib', 'migrations', '0005_pair.sql'), 'CREATE TABLE pair_one (id INTEGER);\nCREATE TABLE pair_two (id INTEGER);\n')
    writeFileSync(join(bench, 'apps', 'shared_lib', 'migrations', '0006_fails.sql'), 'SELECT * FROM nope;\n')
    const m = await tenancy(bench, ['migrate', '--json'], { env })
    expect(m.exitCode).toBe(1)
    expect(m.json.sites[0]).toMatchObject({ status: 'failed', app: 'shared_lib', migration: '0006_fails' })
    const cfg = await siteConfig(bench, 'm.localhost')
    const asSite = { user: cfg.db_user, password: cfg.db_password, database: cfg.db_name }
    expect((await psql("select count(*)::int as n from information_schema.tables where table_name = 'pair_one'", asSite)).rows).toEqual([{ n: 0 }])
    await tenancy(bench, ['drop-site', 'm.localhost', '--yes', '--no-archive'], { env })
  })

  it('provisions a tenant on PostgreSQL end to end, and names every place a missing root password was looked for', async () => {
    const { bench, env } = pgBench()
    const r = await tenancy(bench, ['tenant', 'create', 'acme', '--json'], { env })
    expect(r.exitCode, r.stderr).toBe(0)
    expect(r.json).toMatchObject({ status: 'active', provisioning_status: 'completed' })
    const secrets = (await tenancy(bench, ['tenant', 'show', 'acme', '--show-secrets', '--json'], { env })).json
    const verify = await tenancy(bench, ['verify-key', secrets.api_key, '--site', 'acme.localhost'], { env, input: secrets.api_secret })
    expect(verify.exitCode).toBe(0)
    expect(query(join(bench, '.tenancy', 'registry.db'), "select db_type from sites where name = 'acme.localhost'")).toEqual([{ db_type: 'postgres' }])
    const missing = await tenancy(bench, ['new-site', 'nopw.localhost'])
    expect(missing.exitCode).toBe(2)
    expect(missing.stderr).toMatch(/missing postgres root password: looked in --db-root-password-file FILE, the TENANCY_DB_ROOT_PASSWORD environment variable/)
    const del = await tenancy(bench, ['tenant', 'delete', 'acme', '--yes'], { env })
    expect(del.exitCode, del.stderr).toBe(0)
  })
})
