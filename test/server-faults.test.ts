import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { makeBench, query, setConfig, spawnTenancy, tenancy, type CliResult } from './helpers.js'
import { HAVE_MARIADB, HAVE_PG, privateMariadb, privatePostgres, until, type PrivateServer } from './private-servers.js'

// SPEC §6 "No crash is fatal": a database server that goes away mid-command is one line naming
// it (exit 1), the same rollback as any other failure, and one --json document; what could not
// be undone while it was down is left recorded, so doctor --fix or drop-site finishes it. Each
// server is a private instance in a temporary directory, killed for real at points the test
// sees happen on the server itself (a statement running, a role made).

const ENV = { TENANCY_DB_ROOT_PASSWORD: '' }

/** A statement the server is running right now (not the polling query itself: it starts with "select count"). */
function running(server: PrivateServer, kind: 'postgres' | 'mariadb', prefix: string): Promise<boolean> {
  const text =
    kind === 'postgres'
      ? `select count(*) as n from pg_stat_activity where state = 'active' and query like '${prefix}%'`
      : `select count(*) as n from information_schema.processlist where info like '${prefix}%'`
  return server.query(text).then((rows) => Number(rows[0]?.n) > 0)
}

/** Runs `args`; when `trigger` resolves, takes the server away; returns the result. */
async function killDuring(
  bench: string,
  server: PrivateServer,
  args: string[],
  trigger: (child: ReturnType<typeof spawnTenancy>, stderr: () => string) => Promise<void>,
  env: Record<string, string> = {},
): Promise<CliResult> {
  const child = spawnTenancy(bench, args, { ...ENV, ...env })
  let stderr = ''
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const ended = child.then(() => undefined)
  // A run that ends before its trigger has nothing to prove: the assertions below say so.
  const fired = trigger(child, () => stderr)
  fired.catch(() => {})
  await Promise.race([fired, ended])
  await server.kill()
  const result = await child
  const stdout = String(result.stdout ?? '')
  let json: any
  try {
    json = JSON.parse(stdout)
  } catch {
    json = undefined
  }
  return { exitCode: result.exitCode ?? -1, stdout, stderr: String(result.stderr ?? ''), json }
}

/** Exit 1, no crash or stack, one JSON document on stdout. */
function expectCleanFailure(result: CliResult): void {
  expect(result.stderr).not.toMatch(/Unhandled|^\s+at |this looks like a bug/m)
  expect(result.exitCode).toBe(1)
  expect(result.json, `stdout is one JSON document: ${result.stdout}`).toBeDefined()
}

/** The first `error:` line names the server. */
function expectErrorNaming(result: CliResult, server: PrivateServer): void {
  const line = result.stderr.split('\n').find((l) => l.startsWith('error: '))
  expect(line, result.stderr).toMatch(server.label)
  expect(result.json.error.message).toMatch(server.label)
}

function siteRow(bench: string, site: string): { state: string } | undefined {
  return query(join(bench, '.tenancy', 'registry.db'), 'select state from sites where name = ?', site)[0]
}

/** An app whose one migration holds a statement on the server for 3 s. */
function addWaitingApp(bench: string, kind: 'postgres' | 'mariadb'): void {
  const dir = join(bench, 'apps', 'wait_app')
  mkdirSync(join(dir, 'migrations'), { recursive: true })
  writeFileSync(
    join(dir, 'app.json'),
    JSON.stringify({
      name: 'wait_app',
      title: 'Wait',
      version: '1.0.0',
      description: 'waits on the server',
      requires: [],
    }),
  )
  writeFileSync(join(dir, 'migrations', '0001_wait.mjs'), waitMigration(kind))
}

function waitMigration(kind: 'postgres' | 'mariadb'): string {
  const statement = kind === 'postgres' ? 'select pg_sleep(3)' : 'do sleep(3)'
  // IF NOT EXISTS: on MariaDB the CREATE of a run the server died in stays (DDL commits).
  return `export async function up(db, ctx) {\n  await ctx.sql\`create table if not exists waited (id integer)\`.execute(db)\n  await ctx.sql.raw('${statement}').execute(db)\n}\n`
}

const SERVERS = [
  { kind: 'postgres' as const, skip: !HAVE_PG, make: privatePostgres, statement: 'select pg_sleep' },
  { kind: 'mariadb' as const, skip: !HAVE_MARIADB, make: privateMariadb, statement: 'do sleep' },
]

