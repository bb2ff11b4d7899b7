import { cpSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { runInstalledAppsHook } from '../src/apps/hooks.js'
import { installApps, newSite, usingBench, usingSite } from '../src/index.js'
import { ROOT, addApp, makeBench, setConfig, sleep, spawnTenancy, tenancy, tempDir } from './helpers.js'
import { SITE_BACKENDS, asSite, useBackend } from './backends.js'
import { allTables, tableNames } from './restore-helpers.js'

// App hooks (SPEC §9): a shell command or {"module", "export"} called in-process inside the
// step's transaction and timeout. The sample apps use modules; test/fixtures/apps/shell_notes
// keeps the command form tested.

const SHELL_APP = join(ROOT, 'test', 'fixtures', 'apps', 'shell_notes')

/** `thrower`: a table, a fixture row, and an after_install module that writes a row, then throws while `fail` exists. */
function addThrowingApp(bench: string): void {
  addApp(
    bench,
    'thrower',
    { hooks: { after_install: { module: 'hooks/install.mjs', export: 'afterInstall' } } },
    {
      'migrations/0001_items.sql': 'CREATE TABLE thrower_items (id VARCHAR(32) PRIMARY KEY, note VARCHAR(255));\n',
      'fixtures/01_items.json': JSON.stringify({ table: 'thrower_items', rows: [{ id: 'fixture', note: 'fixture' }] }),
      'hooks/install.mjs': `import { existsSync } from 'node:fs'
export async function afterInstall({ db, site }) {
  await db.insertInto('thrower_items').values({ id: 'hook', note: site }).execute()
  if (existsSync(new URL('../fail', import.meta.url))) throw new Error('no licence key for ' + site)
  return 'thrower installed on ' + site
}
`,
      fail: '',
    },
  )
}

const count = async (bench: string, site: string, sql: string) => Number((await asSite(bench, site, sql)).rows[0]?.n)

describe.each(SITE_BACKENDS)('module hooks on $name', ({ name: backend, skip }) => {
  describe.skipIf(skip)('', () => {
    it('after_install writes its rows inside the install; a throw rolls the app back, and a rerun installs it', async () => {
      const bench = makeBench()
      const env = useBackend(bench, backend)
      addThrowingApp(bench)
      const made = await tenancy(bench, ['new-site', 'h.localhost', '--install-app', 'tenant_ops', '--json'], { env })
      expect(made.exitCode, made.stderr).toBe(0)
      expect(made.json.apps[1].hook_output).toMatch(
        /^tenant_ops after_install on h\.localhost: created project PRJ-ONBOARDING with 6 starter tasks, recorded app_installed in audit_log, set tenant_ops\.installed_at=/,
      )
      const project = await asSite(bench, 'h.localhost', "select description from projects where id = 'PRJ-ONBOARDING'")
      expect(project.rows[0].description).toBe(
        'Getting h.localhost up and running. Created from the "Tenant Onboarding" template when tenant_ops was installed.',
      )
      expect(
        await count(bench, 'h.localhost', "select count(*) as n from tasks where project_id = 'PRJ-ONBOARDING'"),
      ).toBe(6)
      expect(
        await count(bench, 'h.localhost', "select count(*) as n from tag_links where ref_id = 'PRJ-ONBOARDING'"),
      ).toBe(1)
      const audit = await asSite(bench, 'h.localhost', "select detail from audit_log where action = 'app_installed'")
      expect(audit.rows.map((r) => JSON.parse(r.detail))).toEqual([
        { site: 'h.localhost', version: '1.0.0', db_type: backend, onboarding_project: 'PRJ-ONBOARDING' },
      ])
      const installedAt = await asSite(
        bench,
        'h.localhost',
        "select setting_value from settings where setting_key = 'tenant_ops.installed_at'",
      )
      expect(installedAt.rows[0].setting_value).toMatch(/^\d{4}-\d\d-\d\dT/)

      const tables = await tableNames(bench, 'h.localhost')
      const failed = await tenancy(bench, ['install-app', 'thrower', '--site', 'h.localhost', '--json'], { env })
      expect(failed.exitCode).toBe(1)
      expect(failed.json.error.message).toBe(
        'the after_install hook of app "thrower" on site "h.localhost" failed: no licence key for h.localhost',
      )
      expect(await count(bench, 'h.localhost', "select count(*) as n from installed_apps where name = 'thrower'")).toBe(
        0,
      )
      const ledger = "select count(*) as n from tenancy_migrations where app = 'thrower'"
      if (backend === 'mariadb') {
        // MariaDB commits DDL as it runs: the app's table and its applied migration stay, empty
        // (the fixture's and the hook's rows rolled back with the rest); the rerun goes on from there.
        expect(await tableNames(bench, 'h.localhost')).toEqual([...tables, 'thrower_items'].sort())
        expect(await count(bench, 'h.localhost', ledger)).toBe(1)
        expect(await count(bench, 'h.localhost', 'select count(*) as n from thrower_items')).toBe(0)
      } else {
        expect(await tableNames(bench, 'h.localhost')).toEqual(tables)
        expect(await count(bench, 'h.localhost', ledger)).toBe(0)
      }

      rmSync(join(bench, 'apps', 'thrower', 'fail'))
      const again = await tenancy(bench, ['install-app', 'thrower', '--site', 'h.localhost', '--json'], { env })
      expect(again.exitCode, again.stderr).toBe(0)
      expect(again.json.apps[0]).toMatchObject({ status: 'installed', hook_output: 'thrower installed on h.localhost' })
      expect((await asSite(bench, 'h.localhost', 'select id from thrower_items order by id')).rows).toEqual([
        { id: 'fixture' },
        { id: 'hook' },
      ])
    })

    it('after_rename rewrites the data naming the old site (module and command hooks, requirements first)', async () => {
      const bench = makeBench()
      const env = useBackend(bench, backend)
      cpSync(SHELL_APP, join(bench, 'apps', 'shell_notes'), { recursive: true })
      const old = 'pending-0a1b2c3d4e.localhost'
      await usingBench({ cwd: bench, env: { ...process.env, ...env } }, async (b) => {
        await newSite(b, { site: old, installApps: ['tenant_ops', 'shell_notes'] })
        const before = JSON.stringify(await allTables(bench, old))
        expect(before).toContain(old)
        const outputs = await usingSite(b, old, (site) =>
          runInstalledAppsHook(
            b,
            'after_rename',
            { name: 'acme.localhost', previousName: old, path: site.path, dbType: site.conn.driver.type },
            site.conn,
          ),
        )
        expect(outputs).toEqual([
          {
            app: 'tenant_ops',
            output: `tenant_ops after_rename ${old} -> acme.localhost: rewrote 1 project description(s) and 1 audit entry`,
          },
          { app: 'shell_notes', output: `shell_notes: 1 note(s) moved from ${old} to acme.localhost` },
        ])
      })
      // Every row of every table, as text: the placeholder is gone, the new name is where it was.
      const after = JSON.stringify(await allTables(bench, old))
      expect(after).not.toContain(old)
      expect(after).toContain('Getting acme.localhost up and running.')
      const audit = await asSite(bench, old, "select detail from audit_log where action = 'app_installed'")
      expect(JSON.parse(audit.rows[0].detail).site).toBe('acme.localhost')
    })
  })
})

describe('module hooks: timeouts, interruptions, bad specs', () => {
  const sleeper = (bench: string) =>
    addApp(
      bench,
      'sleeper',
      { hooks: { after_install: { module: 'hooks/sleep.mjs' } } },
      {
        'migrations/0001_naps.sql': 'CREATE TABLE naps (id VARCHAR(32) PRIMARY KEY);\n',
        // Waits ten minutes (a timer holding the event loop); tells, through a file, what it saw.
        'hooks/sleep.mjs': `import { writeFileSync } from 'node:fs'
export default async ({ db, signal }) => {
  await db.insertInto('naps').values({ id: 'started' }).execute()
  writeFileSync(new URL('../started', import.meta.url), '')
  signal.addEventListener('abort', () => writeFileSync(new URL('../aborted', import.meta.url), signal.reason.message))
  await new Promise((resolve) => setTimeout(resolve, 600_000))
}
`,
      },
    )

  it('a module hook past provision.step_timeout fails its step, is rolled back, and the process ends', async () => {
    const bench = makeBench()
    sleeper(bench)
    setConfig(bench, (c) => {
      c.provision.apps = ['sleeper']
      c.provision.step_timeout = 1
    })
    const r = await tenancy(bench, ['tenant', 'create', 'slow', '--no-pool', '--json'], { timeout: 60_000 })
    expect(r.exitCode, r.stderr).toBe(1)
    const message = 'the after_install hook of app "sleeper" on site "slow.localhost" timed out after 1 s'
    expect(r.stderr).toContain(`step "install-app sleeper" failed: ${message}`)
    // The hook's signal was aborted with the same reason.
    expect(readFileSync(join(bench, 'apps', 'sleeper', 'aborted'), 'utf8')).toBe(message)
    const show = await tenancy(bench, ['tenant', 'show', 'slow', '--json'])
    expect(show.json.steps.find((s: any) => s.name === 'install-app sleeper')).toMatchObject({ status: 'failed' })
    // The site stays (an earlier step made it) without the app: its table and row were rolled back.
    expect(await tableNames(bench, 'slow.localhost')).not.toContain('naps')
    expect(
      await count(bench, 'slow.localhost', "select count(*) as n from installed_apps where name = 'sleeper'"),
    ).toBe(0)
  })

  describe.each(SITE_BACKENDS.filter((b) => b.name !== 'postgres'))(
    'a module hook stuck in a synchronous loop, on $name',
    ({ name: backend, skip }) => {
      it.skipIf(skip)(
        'stops the process soon after its timeout with one error line (exit 1), then is refused until its module changes',
        async () => {
          const bench = makeBench()
          const env = useBackend(bench, backend)
          addApp(
            bench,
            'spinner',
            { hooks: { after_install: { module: 'hooks/spin.mjs' } } },
            {
              'migrations/0001_spins.sql': 'CREATE TABLE spins (id VARCHAR(32) PRIMARY KEY);\n',
              // Writes a row, then never yields: no timer, no signal handler can run in this thread.
              'hooks/spin.mjs': `import { existsSync } from 'node:fs'
export default async ({ db }) => {
  await db.insertInto('spins').values({ id: 'spun' }).execute()
  while (!existsSync(new URL('../fixed', import.meta.url))) {}
}
`,
            },
          )
          setConfig(bench, (c) => {
            c.provision.apps = ['shared_lib', 'spinner']
            c.provision.step_timeout = 1
          })
          const started = Date.now()
          const r = await tenancy(bench, ['tenant', 'create', 'spin', '--no-pool', '--json'], { env, timeout: 60_000 })
          const message =
            'the after_install hook of app "spinner" on site "spin.localhost" blocked the process past its timeout of 1 s'
          expect(r.exitCode, r.stderr).toBe(1)
          // The timeout (1 s) and the watchdog's grace (5 s): stopped, not hung.
          expect(Date.now() - started).toBeLessThan(30_000)
          expect(r.json.error.message).toContain(message)
          expect(r.json.error.message).toContain('declare it as a command')
          const errors = r.stderr.split('\n').filter((l) => /error|debugger/i.test(l))
          expect(errors).toHaveLength(1)
          expect(errors[0]).toContain(message)
          // Its transaction went with the process: no row of the hook's (MariaDB keeps the table its DDL made).
          const tables = await tableNames(bench, 'spin.localhost')
          if (tables.includes('spins'))
            expect(await count(bench, 'spin.localhost', 'select count(*) as n from spins')).toBe(0)
          expect(
            await count(bench, 'spin.localhost', "select count(*) as n from installed_apps where name = 'spinner'"),
          ).toBe(0)
          // Creating it again points at the resume; with the hook fixed, provision finishes it.
          const again = await tenancy(bench, ['tenant', 'create', 'spin', '--no-pool'], { env })
          expect(again.exitCode).toBe(2)
          expect(again.stderr).toContain(
            'tenant "spin" already exists and its provisioning is not complete (in_progress); resume it with "tenancy provision spin"',
          )
          // Until its module changes, the hook is refused at once: the step fails and says why.
          const refused = await tenancy(bench, ['provision', 'spin'], { env, timeout: 60_000 })
          expect(refused.exitCode).toBe(1)
          expect(refused.stderr).toMatch(
            /the after_install hook of app "spinner" on site "spin\.localhost" is not run: it blocked the process on site "spin\.localhost" at \S+ \(a synchronous loop\) and hooks\/spin\.mjs has not changed since/,
          )
          const logged = await tenancy(bench, ['errors', '--tenant', 'spin', '--json'], { env })
          expect(JSON.stringify(logged.json)).toContain('is not run: it blocked the process')
          // A file beside it is no change; the module's own is.
          writeFileSync(join(bench, 'apps', 'spinner', 'fixed'), '')
          expect((await tenancy(bench, ['provision', 'spin'], { env })).exitCode).toBe(1)
          const module = join(bench, 'apps', 'spinner', 'hooks', 'spin.mjs')
          writeFileSync(module, `${readFileSync(module, 'utf8')}// fixed: ends once ../fixed exists\n`)
          const resumed = await tenancy(bench, ['provision', 'spin'], { env, timeout: 60_000 })
          expect(resumed.exitCode, resumed.stderr).toBe(0)
          expect(await count(bench, 'spin.localhost', 'select count(*) as n from spins')).toBe(1)
          const show = await tenancy(bench, ['tenant', 'show', 'spin', '--json'], { env })
          expect(show.json.provisioning_status).toBe('completed')
        },
      )
    },
  )

  /** `moody`: an after_install hook doing what the file `mode` beside it says; after_rename too, with `rename-mode`. */
  const moody = (bench: string, mode: string) =>
    addApp(
      bench,
      'moody',
      { hooks: { after_install: { module: 'hooks/install.mjs' }, after_rename: { module: 'hooks/rename.mjs' } } },
      {
        'migrations/0001_moods.sql': 'CREATE TABLE moods (id VARCHAR(32) PRIMARY KEY);\n',
        mode,
        'rename-mode': 'fine',
        'hooks/install.mjs': `import { readFileSync } from 'node:fs'
import { execSync } from 'node:child_process'
export default async ({ db }) => {
  const mode = readFileSync(new URL('../mode', import.meta.url), 'utf8')
  await db.selectFrom('moods').selectAll().execute()
  // Holds the thread for 2.5 s, then returns: past its timeout, though no timer could say so.
  if (mode === 'busy') { const end = Date.now() + 2500; while (Date.now() < end) {} }
  // Ignores its timeout, then blocks the thread while the next tenant's hook runs.
  if (mode === 'late') { await new Promise((r) => setTimeout(r, 1500)); while (true) {} }
  // Blocked in a system call: no JavaScript runs to be interrupted.
  if (mode === 'exec') execSync('sleep 120; echo outlived > ' + JSON.stringify(new URL('../outlived', import.meta.url).pathname))
}
`,
        'hooks/rename.mjs': `import { readFileSync } from 'node:fs'
export default async ({ db }) => {
  await db.selectFrom('moods').selectAll().execute()
  if (readFileSync(new URL('../rename-mode', import.meta.url), 'utf8') === 'block') while (true) {}
}
`,
      },
    )

  const blockedBench = (mode: string) => {
    const bench = makeBench({ exampleApps: false })
    moody(bench, mode)
    setConfig(bench, (c) => {
      c.provision.apps = ['moody']
      c.provision.step_timeout = 1
    })
    return bench
  }

  it('a hook that holds the thread past its timeout, then returns, still fails its step as timed out', async () => {
    const bench = blockedBench('busy')
    const r = await tenancy(bench, ['tenant', 'create', 'busy', '--no-pool'])
    expect(r.exitCode).toBe(1)
    expect(r.stderr).toMatch(
      /the after_install hook of app "moody" on site "busy\.localhost" timed out after 1 s \(it held the thread for 2\.\d s; a synchronous loop\?\)/,
    )
    expect(await tableNames(bench, 'busy.localhost')).not.toContain('moods')
  })

  it('code a timed-out hook left running that blocks later is stopped too, and named', async () => {
    const bench = blockedBench('late')
    const r = await tenancy(bench, ['pending-create', '--count', '3', '--concurrency', '1'], {
      env: { TENANCY_ADMIN_PASSWORD: 'pw' },
      timeout: 60_000,
    })
    expect(r.exitCode).toBe(1)
    const errors = r.stderr.split('\n').filter((l) => l.startsWith('error:'))
    expect(errors).toHaveLength(1)
    expect(errors[0]).toMatch(
      /^error: code that the after_install hook of app "moody" on site "pending-\w+\.localhost" left running after its timeout \(it ignored its signal\) blocked the process for over 6 s/,
    )
  })

  it('a hook blocked in a system call: the message all the same, the process and its child killed', async () => {
    const bench = blockedBench('exec')
    const started = Date.now()
    const r = await tenancy(bench, ['tenant', 'create', 'ex', '--no-pool', '--json'], { timeout: 60_000 })
    expect(r.exitCode).toBe(-1) // killed: no exit code
    expect(Date.now() - started).toBeLessThan(30_000)
    expect(r.stderr).toContain(
      'error: the after_install hook of app "moody" on site "ex.localhost" blocked the process past its timeout of 1 s',
    )
    expect(JSON.parse(r.stdout.slice(r.stdout.indexOf('{'))).error.exit_code).toBe(137)
    // The sleep went with it, and the hook is recorded as blocked: the next run refuses it at once.
    const ps = await tenancy(bench, ['provision', 'ex'])
    expect(ps.exitCode).toBe(1)
    expect(ps.stderr).toContain('is not run: it blocked the process on site "ex.localhost"')
    const { execSync } = await import('node:child_process')
    expect(execSync('ps -eo args').toString()).not.toContain('sleep 120; echo outlived')
  })

  it('a pull whose after_rename blocks: stopped; the next commands finish it with the hook refused, and work', async () => {
    const bench = blockedBench('fine')
    expect(
      (await tenancy(bench, ['pending-create', '--count', '1'], { env: { TENANCY_ADMIN_PASSWORD: 'pw' } })).exitCode,
    ).toBe(0)
    writeFileSync(join(bench, 'apps', 'moody', 'rename-mode'), 'block')
    const pulled = await tenancy(bench, ['tenant', 'create', 'signup'], { timeout: 60_000 })
    expect(pulled.exitCode).toBe(1)
    expect(pulled.stderr).toContain(
      'the after_rename hook of app "moody" on site "signup.localhost" blocked the process',
    )
    // A read, a second later: not stopped again (the hook is refused at once), the pull finished.
    const started = Date.now()
    const shown = await tenancy(bench, ['tenant', 'show', 'signup', '--json'])
    expect(shown.exitCode, shown.stderr).toBe(0)
    expect(Date.now() - started).toBeLessThan(5_000)
    expect(shown.json).toMatchObject({ site: 'signup.localhost', status: 'active' })
    const doctor = await tenancy(bench, ['doctor', '--json'])
    expect(doctor.json.findings.map((f: any) => f.subject)).toContain('signup.localhost')
  })

  it('Ctrl-C during a module hook interrupts it (exit 130) and rolls the site back', async () => {
    const bench = makeBench({ exampleApps: false })
    sleeper(bench)
    const child = spawnTenancy(bench, ['new-site', 'i.localhost', '--install-app', 'sleeper', '--json'])
    for (let i = 0; i < 400 && !existsSync(join(bench, 'apps', 'sleeper', 'started')); i++) await sleep(50)
    child.kill('SIGINT')
    const r = await child
    expect(r.exitCode).toBe(130)
    expect(String(r.stderr)).toMatch(/new-site "i\.localhost" was interrupted; rolled back/)
    expect(readFileSync(join(bench, 'apps', 'sleeper', 'aborted'), 'utf8')).toBe(
      'the after_install hook of app "sleeper" on site "i.localhost" was interrupted',
    )
    expect(existsSync(join(bench, 'sites', 'i.localhost'))).toBe(false)
  })

  it('a hook left running past its timeout cannot write through its db afterwards', async () => {
    const bench = makeBench()
    const marker = join(tempDir(), 'late')
    addApp(
      bench,
      'late',
      { hooks: { after_install: { module: 'late.mjs' } } },
      {
        'migrations/0001_late.sql': 'CREATE TABLE late_items (id VARCHAR(32) PRIMARY KEY);\n',
        // Ignores its signal, and writes 1.5 s later, after its timeout ended its transaction.
        'late.mjs': `import { writeFileSync } from 'node:fs'
export default ({ db }) => new Promise((resolve) => setTimeout(async () => {
  try {
    await db.insertInto('late_items').values({ id: 'late' }).execute()
    writeFileSync(${JSON.stringify(marker)}, 'written')
  } catch (error) {
    writeFileSync(${JSON.stringify(marker)}, 'refused: ' + error.message)
  }
  resolve()
}, 1500))
`,
      },
    )
    setConfig(bench, (c) => (c.provision.step_timeout = 1))
    await usingBench({ cwd: bench }, async (b) => {
      await newSite(b, { site: 'l.localhost', installApps: ['shared_lib'], adminPassword: 'pw-l' })
      await expect(installApps(b, { site: 'l.localhost', apps: ['late'] })).rejects.toThrow(
        'the after_install hook of app "late" on site "l.localhost" timed out after 1 s',
      )
    })
    for (let i = 0; i < 400 && !existsSync(marker); i++) await sleep(25)
    expect(readFileSync(marker, 'utf8')).toBe(
      'refused: the after_install hook of app "late" on site "l.localhost" queried the database after its call had ' +
        'ended (it timed out, or left a promise running); await every query before the hook returns',
    )
    expect(await tableNames(bench, 'l.localhost')).not.toContain('late_items')
  })

  it("tenant create loads its apps' migrations ahead, yet one that does not load fails the step that needs it, as before", async () => {
    // The pipeline starts importing every app's JS migrations as it begins (they load while
    // create-site waits for the password hash); hook modules are imported when called. A
    // failed import is kept for the install that needs it: the apps before it still install,
    // its step fails with the message it always had, and no rejection goes unhandled.
    const bench = makeBench({ exampleApps: false })
    addApp(
      bench,
      'first',
      { hooks: { after_install: { module: 'hooks/install.mjs' } } },
      {
        'migrations/0001_rows.mjs':
          'export async function up(db) {\n  await db.schema.createTable("rows").addColumn("id", "varchar(32)").execute()\n}\n',
        'hooks/install.mjs':
          'export default async ({ db }) => { await db.insertInto("rows").values({ id: "hook" }).execute(); return "first ok" }\n',
      },
    )
    const brokenMigration = 'export async function up(db) {\n'
    const brokenHook = 'export default (\n'
    addApp(
      bench,
      'second',
      { hooks: { after_install: { module: 'hooks/install.mjs' } } },
      { 'migrations/0001_more.mjs': brokenMigration, 'hooks/install.mjs': brokenHook },
    )
    setConfig(bench, (c) => (c.provision.apps = ['first', 'second']))
    const secondApp = join(bench, 'apps', 'second')

    const failed = await tenancy(bench, ['tenant', 'create', 'acme', '--no-pool', '--json'])
    expect(failed.exitCode, failed.stderr).toBe(1)
    expect(failed.stderr).not.toMatch(/unhandled|ERR_UNHANDLED_REJECTION/i)
    expect(failed.json.steps.map((s: any) => [s.name, s.status])).toEqual([
      ['create-site', 'done'],
      ['developer-mode', 'done'],
      ['install-app first', 'done'],
      ['install-app second', 'failed'],
      ['api-user', 'pending'],
      ['api-keys', 'pending'],
      ['activate', 'pending'],
    ])
    expect(failed.json.steps[3].error).toMatch(
      /installing app "second" on site "acme\.localhost" failed: migration second\/0001_more failed: .*0001_more\.mjs: /,
    )
    expect((await asSite(bench, 'acme.localhost', 'select id from rows')).rows).toEqual([{ id: 'hook' }])

    // The migration fixed, the hook still broken: the next run fails on the hook, named as ever.
    writeFileSync(join(secondApp, 'migrations', '0001_more.mjs'), 'export async function up() {}\n')
    const hookFails = await tenancy(bench, ['provision', 'acme', '--json'])
    expect(hookFails.exitCode, hookFails.stderr).toBe(1)
    expect(hookFails.stderr).not.toMatch(/unhandled|ERR_UNHANDLED_REJECTION/i)
    expect(hookFails.json.error).toMatch(
      /the after_install hook of app "second" on site "acme\.localhost" failed: cannot import module "hooks\/install\.mjs": /,
    )

    writeFileSync(join(secondApp, 'hooks', 'install.mjs'), 'export default () => "second ok"\n')
    const done = await tenancy(bench, ['provision', 'acme', '--json'])
    expect(done.exitCode, done.stderr).toBe(0)
    expect(done.json.status).toBe('completed')
  })

  it('a bad hook in app.json is refused in one line naming the app, the hook and the fix (exit 2)', async () => {
    const bench = makeBench({ exampleApps: false })
    writeFileSync(join(bench, 'x.mjs'), 'export default () => {}\n')
    const cases: [unknown, RegExp][] = [
      [
        [],
        /app "bad": "hooks" must be an object of hooks, each a shell command such as "node hooks\/after_install\.mjs" or \{"module": "hooks\/after_install\.mjs", "export": "name"\} \(in .*app\.json\)$/,
      ],
      [
        { after_instal: 'node x.mjs' },
        /app "bad": unknown hook "after_instal"; did you mean "after_install"\? the hooks are after_install, after_rename, before_uninstall/,
      ],
      [
        { after_install: 42 },
        /app "bad": hook "after_install" must be a shell command such as "node hooks\/after_install\.mjs" or \{"module": "hooks\/after_install\.mjs", "export": "name"\}; got 42/,
      ],
      [{ before_uninstall: '  ' }, /app "bad": hook "before_uninstall" is an empty command; give .*, or remove it/],
      [
        { after_rename: { module: 'hooks/r.mjs', exports: 'x' } },
        /app "bad": hook "after_rename" has an unknown key "exports"; it takes "module" and "export"/,
      ],
      [
        { after_install: { export: 'run' } },
        /app "bad": hook "after_install" needs "module": the path of an ES module in the app's folder, such as "hooks\/after_install\.mjs"/,
      ],
      [
        { after_install: { module: '../x.mjs' } },
        /app "bad": hook "after_install" names module "\.\.\/x\.mjs" outside the app's folder; give a path inside it/,
      ],
      [
        { after_install: { module: 'hooks/missing.mjs' } },
        /app "bad": hook "after_install" names module "hooks\/missing\.mjs", which does not exist \(.*bad\/hooks\/missing\.mjs\)/,
      ],
      [
        { after_install: { module: 'ok.mjs', export: 'not-a-name' } },
        /app "bad": hook "after_install" has "export" "not-a-name"; give the name of the function the module exports/,
      ],
    ]
    for (const [hooks, message] of cases) {
      addApp(bench, 'bad', { hooks }, { 'ok.mjs': 'export const run = () => {}\n' })
      const r = await tenancy(bench, ['list-apps'])
      expect(r.exitCode, JSON.stringify(hooks)).toBe(2)
      expect(r.stderr.trim().split('\n'), JSON.stringify(hooks)).toHaveLength(1)
      expect(r.stderr.trim(), JSON.stringify(hooks)).toMatch(message)
    }
    // Found only once imported: an export it lacks, a module that does not load. Exit 2 too, nothing installed.
    for (const [spec, text, message] of [
      [
        { module: 'ok.mjs', export: 'nope' },
        'export const run = () => {}\n',
        /has no export "nope"; it exports run \(name one in the hook's "export" in app\.json\)$/,
      ],
      [{ module: 'ok.mjs' }, 'export default (\n', /failed: cannot import module "ok\.mjs": /],
    ] as const) {
      addApp(bench, 'bad', { hooks: { after_install: spec } }, { 'ok.mjs': text })
      const r = await tenancy(bench, ['new-site', 'b.localhost', '--install-app', 'bad', '--json'])
      expect(r.exitCode, r.stderr).toBe(2)
      expect(r.json.error.message).toMatch(
        /^new-site "b\.localhost" failed \(rolled back\): the after_install hook of app "bad" on site "b\.localhost" failed: /,
      )
      expect(r.json.error.message).toMatch(message)
      expect(existsSync(join(bench, 'sites', 'b.localhost'))).toBe(false)
    }
  })
})

describe('command hooks (test/fixtures/apps/shell_notes)', () => {
  it('after_install and before_uninstall run as processes of their own, reaching the site through TENANCY_LIB', async () => {
    const bench = makeBench({ exampleApps: false })
    cpSync(SHELL_APP, join(bench, 'apps', 'shell_notes'), { recursive: true })
    const made = await tenancy(bench, ['new-site', 'n.localhost', '--install-app', 'shell_notes', '--json'])
    expect(made.exitCode, made.stderr).toBe(0)
    const notes = (await asSite(bench, 'n.localhost', 'select id, site, pid from shell_notes')).rows
    expect(notes).toEqual([{ id: 'installed', site: 'n.localhost', pid: expect.any(Number) }])
    expect(made.json.apps[0].hook_output).toBe(`shell_notes: installed on n.localhost (sqlite), pid ${notes[0].pid}`)
    const gone = await tenancy(bench, [
      'uninstall-app',
      'shell_notes',
      '--site',
      'n.localhost',
      '--yes',
      '--no-backup',
      '--json',
    ])
    expect(gone.exitCode, gone.stderr).toBe(0)
    expect(gone.json.hook_output).toMatch(/^shell_notes: uninstalling on n\.localhost \(sqlite\), pid \d+$/)
    expect(await tableNames(bench, 'n.localhost')).not.toContain('shell_notes')
  })
})

describe("tenant_ops's after_rename: what counts as the old site's name in text", () => {
  it('rewrites whole names only, never a longer name that contains it', async () => {
    const { replaceWholeName } = await import(join(ROOT, 'apps', 'tenant_ops', 'hooks', 'after_rename.mjs'))
    const cases: [string, string][] = [
      ['Getting acme.localhost up and running', 'Getting b.localhost up and running'],
      ['(acme.localhost), acme.localhost.', '(b.localhost), b.localhost.'],
      ['acme.localhost acme.localhost', 'b.localhost b.localhost'],
      ['x.acme.localhost', 'x.acme.localhost'],
      ['acme.localhost.eu', 'acme.localhost.eu'],
      ['acme.localhost-2 and my-acme.localhost', 'acme.localhost-2 and my-acme.localhost'],
      ['acme.localhostacme.localhost', 'acme.localhostacme.localhost'],
      ['', ''],
    ]
    for (const [text, expected] of cases) expect(replaceWholeName(text, 'acme.localhost', 'b.localhost')).toBe(expected)
  })
})
