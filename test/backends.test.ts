import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { makeBench, setConfig, tenancy } from './helpers.js'
import {
  REGISTRIES,
  SITE_BACKENDS,
  asSite,
  useRegistry,
  registryRows,
  serverHas,
  serverQuery,
  siteConfig,
  useBackend,
  type BackendName,
} from './backends.js'

// The same bodies on SQLite, MariaDB and PostgreSQL: site commands, the pipeline, the pool
// and migrate. Server-only promises (own users, isolation, server errors) follow.

/** Whether the database behind a site config is gone (SQLite: its file). */
async function databaseGone(
  backend: BackendName,
  bench: string,
  site: string,
  cfg: Record<string, any>,
): Promise<boolean> {
  if (backend === 'sqlite') {
    try {
      statSync(join(bench, 'sites', site, cfg.db_file))
      return false
    } catch {
      return true
    }
  }
  const has = await serverHas(backend, cfg.db_name)
  return !has.database && !has.user
}

/** Sites with shared_lib, made by concurrent new-site runs (they are independent). */
async function newSites(bench: string, sites: string[], env: Record<string, string>): Promise<void> {
  const runs = await Promise.all(
    sites.map((site) => tenancy(bench, ['new-site', site, '--install-app', 'shared_lib'], { env })),
  )
  for (const r of runs) expect(r.exitCode, r.stderr).toBe(0)
}

const count = async (bench: string, site: string, text: string) => {
  const r = await asSite(bench, site, text)
  if (r.error) throw new Error(r.error)
  return Number(r.rows[0].n)
}