describe.each(SERVERS)('$kind server that goes away mid-command', ({ kind, skip, make, statement }) => {
  let server: PrivateServer

  beforeAll(async () => {
    if (!skip) server = await make()
  }, 60_000)
  afterAll(async () => {
    await server?.remove()
  })

  const benchOn = () => {
    const bench = makeBench()
    setConfig(
      bench,
      (c) =>
        (c.db = {
          type: kind,
          host: '127.0.0.1',
          port: server.port,
          root_user: kind === 'postgres' ? 'postgres' : 'root',
        }),
    )
    return bench
  }

  /** The databases on the private server that belong to no ready site of `bench`: must be none. */
  const orphans = async (bench: string) => {
    const ready = new Set(
      query(join(bench, '.tenancy', 'registry.db'), "select db_name from sites where state = 'ready'").map(
        (r: any) => r.db_name,
      ),
    )
    const rows =
      kind === 'postgres'
        ? await server.query(
            "select datname as name from pg_database where datname like 'f\\_%' union select rolname from pg_roles where rolname like 'f\\_%'",
          )
        : await server.query(
            "select schema_name as name from information_schema.schemata where schema_name like 'f\\_%' union select user from mysql.user where user like 'f\\_%'",
          )
    return rows.map((r) => r.name as string).filter((n) => !ready.has(n))
  }

  it.skipIf(skip)(
    'new-site: between the database and its user, in an app migration, and in the middle of tenant_ops; then doctor --fix, drop-site and a rerun',
    async () => {
      const bench = benchOn()
      addWaitingApp(bench, kind)

      // 1. Between the first and the second CREATE of driver.create: the server holds what was
      //    made, the command cannot drop it, so the row stays (failed) for drop-site.
      const first =
        kind === 'postgres'
          ? `select count(*) as n from pg_roles where rolname = 'f_made'`
          : `select count(*) as n from information_schema.schemata where schema_name = 'f_made'`
      const mid = await killDuring(
        bench,
        server,
        ['new-site', 'made.localhost', '--db-name', 'f_made', '--json'],
        () => until('the first CREATE', async () => Number((await server.query(first))[0]?.n) === 1),
        {
          TENANCY_FAULT: 'pause:between-database-and-user',
        },
      )
      expectCleanFailure(mid)
      expectErrorNaming(mid, server)
      expect(mid.json.error.message).toMatch(/closed the connection|stopped accepting connections/)
      expect(siteRow(bench, 'made.localhost')?.state).toBe('failed')
      expect(existsSync(join(bench, 'sites', 'made.localhost', 'site_config.json'))).toBe(true)
      await server.start()

      // 2. Inside the install transaction, while the server runs the app's migration.
      const inMigration = await killDuring(
        bench,
        server,
        ['new-site', 'wait.localhost', '--db-name', 'f_wait', '--install-app', 'wait_app', '--json'],
        () => until('the migration statement', () => running(server, kind, statement)),
      )
      expectCleanFailure(inMigration)
      expectErrorNaming(inMigration, server)
      expect(inMigration.json.error.message).toMatch(/closed the connection/)
      expect(siteRow(bench, 'wait.localhost')?.state ?? 'gone').toMatch(/^(gone|failed)$/)
      await server.start()

      // 3. Somewhere in tenant_ops (migrations, fixtures or its after_install hook).
      const inApp = await killDuring(
        bench,
        server,
        ['new-site', 'ops.localhost', '--db-name', 'f_ops', '--install-app', 'tenant_ops', '--json'],
        (_c, stderr) => until('shared_lib installed', async () => /installed shared_lib/.test(stderr())),
      )
      expectCleanFailure(inApp)
      expectErrorNaming(inApp, server)
      expect(siteRow(bench, 'ops.localhost')?.state ?? 'gone').toMatch(/^(gone|failed)$/)
      await server.start()

      // Nothing is left as ready or creating; what the failed runs kept, drop-site and doctor finish.
      const drop = await tenancy(bench, ['drop-site', 'made.localhost', '--yes', '--json'], { env: ENV })
      expect(drop.exitCode, drop.stderr).toBe(0)
      const fix = await tenancy(bench, ['doctor', '--fix', '--json'], { env: ENV })
      expect(fix.exitCode, fix.stderr).toBe(0)
      expect(query(join(bench, '.tenancy', 'registry.db'), 'select name from sites')).toEqual([])
      expect(existsSync(join(bench, 'sites')) ? readdirSync(join(bench, 'sites')) : []).toEqual([])
      expect(await orphans(bench)).toEqual([])

      // And the same commands succeed now that the server is back.
      for (const [site, db, app] of [
        ['made.localhost', 'f_made', 'shared_lib'],
        ['ops.localhost', 'f_ops', 'tenant_ops'],
      ]) {
        const again = await tenancy(bench, ['new-site', site!, '--db-name', db!, '--install-app', app!, '--json'], {
          env: ENV,
        })
        expect(again.exitCode, again.stderr).toBe(0)
        expect(siteRow(bench, site!)?.state).toBe('ready')
      }
      expect(await orphans(bench)).toEqual([])
    },
    90_000,
  )

  it.skipIf(skip)(
    'restore: the server goes while the backup loads; the site stays on its old database, doctor --fix drops the new one',
    async () => {
      const bench = benchOn()
      const made = await tenancy(
        bench,
        ['new-site', 'rs.localhost', '--db-name', 'f_rs', '--install-app', 'tenant_ops', '--json'],
        { env: ENV },
      )
      expect(made.exitCode, made.stderr).toBe(0)
      const backup = await tenancy(bench, ['backup', '--site', 'rs.localhost', '--json'], { env: ENV })
      expect(backup.exitCode, backup.stderr).toBe(0)
      const set = backup.json.sites[0].path
      const intentFile = join(bench, 'sites', 'rs.localhost', '.restore.json')
      const databaseCount = async (name: string) =>
        kind === 'postgres'
          ? (await server.query(`select 1 from pg_database where datname = '${name}'`)).length
          : (await server.query(`select 1 from information_schema.schemata where schema_name = '${name}'`)).length
      // Paused just after the fresh database is made: the server goes before the load.
      const r = await killDuring(
        bench,
        server,
        ['restore', 'rs.localhost', set, '--yes', '--no-backup', '--json'],
        () =>
          until('the fresh database', async () => {
            if (!existsSync(intentFile)) return false
            const name = JSON.parse(readFileSync(intentFile, 'utf8')).new.db_name
            return (await databaseCount(name)) === 1
          }),
        { TENANCY_FAULT: 'pause:restore-after-create' },
      )
      expectCleanFailure(r)
      expectErrorNaming(r, server)
      expect(r.json.error.message).toMatch(/the site is unchanged/)
      // One line: the restore program's own indented lines are joined into it.
      expect(r.json.error.message).not.toMatch(/\n/)
      const fresh = JSON.parse(readFileSync(intentFile, 'utf8')).new.db_name
      expect(JSON.parse(readFileSync(join(bench, 'sites', 'rs.localhost', 'site_config.json'), 'utf8')).db_name).toBe(
        'f_rs',
      )
      await server.start()
      const exists = () => databaseCount(fresh)
      expect(await exists()).toBe(1)
      const fix = await tenancy(bench, ['doctor', '--fix', '--json'], { env: ENV })
      expect(fix.exitCode, fix.stderr).toBe(0)
      expect(fix.json.findings.map((f: any) => [f.kind, f.fixed])).toEqual([['interrupted_restore', true]])
      expect(await exists()).toBe(0)
      expect(existsSync(intentFile)).toBe(false)
      const again = await tenancy(bench, ['restore', 'rs.localhost', set, '--yes', '--no-backup', '--json'], {
        env: ENV,
      })
      expect(again.exitCode, again.stderr).toBe(0)
      // The site's first database went with the restore that finished; the killed one's is gone above.
      expect(await databaseCount('f_rs')).toBe(0)
    },
    90_000,
  )

  it.skipIf(skip || kind !== 'postgres')(
    'a registry on the server: one line naming the registry, and doctor --fix finishes the half-made site',
    async () => {
      const bench = makeBench()
      await server.query('create database f_registry')
      setConfig(bench, (c) => (c.registry = `postgres://postgres@127.0.0.1:${server.port}/f_registry`))
      // The site is on SQLite; its app's migration takes 2 s, in which the registry's server goes.
      const app = join(bench, 'apps', 'slow_app')
      mkdirSync(join(app, 'migrations'), { recursive: true })
      writeFileSync(
        join(app, 'app.json'),
        JSON.stringify({ name: 'slow_app', title: 'Slow', version: '1.0.0', description: 'slow', requires: [] }),
      )
      writeFileSync(
        join(app, 'migrations', '0001_wait.mjs'),
        'export async function up() {\n  await new Promise((r) => setTimeout(r, 2000))\n}\n',
      )
      const r = await killDuring(
        bench,
        server,
        ['new-site', 'reg.localhost', '--install-app', 'slow_app', '--json'],
        (_c, stderr) => until('the site created', async () => /created site/.test(stderr())),
      )
      expectCleanFailure(r)
      const registry = new RegExp(
        `the registry postgres://postgres@127\\.0\\.0\\.1:${server.port}/f_registry (closed the connection|stopped accepting connections)`,
      )
      expect(r.stderr.split('\n').find((l) => l.startsWith('error: '))).toMatch(registry)
      expect(r.json.error.message).toMatch(registry)
      await server.start()
      const fix = await tenancy(bench, ['doctor', '--fix', '--json'], { env: ENV })
      expect(fix.exitCode, fix.stderr).toBe(0)
      expect((await tenancy(bench, ['list-sites', '--json'], { env: ENV })).json.sites).toEqual([])
      expect(existsSync(join(bench, 'sites', 'reg.localhost'))).toBe(false)
      const again = await tenancy(bench, ['new-site', 'reg.localhost', '--json'], { env: ENV })
      expect(again.exitCode, again.stderr).toBe(0)
    },
    60_000,
  )

  it.skipIf(skip)(
    'doctor with the site server down: the site "cannot be checked" naming the server, nothing repaired',
    async () => {
      const bench = benchOn()
      const made = await tenancy(bench, ['new-site', 'dn.localhost', '--db-name', 'f_dn', '--json'], { env: ENV })
      expect(made.exitCode, made.stderr).toBe(0)
      await server.kill()
      try {
        const r = await tenancy(bench, ['doctor', '--fix', '--json'], { env: ENV })
        expect(r.exitCode).toBe(1)
        const [finding] = r.json.findings
        expect(finding.problem).toMatch(/^site "dn\.localhost" cannot be checked: /)
        expect(finding.problem).toMatch(server.label)
        expect(finding.problem).not.toMatch(/credentials are what is missing/)
        expect(finding).toMatchObject({ kind: 'damaged_site', fixed: false, fix_error: null })
        expect(finding.fix).toMatch(/start the database server/)
      } finally {
        await server.start()
      }
      expect(siteRow(bench, 'dn.localhost')?.state).toBe('ready')
      expect((await tenancy(bench, ['doctor', '--json'], { env: ENV })).json.findings).toEqual([])
    },
    60_000,
  )

  it.skipIf(skip || kind !== 'postgres')(
    'migrate --with-pending, the registry gone mid-run: exit 1 naming it, no pending site called "being pulled"',
    async () => {
      const bench = makeBench({ lightSites: true })
      await server.query('create database f_migreg')
      setConfig(bench, (c) => (c.registry = `postgres://postgres@127.0.0.1:${server.port}/f_migreg`))
      // Sites by name: a.localhost first, then the pool's two (pending-…), each leased when reached.
      expect((await tenancy(bench, ['new-site', 'a.localhost', '--install-app', 'shared_lib'])).exitCode).toBe(0)
      expect((await tenancy(bench, ['pending-create', '--count', '2'])).exitCode).toBe(0)
      const started = join(bench, 'migration-started')
      writeFileSync(
        join(bench, 'apps', 'shared_lib', 'migrations', '0099_slow.mjs'),
        `import { writeFileSync } from 'node:fs'\nexport async function up() {\n  writeFileSync(${JSON.stringify(started)}, '1')\n  await new Promise((r) => setTimeout(r, 1500))\n}\n`,
      )
      const r = await killDuring(bench, server, ['migrate', '--with-pending', '--concurrency', '1', '--json'], () =>
        until('the first site migrating', async () => existsSync(started)),
      )
      expectCleanFailure(r)
      expect(r.stderr.split('\n').find((l) => l.startsWith('error: '))).toMatch(
        new RegExp(`the registry postgres://postgres@127\\.0\\.0\\.1:${server.port}/f_migreg`),
      )
      expect(r.stdout + r.stderr).not.toMatch(/being pulled, provisioned or cleared/)
      await server.start()
      const again = await tenancy(bench, ['migrate', '--with-pending', '--json'], { env: ENV })
      expect(again.exitCode, again.stderr).toBe(0)
      expect(again.json.sites).toHaveLength(3)
      for (const site of again.json.sites) expect(['migrated', 'up_to_date']).toContain(site.status)
    },
    90_000,
  )

  it.skipIf(skip)(
    'migrate over several sites: each failed site names the server, and the next migrate finishes them',
    async () => {
      const bench = benchOn()
      const sites = ['m1.localhost', 'm2.localhost', 'm3.localhost']
      const made = await Promise.all(
        sites.map((site, i) =>
          tenancy(bench, ['new-site', site, '--db-name', `f_m${i}`, '--install-app', 'shared_lib', '--json'], {
            env: ENV,
          }),
        ),
      )
      for (const r of made) expect(r.exitCode, r.stderr).toBe(0)
      // A new shared_lib migration that holds the server for 3 s on every site.
      writeFileSync(join(bench, 'apps', 'shared_lib', 'migrations', '0099_wait.mjs'), waitMigration(kind))
      const result = await killDuring(bench, server, ['migrate', '--json'], () =>
        until('the migration statement', () => running(server, kind, statement)),
      )
      expectCleanFailure(result)
      const failed = result.json.sites.filter((s: any) => s.status === 'failed')
      expect(failed.length).toBeGreaterThan(0)
      for (const site of failed) expect(site.error).toMatch(server.label)
      await server.start()

      const again = await tenancy(bench, ['migrate', '--json'], { env: ENV })
      expect(again.exitCode, again.stderr).toBe(0)
      expect(again.json.sites.map((s: any) => s.status).sort()).toEqual(['migrated', 'migrated', 'migrated'])
    },
    90_000,
  )
})