describe.each(SITE_BACKENDS)('sites on $name', ({ name: backend, skip }) => {
  describe.skipIf(skip)('', () => {
    it('new-site with both sample apps, install-app, users and keys, list-apps; drop-site removes the database and its user', async () => {
      const bench = makeBench()
      const env = useBackend(bench, backend)
      const r = await tenancy(bench, ['new-site', 'one.localhost', '--install-app', 'tenant_ops', '--json'], { env })
      expect(r.exitCode, r.stderr).toBe(0)
      expect(r.json).toMatchObject({ db_type: backend, apps: [{ app: 'shared_lib' }, { app: 'tenant_ops' }] })
      const cfg = siteConfig(bench, 'one.localhost')
      expect(statSync(join(bench, 'sites', 'one.localhost', 'site_config.json')).mode & 0o777).toBe(0o600)
      if (backend !== 'sqlite') {
        expect(cfg).toMatchObject({ db_type: backend, db_name: r.json.db_name, db_user: r.json.db_name })
        expect(cfg.db_name).toMatch(/^_[0-9a-f]{16}$/)
        expect(cfg.db_password).toMatch(/^[A-Za-z0-9_-]{20,}$/)
        expect(await serverHas(backend, cfg.db_name)).toEqual({ database: true, user: true })
      }
      // Fixtures and the after_install hook's rows are there, read as the site's own user.
      expect(
        await count(bench, 'one.localhost', "select count(*) as n from projects where id = 'PRJ-ONBOARDING'"),
      ).toBe(1)
      expect(
        await count(bench, 'one.localhost', 'select count(*) as n from tenancy_migrations'),
      ).toBeGreaterThanOrEqual(10)

      const again = await tenancy(bench, ['install-app', 'tenant_ops', '--site', 'one.localhost', '--json'], { env })
      expect(again.json.apps.map((a: any) => a.status)).toEqual(['already_installed', 'already_installed'])
      const apps = await tenancy(bench, ['list-apps', '--site', 'one.localhost', '--json'], { env })
      expect(apps.json.apps.map((a: any) => [a.app, a.pending_migrations])).toEqual([
        ['shared_lib', []],
        ['tenant_ops', []],
      ])

      expect(
        (await tenancy(bench, ['add-system-manager', 'ops@example.com', '--site', 'one.localhost'], { env })).exitCode,
      ).toBe(0)
      expect(
        (await tenancy(bench, ['add-system-manager', 'ops@example.com', '--site', 'one.localhost'], { env })).exitCode,
      ).toBe(0)
      const keys = await tenancy(bench, ['generate-keys', 'ops@example.com', '--site', 'one.localhost', '--json'], {
        env,
      })
      expect(keys.exitCode, keys.stderr).toBe(0)
      expect(
        (
          await tenancy(bench, ['verify-key', keys.json.api_key, '--site', 'one.localhost'], {
            env,
            input: keys.json.api_secret,
          })
        ).exitCode,
      ).toBe(0)
      expect(
        (await tenancy(bench, ['verify-key', keys.json.api_key, '--site', 'one.localhost'], { env, input: 'wrong' }))
          .exitCode,
      ).toBe(1)
      expect(
        await count(bench, 'one.localhost', "select count(*) as n from users where name = 'ops@example.com'"),
      ).toBe(1)

      const drop = await tenancy(bench, ['drop-site', 'one.localhost', '--yes', '--no-archive', '--json'], { env })
      expect(drop.exitCode, drop.stderr).toBe(0)
      expect(await databaseGone(backend, bench, 'one.localhost', cfg)).toBe(true)
      expect(await registryRows(bench, 'select name from sites')).toEqual([])
    })

    it('a failing migration rolls a new site back: no database, no user, no directory, no row', async () => {
      const bench = makeBench()
      const env = useBackend(bench, backend)
      mkdirSync(join(bench, 'apps', 'broken', 'migrations'), { recursive: true })
      writeFileSync(join(bench, 'apps', 'broken', 'app.json'), JSON.stringify({ name: 'broken', version: '0.1.0' }))
      writeFileSync(
        join(bench, 'apps', 'broken', 'migrations', '0001_boom.sql'),
        'CREATE TABLE ok_table (id INTEGER);\nSELECT * FROM missing_table;\n',
      )
      const dbName = `_${randomBytes(8).toString('hex')}`
      const r = await tenancy(
        bench,
        ['new-site', 'x.localhost', '--install-app', 'broken', '--db-name', dbName, '--json'],
        { env },
      )
      expect(r.exitCode).toBe(1)
      expect(r.json.error.message).toMatch(/broken\/0001_boom.*missing_table/)
      expect(r.json.error.message).toMatch(/rolled back/)
      // The site went, with what MariaDB's DDL left of the migration: no "stays in place, a rerun resumes".
      expect(r.json.error.message).not.toMatch(/stay in place|rerun resumes/)
      if (backend !== 'sqlite') expect(await serverHas(backend, dbName)).toEqual({ database: false, user: false })
      expect(await registryRows(bench, 'select name from sites')).toEqual([])
      expect(() => statSync(join(bench, 'sites', 'x.localhost'))).toThrow()
    })

    it('the pipeline provisions a tenant, the pool hands one out, tenant delete removes database and user; on a server, nothing without its admin password', async () => {
      const bench = makeBench()
      const env = useBackend(bench, backend)
      if (backend !== 'sqlite') {
        const refused = await tenancy(bench, ['tenant', 'create', 'nopw'])
        expect(refused.exitCode).toBe(2)
        expect(refused.stderr).toMatch(
          /missing .* root password: looked in the TENANCY_DB_ROOT_PASSWORD environment variable/,
        )
        expect(refused.stderr).not.toMatch(/--db-root-password-file/)
        expect(await registryRows(bench, 'select name from tenants')).toEqual([])
      }
      const r = await tenancy(bench, ['tenant', 'create', 'acme', '--json'], { env })
      expect(r.exitCode, r.stderr).toBe(0)
      expect(r.json).toMatchObject({ status: 'active', provisioning_status: 'completed', site: 'acme.localhost' })
      expect(await registryRows(bench, "select db_type from sites where name = 'acme.localhost'")).toEqual([
        { db_type: backend },
      ])
      const acme = siteConfig(bench, 'acme.localhost')

      const pool = await tenancy(bench, ['pending-create', '--count', '2', '--json'], { env })
      expect(pool.exitCode, pool.stderr).toBe(0)
      const pulled = await tenancy(bench, ['tenant', 'create', 'beta', '--json'], { env })
      expect(pulled.exitCode, pulled.stderr).toBe(0)
      expect(pulled.json).toMatchObject({ mode: 'pulled', site: 'beta.localhost', status: 'active' })
      for (const tenant of ['acme', 'beta']) {
        const show = (await tenancy(bench, ['tenant', 'show', tenant, '--show-secrets', '--json'], { env })).json
        const verify = await tenancy(bench, ['verify-key', show.api_key, '--site', show.site], {
          env,
          input: show.api_secret,
        })
        expect(verify.exitCode, verify.stderr).toBe(0)
        expect(await count(bench, show.site, `select count(*) as n from users where name = 'api@${show.site}'`)).toBe(1)
      }

      if (backend !== 'sqlite') {
        // Without the admin password, tenant delete, drop-site and pending-clear change nothing (exit 2).
        for (const args of [
          ['tenant', 'delete', 'acme', '--yes'],
          ['drop-site', 'acme.localhost', '--yes'],
          ['pending-clear'],
        ]) {
          const refused = await tenancy(bench, args)
          expect(refused.exitCode, args.join(' ')).toBe(2)
        }
        expect(await registryRows(bench, 'select name, state from sites order by name')).toHaveLength(3)
        expect((await registryRows(bench, "select state from sites where name = 'acme.localhost'"))[0].state).toBe(
          'ready',
        )
        expect(await registryRows(bench, 'select count(*) as n from tenants')).toEqual([{ n: 3 }])
        expect(await serverHas(backend, acme.db_name)).toEqual({ database: true, user: true })
      }

      const del = await tenancy(bench, ['tenant', 'delete', 'acme', '--yes'], { env })
      expect(del.exitCode, del.stderr).toBe(0)
      expect(await databaseGone(backend, bench, 'acme.localhost', acme)).toBe(true)
      const clear = await tenancy(bench, ['pending-clear', '--json'], { env })
      expect(clear.exitCode, clear.stderr).toBe(0)
      expect(clear.json.cleared).toHaveLength(1)
      expect(await registryRows(bench, 'select name from sites order by name')).toEqual([{ name: 'beta.localhost' }])
    })

    it('migrate applies a new migration to every site once; a failing one leaves the site as its database allows', async () => {
      const bench = makeBench()
      const env = useBackend(bench, backend)
      await newSites(bench, ['m1.localhost', 'm2.localhost'], env)
      const dir = join(bench, 'apps', 'shared_lib', 'migrations')
      writeFileSync(
        join(dir, '0005_notes.sql'),
        "CREATE TABLE site_notes (id INTEGER PRIMARY KEY, body VARCHAR(200));\nINSERT INTO site_notes (id, body) VALUES (1, 'hello');\n",
      )
      const m = await tenancy(bench, ['migrate', '--json'], { env })
      expect(m.exitCode, m.stderr).toBe(0)
      expect(m.json.sites.map((s: any) => [s.site, s.status, s.applied])).toEqual([
        ['m1.localhost', 'migrated', ['shared_lib/0005_notes']],
        ['m2.localhost', 'migrated', ['shared_lib/0005_notes']],
      ])
      const again = await tenancy(bench, ['migrate', '--json'], { env })
      expect(again.json.sites.map((s: any) => s.status)).toEqual(['up_to_date', 'up_to_date'])
      expect(await count(bench, 'm1.localhost', 'select count(*) as n from site_notes')).toBe(1)

      writeFileSync(join(dir, '0006_pair.sql'), 'CREATE TABLE pair_one (id INTEGER);\n')
      writeFileSync(join(dir, '0007_fails.sql'), 'SELECT * FROM nope;\n')
      const failed = await tenancy(bench, ['migrate', '--site', 'm1.localhost', '--json'], { env })
      expect(failed.exitCode).toBe(1)
      expect(failed.json.sites[0]).toMatchObject({ status: 'failed', app: 'shared_lib', migration: '0007_fails' })
      const pairs = await count(
        bench,
        'm1.localhost',
        "select count(*) as n from tenancy_migrations where name = '0006_pair'",
      )
      // SQLite and PostgreSQL roll the whole site back; MariaDB's DDL commits as it goes, so
      // the ledger keeps what completed and the next run resumes after it.
      expect(pairs).toBe(backend === 'mariadb' ? 1 : 0)
      writeFileSync(join(dir, '0007_fails.sql'), 'CREATE TABLE fixed_now (id INTEGER);\n')
      const fixed = await tenancy(bench, ['migrate', '--site', 'm1.localhost', '--json'], { env })
      expect(fixed.exitCode, fixed.stderr).toBe(0)
      expect(fixed.json.sites[0].applied).toEqual(
        backend === 'mariadb' ? ['shared_lib/0007_fails'] : ['shared_lib/0006_pair', 'shared_lib/0007_fails'],
      )
    })

    it('two migrate processes on the same sites take turns: each migration runs once', async () => {
      const bench = makeBench()
      const env = useBackend(bench, backend)
      await newSites(bench, ['r1.localhost', 'r2.localhost'], env)
      // A slow migration that fails if it runs twice (the table exists the second time).
      writeFileSync(
        join(bench, 'apps', 'shared_lib', 'migrations', '0005_slow.js'),
        "export async function up(db) { await db.schema.createTable('slow_once').addColumn('id', 'integer').execute(); await new Promise((r) => setTimeout(r, 400)) }\n",
      )
      const runs = await Promise.all([0, 1].map(() => tenancy(bench, ['migrate', '--json'], { env })))
      for (const run of runs) expect(run.exitCode, run.stderr).toBe(0)
      const applied = runs.flatMap((run) => run.json.sites.flatMap((s: any) => s.applied))
      expect(applied.sort()).toEqual(['shared_lib/0005_slow', 'shared_lib/0005_slow'])
      for (const site of ['r1.localhost', 'r2.localhost'])
        expect(await count(bench, site, "select count(*) as n from tenancy_migrations where name = '0005_slow'")).toBe(
          1,
        )
    })
  })
})