// SPEC §6 "No step runs unbounded": a hook, `run` step or notify command that leaves a daemon
// holding its stdout is still stopped at its timeout, and tenancy stops waiting on the pipes.
describe('a command that leaves a daemon behind', () => {
  const daemons: string[] = []
  afterEach(() => {
    for (const file of daemons.splice(0)) {
      if (!existsSync(file)) continue
      try {
        process.kill(Number(readFileSync(file, 'utf8')), 'SIGKILL')
      } catch {
        // Gone already.
      }
    }
  })

  /** `setsid sleep 1000 & echo started`, with the sleep's pid written down so the test can end it. */
  const daemonCommand = (bench: string) => {
    const file = join(bench, 'daemon.pid')
    daemons.push(file)
    return `setsid sh -c 'echo $$ > ${file}; exec sleep 1000' & echo started`
  }
  const daemonStarted = (bench: string) => until('the daemon', async () => existsSync(join(bench, 'daemon.pid')))

  const benchWithHook = (hook: string) => {
    const bench = makeBench({ exampleApps: false })
    mkdirSync(join(bench, 'apps', 'hook_app', 'migrations'), { recursive: true })
    writeFileSync(
      join(bench, 'apps', 'hook_app', 'app.json'),
      JSON.stringify({
        name: 'hook_app',
        title: 'Hook',
        version: '1.0.0',
        description: 'a hook',
        requires: [],
        hooks: { after_install: hook },
      }),
    )
    setConfig(bench, (c) => (c.provision.step_timeout = 3))
    return bench
  }

  it('an after_install hook: fails "timed out after 3 s" within seconds, and the site is rolled back', async () => {
    const bench = makeBench({ exampleApps: false })
    const hooked = benchWithHook(daemonCommand(bench))
    const started = Date.now()
    const r = await tenancy(hooked, ['new-site', 'd.localhost', '--install-app', 'hook_app', '--json'], {
      timeout: 30_000,
    })
    expect(Date.now() - started).toBeLessThan(10_000)
    expect(r.exitCode).toBe(1)
    expect(r.json.error.message).toMatch(
      /the after_install hook of app "hook_app" on site "d.localhost" timed out after 3 s; output:\nstarted/,
    )
    expect(existsSync(join(bench, 'daemon.pid'))).toBe(true)
    expect(siteRow(hooked, 'd.localhost')).toBeUndefined()
    expect(existsSync(join(hooked, 'sites', 'd.localhost'))).toBe(false)
  })

  it('SIGTERM while such a hook runs ends tenancy at once (exit 130), rolled back', async () => {
    const bench = makeBench({ exampleApps: false })
    const hooked = benchWithHook(daemonCommand(bench))
    setConfig(hooked, (c) => (c.provision.step_timeout = 600))
    const child = spawnTenancy(hooked, ['new-site', 'd.localhost', '--install-app', 'hook_app', '--json'])
    await daemonStarted(bench)
    const signalled = Date.now()
    child.kill('SIGTERM')
    const r = await child
    expect(Date.now() - signalled).toBeLessThan(5_000)
    expect(r.exitCode).toBe(130)
    expect(String(r.stderr)).toMatch(/interrupted/)
    expect(siteRow(hooked, 'd.localhost')).toBeUndefined()
  })

  it('a run step: the step fails "timed out after 3 s" in the registry', async () => {
    const bench = makeBench({ exampleApps: false })
    setConfig(bench, (c) => {
      c.provision.step_timeout = 3
      c.provision.steps = ['create-site', { name: 'daemon', run: daemonCommand(bench) }, 'activate']
    })
    const started = Date.now()
    const r = await tenancy(bench, ['tenant', 'create', 'acme', '--json'], { timeout: 30_000 })
    expect(Date.now() - started).toBeLessThan(10_000)
    expect(r.exitCode).toBe(1)
    expect(r.stderr).toMatch(/step "daemon" failed: its command timed out after 3 s/)
    const [step] = query(
      join(bench, '.tenancy', 'registry.db'),
      "select status, error from steps where name = 'daemon'",
    )
    expect(step.status).toBe('failed')
    expect(step.error).toMatch(/timed out after 3 s/)
  })

  it('a notify command: stopped at the timeout; the tenant stays active', async () => {
    const bench = makeBench({ exampleApps: false })
    setConfig(bench, (c) => {
      c.provision.step_timeout = 3
      c.provision.steps = ['create-site', 'activate']
      c.provision.notify = { run: daemonCommand(bench) }
    })
    const started = Date.now()
    const r = await tenancy(bench, ['tenant', 'create', 'acme', '--json'], { timeout: 30_000 })
    expect(Date.now() - started).toBeLessThan(10_000)
    expect(r.exitCode, r.stderr).toBe(0)
    expect(r.stderr).toMatch(/the provision.notify command timed out after 3 s/)
    expect(
      query(join(bench, '.tenancy', 'registry.db'), "select status from tenants where name = 'acme'")[0].status,
    ).toBe('active')
  })

  it('5 MB of output: the step keeps the last 64 KiB after "[… N bytes cut]", a hook likewise', async () => {
    const bench = makeBench({ exampleApps: false })
    const print = `node -e "process.stdout.write('x'.repeat(5 * 1024 * 1024)); process.stdout.write('\\\\nEND\\\\n')"`
    const total = 5 * 1024 * 1024 + 5
    setConfig(bench, (c) => (c.provision.steps = ['create-site', { name: 'loud', run: print }, 'activate']))
    const r = await tenancy(bench, ['tenant', 'create', 'acme', '--json'])
    expect(r.exitCode, r.stderr).toBe(0)
    const [step] = query<{ output: string }>(
      join(bench, '.tenancy', 'registry.db'),
      "select output from steps where name = 'loud'",
    )
    expect(step!.output.startsWith(`[… ${total - 64 * 1024} bytes cut]\nxxx`)).toBe(true)
    expect(step!.output.endsWith('x\nEND')).toBe(true)
    expect(Buffer.byteLength(step!.output)).toBeLessThanOrEqual(64 * 1024 + 40)

    const hooked = benchWithHook(print)
    const site = await tenancy(hooked, ['new-site', 'loud.localhost', '--install-app', 'hook_app', '--json'])
    expect(site.exitCode, site.stderr).toBe(0)
    const hookOutput: string = site.json.apps.find(
      (a: any) => a.app === 'hook_app' || a.name === 'hook_app',
    ).hook_output
    expect(hookOutput.startsWith(`[… ${total - 64 * 1024} bytes cut]\n`)).toBe(true)
    expect(hookOutput.endsWith('END')).toBe(true)
  })
})