const SERVERS = SITE_BACKENDS.filter((b) => b.name !== 'sqlite') as { name: 'mariadb' | 'postgres'; skip: boolean }[]

describe.each(SERVERS)('server sites on $name', ({ name: backend, skip }) => {
  describe.skipIf(skip)('', () => {
    it("one site's credentials cannot connect to or read another site's database", async () => {
      const bench = makeBench()
      const env = useBackend(bench, backend)
      await newSites(bench, ['a.localhost', 'b.localhost'], env)
      const a = siteConfig(bench, 'a.localhost')
      const b = siteConfig(bench, 'b.localhost')
      const intoB = await serverQuery(backend, 'select 1 as n', {
        user: a.db_user,
        password: a.db_password,
        database: b.db_name,
      })
      expect(intoB.error).toMatch(backend === 'postgres' ? /permission denied for database/ : /Access denied for user/)
      // Connected to its own database, A cannot read B's tables either.
      const crossRead = await serverQuery(
        backend,
        backend === 'postgres'
          ? `select count(*) as n from settings`
          : `select count(*) as n from \`${b.db_name}\`.settings`,
        {
          user: a.db_user,
          password: a.db_password,
          database: a.db_name,
        },
      )
      if (backend === 'mariadb') expect(crossRead.error).toMatch(/denied/)
      else expect(crossRead.rows[0].n).toBeGreaterThan(0) // its own table: PostgreSQL has no cross-database queries
      // The grant names one database: `_` is not a wildcard that would let A make (or reach) `x<hex>`.
      if (backend === 'mariadb') {
        const lookalike = await serverQuery(backend, `create database \`x${a.db_name.slice(1)}\``, {
          user: a.db_user,
          password: a.db_password,
          database: a.db_name,
        })
        expect(lookalike.error).toMatch(/denied/)
      }
      // (The test PostgreSQL trusts local logins, so only MariaDB checks passwords here.)
      if (backend === 'mariadb') {
        const wrongPassword = await serverQuery(backend, 'select 1', {
          user: a.db_user,
          password: b.db_password,
          database: a.db_name,
        })
        expect(wrongPassword.error).toMatch(/Access denied/)
      }
    })

    it('a crash between "create database" and "create user" resumes: provision finishes, drop-site clears a half-made site', async () => {
      const bench = makeBench()
      const env = useBackend(bench, backend)
      const crashed = await tenancy(bench, ['tenant', 'create', 'acme'], {
        env: { ...env, TENANCY_FAULT: 'between-database-and-user' },
      })
      expect(crashed.exitCode).not.toBe(0)
      const half = siteConfig(bench, 'acme.localhost')
      const made = await serverHas(backend, half.db_name)
      expect(made.database !== made.user).toBe(true) // exactly one of the two exists
      const resumed = await tenancy(bench, ['provision', 'acme', '--json'], { env })
      expect(resumed.exitCode, resumed.stderr).toBe(0)
      const show = (await tenancy(bench, ['tenant', 'show', 'acme', '--show-secrets', '--json'], { env })).json
      expect(show).toMatchObject({ status: 'active', provisioning_status: 'completed' })
      const now = siteConfig(bench, 'acme.localhost')
      expect(await serverHas(backend, now.db_name)).toEqual({ database: true, user: true })
      if (now.db_name !== half.db_name)
        expect(await serverHas(backend, half.db_name)).toEqual({ database: false, user: false })
      expect(
        (
          await tenancy(bench, ['verify-key', show.api_key, '--site', 'acme.localhost'], {
            env,
            input: show.api_secret,
          })
        ).exitCode,
      ).toBe(0)

      // The same crash under new-site: the half-made site is refused by name, and drop-site clears it.
      const again = await tenancy(bench, ['new-site', 'half.localhost'], {
        env: { ...env, TENANCY_FAULT: 'between-database-and-user' },
      })
      expect(again.exitCode).not.toBe(0)
      const halfSite = siteConfig(bench, 'half.localhost')
      const retry = await tenancy(bench, ['new-site', 'half.localhost'], { env })
      expect(retry.exitCode).toBe(2)
      expect(retry.stderr).toMatch(/interrupted.*drop-site half\.localhost/)
      const drop = await tenancy(bench, ['drop-site', 'half.localhost', '--yes'], { env })
      expect(drop.exitCode, drop.stderr).toBe(0)
      expect(await serverHas(backend, halfSite.db_name)).toEqual({ database: false, user: false })
    })

    it('the server is given a verifier of the site password, one the server itself would compute', async () => {
      const { mysqlNativeHash, scramSha256Verifier } = await import('../src/secrets/server-verifiers.js')
      const password = 'Zx9_-abcDEF123ghi456JKL'
      if (backend === 'mariadb') {
        const r = await serverQuery(backend, `select password('${password}') as h`)
        expect(r.rows[0].h).toBe(mysqlNativeHash(password))
        return
      }
      // Let PostgreSQL hash the password, then recompute with its salt and iteration count.
      const role = `tenancy_scram_${randomBytes(4).toString('hex')}`
      try {
        await serverQuery(
          backend,
          `set password_encryption = 'scram-sha-256'; create role ${role} password '${password}'`,
        )
        const stored = (await serverQuery(backend, `select rolpassword as p from pg_authid where rolname = '${role}'`))
          .rows[0].p as string
        const [, iterations, salt] = /^SCRAM-SHA-256\$(\d+):([^$]+)\$/.exec(stored)!
        expect(await scramSha256Verifier(password, Buffer.from(salt!, 'base64'), Number(iterations))).toBe(stored)
      } finally {
        await serverQuery(backend, `drop role if exists ${role}`)
      }
    })

    it('an existing database that is not ours is refused, not adopted', async () => {
      const bench = makeBench()
      const env = useBackend(bench, backend)
      const name = `_${'ab12'.repeat(4)}`
      await serverQuery(backend, backend === 'postgres' ? `create database "${name}"` : `create database \`${name}\``)
      try {
        const r = await tenancy(bench, ['new-site', 'taken.localhost', '--db-name', name], { env })
        expect(r.exitCode).toBe(1)
        expect(r.stderr).toMatch(new RegExp(`database "${name}" exists already on .*pick another --db-name`))
        expect(await serverHas(backend, name)).toEqual({ database: true, user: false })
        expect(await registryRows(bench, 'select name from sites')).toEqual([])
        // Another site's database, recorded in the registry, is refused before anything is made.
        const own = `_${randomBytes(8).toString('hex')}`
        expect((await tenancy(bench, ['new-site', 'first.localhost', '--db-name', own], { env })).exitCode).toBe(0)
        const second = await tenancy(bench, ['new-site', 'second.localhost', '--db-name', own], { env })
        expect(second.exitCode).toBe(2)
        expect(second.stderr).toMatch(
          new RegExp(`database "${own}" on .* belongs to site "first.localhost"; pick another --db-name`),
        )
        expect(await registryRows(bench, 'select name from sites')).toEqual([{ name: 'first.localhost' }])
        expect(await serverHas(backend, own)).toEqual({ database: true, user: true })
      } finally {
        await serverQuery(
          backend,
          backend === 'postgres' ? `drop database if exists "${name}"` : `drop database if exists \`${name}\``,
        )
      }
    })

    it('a server that is down, a wrong password or a missing one: one line naming the server and what to check, nothing left', async () => {
      const bench = makeBench()
      const env = useBackend(bench, backend)
      setConfig(bench, (c) => (c.db.port = 1))
      const down = await tenancy(bench, ['new-site', 'down.localhost'], { env })
      expect(down.exitCode).toBe(1)
      expect(down.stderr.split('\n').filter((line) => line.startsWith('error:'))).toHaveLength(1)
      expect(down.stderr).not.toMatch(/\n\s+at /)
      expect(down.stderr).toMatch(
        new RegExp(`${backend === 'postgres' ? 'PostgreSQL' : 'MariaDB'} at 127\\.0\\.0\\.1:1 failed: .*is it running`),
      )
      expect(await registryRows(bench, 'select name from sites')).toEqual([])
      expect(() => statSync(join(bench, 'sites', 'down.localhost'))).toThrow()

      const env2 = useBackend(bench, backend)
      const rootUser = 'tenancy_test_low'
      if (backend === 'postgres')
        await serverQuery(
          backend,
          `do $$ begin if not exists (select from pg_roles where rolname = '${rootUser}') then create role ${rootUser} login password 'pw'; end if; end $$`,
        )
      else await serverQuery(backend, `create user if not exists '${rootUser}'@'%' identified by 'pw'`)
      // An unknown admin user: the test PostgreSQL trusts local logins, so a wrong password alone would pass there.
      setConfig(bench, (c) => (c.db.root_user = 'tenancy_no_such_user'))
      const wrong = await tenancy(bench, ['new-site', 'wrong.localhost'], {
        env: { TENANCY_DB_ROOT_PASSWORD: 'not-it' },
      })
      expect(wrong.exitCode).toBe(1)
      expect(wrong.stderr).toMatch(/check the user and password/)
      setConfig(bench, (c) => (c.db.root_user = rootUser))
      const low = await tenancy(bench, ['new-site', 'low.localhost'], { env: { TENANCY_DB_ROOT_PASSWORD: 'pw' } })
      expect(low.exitCode).toBe(1)
      expect(low.stderr).toMatch(/lacks the privilege/)
      expect(low.stderr).not.toMatch(/pw'|IDENTIFIED BY|PASSWORD '/)
      expect(await registryRows(bench, 'select name from sites')).toEqual([])
      void env2

      await serverQuery(
        backend,
        backend === 'postgres' ? `drop role if exists ${rootUser}` : `drop user if exists '${rootUser}'@'%'`,
      )

      const missing = await tenancy(bench, ['new-site', 'nopw.localhost'])
      expect(missing.exitCode).toBe(2)
      expect(missing.stderr).toMatch(
        new RegExp(
          `missing ${backend === 'postgres' ? 'PostgreSQL' : 'MariaDB'} root password: looked in --db-root-password-file FILE, the TENANCY_DB_ROOT_PASSWORD environment variable`,
        ),
      )
    })
  })
})

describe.skipIf(!REGISTRIES.find((r) => r.name === 'postgres' && !r.skip))('the registry on PostgreSQL', () => {
  it('a registry database that is not there is exit 2 with the fix; a server that is down is exit 1; the password is never shown', async () => {
    const bench = makeBench()
    const url = new URL(process.env.TENANCY_TEST_POSTGRES_URL!)
    url.password = 'hunter2-secret'
    url.pathname = '/tenancy_no_such_registry'
    const missing = await tenancy(bench, ['tenant', 'list'], { env: { TENANCY_REGISTRY_URL: url.toString() } })
    expect(missing.exitCode).toBe(2)
    expect(missing.stderr).toMatch(
      /cannot open the registry postgres:\/\/[^:]+:\*\*\*@.*tenancy_no_such_registry.*createdb/,
    )
    url.port = '1'
    const down = await tenancy(bench, ['tenant', 'list'], { env: { TENANCY_REGISTRY_URL: url.toString() } })
    expect(down.exitCode).toBe(1)
    expect(down.stderr).toMatch(/is the server running/)
    for (const r of [missing, down]) expect(r.stderr + r.stdout).not.toMatch(/hunter2/)

    // The same registry from the config: tenants recorded by one bench directory are seen by another.
    await useRegistry(bench, 'postgres')
    const other = makeBench()
    setConfig(
      other,
      (c) => (c.registry = JSON.parse(readFileSync(join(bench, 'tenancy.config.json'), 'utf8')).registry),
    )
    setConfig(bench, (c) => (c.auto_provision_tenant_sites = false))
    expect((await tenancy(bench, ['tenant', 'create', 'shared'])).exitCode).toBe(0)
    const seen = await tenancy(other, ['tenant', 'list', '--json'])
    expect(seen.json.tenants.map((t: any) => t.name)).toEqual(['shared'])
  })
})
