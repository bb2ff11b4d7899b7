import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import Database from 'better-sqlite3'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { benchTemplate, killWhen, makeBench, query, setConfig, spawnTenancy, tenancy } from './helpers.js'
import { REGISTRIES, SITE_BACKENDS, asSite, registryRows, siteConfig, useBackend, useRegistry } from './backends.js'
import { newSite, openBench, type Bench } from '../src/index.js'
import { createPending } from '../src/pool/reserve.js'
import { renameSite, renameTenantSite } from '../src/provisioning/rename-site.js'
import { useSite } from '../src/sites/current-site.js'

/** A bench's registry file (SQLite). */
const registryFile = (bench: string) => join(bench, '.tenancy', 'registry.db')

/**
 * Two test apps with `after_rename` hooks: `rec_a` keeps a note naming its site (written by its
 * after_install module, rewritten by its after_rename one, both Node processes through
 * TENANCY_LIB) and logs its rename; `rec_b` requires it and has a shell hook that records its
 * arguments, fails while `fail-hook` exists and holds while `slow-hook` exists (for a kill).
 */
function addRenameApps(bench: string): void {
  const a = join(bench, 'apps', 'rec_a')
  mkdirSync(join(a, 'migrations'), { recursive: true })
  mkdirSync(join(a, 'hooks'))
  writeFileSync(
    join(a, 'app.json'),
    JSON.stringify({
      name: 'rec_a',
      version: '1.0.0',
      hooks: { after_install: 'node hooks/install.mjs', after_rename: 'node hooks/rename.mjs' },
    }),
  )
  writeFileSync(
    join(a, 'migrations', '0001_notes.sql'),
    'create table rec_notes (id integer primary key, note varchar(255) not null);\n',
  )
  const lib =
    'const { withSiteDatabase } = await import(pathToFileURL(process.env.TENANCY_LIB).href)\nconst env = process.env\n'
  writeFileSync(
    join(a, 'hooks', 'install.mjs'),
    `import { pathToFileURL } from 'node:url'\n${lib}` +
      'await withSiteDatabase(env.TENANCY_SITE_PATH, async (db) => {\n' +
      "  if (await db.selectFrom('rec_notes').select('id').where('id', '=', 1).executeTakeFirst()) return\n" +
      "  await db.insertInto('rec_notes').values({ id: 1, note: `Welcome to ${env.TENANCY_SITE}` }).execute()\n" +
      '})\n',
  )
  writeFileSync(
    join(a, 'hooks', 'rename.mjs'),
    `import { appendFileSync } from 'node:fs'\nimport { pathToFileURL } from 'node:url'\n${lib}` +
      'await withSiteDatabase(env.TENANCY_SITE_PATH, (db, { sql }) =>\n' +
      "  db.updateTable('rec_notes').set({ note: sql`replace(note, ${env.TENANCY_PREVIOUS_SITE}, ${env.TENANCY_SITE})` }).execute(),\n" +
      ')\n' +
      'appendFileSync(`${env.TENANCY_BENCH_PATH}/renames.log`, `rec_a ${env.TENANCY_PREVIOUS_SITE} ${env.TENANCY_SITE}\\n`)\n',
  )
  const b = join(bench, 'apps', 'rec_b')
  mkdirSync(b)
  const hook =
    'B="$TENANCY_BENCH_PATH"; ' +
    'if [ -e "$B/fail-hook" ]; then echo "rec_b cannot rename today" >&2; exit 3; fi; ' +
    'if [ -e "$B/slow-hook" ]; then : > "$B/hook-started"; while [ -e "$B/slow-hook" ]; do sleep 0.1; done; exit 0; fi; ' +
    'echo "rec_b $TENANCY_PREVIOUS_SITE $TENANCY_SITE" >> "$B/renames.log"'
  writeFileSync(
    join(b, 'app.json'),
    JSON.stringify({ name: 'rec_b', version: '1.0.0', requires: ['rec_a'], hooks: { after_rename: hook } }),
  )
}

/** Makes `bench` one whose tenants get the sample apps (tenant_ops's after_rename is a module) and the two rename apps. */
function withRenameApps(bench: string): string {
  addRenameApps(bench)
  setConfig(bench, (c) => (c.provision.apps = ['shared_lib', 'tenant_ops', 'rec_b']))
  return bench
}

/** A fresh bench with the rename apps (see `withRenameApps`). */
const renameBench = () => withRenameApps(makeBench())

/** A bench with the rename apps and two pool tenants ready, made once for the file and copied for each test. */
const pooled = benchTemplate(async (bench) => {
  withRenameApps(bench)
  expect((await tenancy(bench, ['pending-create', '--count', '2'])).exitCode).toBe(0)
  return (await tenancy(bench, ['tenant', 'list', '--only-pending', '--json'])).json.tenants.map((t: any) => t.site)
})

/** The apps whose after_rename hook runs on a renameBench tenant's site, in install order. */
const RENAME_HOOKS = ['tenant_ops', 'rec_a', 'rec_b']

/** The lines the rename hooks logged, in order. */
const renamesLog = (bench: string): string[] => {
  const file = join(bench, 'renames.log')
  return existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n') : []
}

/** The two hooks' lines for one rename, in install order. */
const hookLines = (from: string, to: string) => [`rec_a ${from} ${to}`, `rec_b ${from} ${to}`]

/** verify-key's exit code for a key and secret on a site. */
async function verifies(bench: string, site: string, key: string, secret: string, env = {}): Promise<number> {
  return (await tenancy(bench, ['verify-key', key, '--site', site], { input: secret, env })).exitCode
}

/** The tenant's record with its secrets. */
async function shown(bench: string, tenant: string, env = {}): Promise<any> {
  const r = await tenancy(bench, ['tenant', 'show', tenant, '--show-secrets', '--json'], { env })
  expect(r.exitCode, r.stderr).toBe(0)
  return r.json
}

/** doctor's findings (and that it exits 0 when there are none). */
async function doctorFindings(bench: string, env = {}): Promise<any[]> {
  const r = await tenancy(bench, ['doctor', '--json'], { env })
  expect(r.json, r.stderr).toBeDefined()
  if (r.json.findings.length === 0) expect(r.exitCode).toBe(0)
  return r.json.findings
}

/** Every text value in every table of an SQLite database that contains `needle`. */
function mentions(file: string, needle: string): string[] {
  const tables = query<{ name: string }>(file, "select name from sqlite_master where type = 'table'")
  return tables.flatMap(({ name }) =>
    query(file, `select * from "${name}"`).flatMap((row) =>
      Object.entries(row)
        .filter(([, v]) => typeof v === 'string' && v.includes(needle))
        .map(([k, v]) => `${name}.${k} = ${v}`),
    ),
  )
}

describe.each(SITE_BACKENDS)('renaming a tenant site ($name)', ({ name, skip }) => {
  it.skipIf(skip)(
    "tenant rename: directory, registry rows, backups and the API user (new keys) follow; the hooks run in install order; the database keeps working as the site's user",
    async () => {
      const bench = renameBench()
      const env = useBackend(bench, name)
      const created = await tenancy(bench, ['tenant', 'create', 'acme', '--no-pool', '--json'], { env })
      expect(created.exitCode, created.stderr).toBe(0)
      const before = siteConfig(bench, 'acme.localhost')
      const old = await shown(bench, 'acme', env)
      const backup = await tenancy(bench, ['backup', '--site', 'acme.localhost', '--json'], { env })
      expect(backup.exitCode, backup.stderr).toBe(0)

      const r = await tenancy(bench, ['tenant', 'rename', 'acme', '--site', 'acme.example.com', '--json'], { env })
      expect(r.exitCode, r.stderr).toBe(0)
      expect(r.json).toMatchObject({
        site: 'acme.example.com',
        previous_site: 'acme.localhost',
        tenant: 'acme',
        api_user: 'api@acme.example.com',
        hooks: RENAME_HOOKS,
      })
      expect(r.json.api_key).not.toBe(old.api_key)
      expect(renamesLog(bench)).toEqual(hookLines('acme.localhost', 'acme.example.com'))
      expect(readdirSync(join(bench, 'sites'))).toEqual(['acme.example.com'])
      expect(readdirSync(join(bench, 'backups'))).toEqual(['acme.example.com'])

      // The same database and user, reached as the site's own user under the new name.
      const after = siteConfig(bench, 'acme.example.com')
      expect(after).toMatchObject({ db_type: before.db_type, db_name: before.db_name })
      expect(after.db_user).toBe(before.db_user)
      expect((await asSite(bench, 'acme.example.com', 'select note from rec_notes')).rows).toEqual([
        { note: 'Welcome to acme.example.com' },
      ])
      const project = await asSite(
        bench,
        'acme.example.com',
        "select description from projects where id = 'PRJ-ONBOARDING'",
      )
      expect(project.rows[0].description).toContain('Getting acme.example.com up and running')
      expect(
        (await asSite(bench, 'acme.example.com', "select name, email from users where name like 'api@%'")).rows,
      ).toEqual([{ name: 'api@acme.example.com', email: 'api@acme.example.com' }])

      const sites = (await tenancy(bench, ['list-sites', '--json'], { env })).json.sites
      expect(sites.map((s: any) => [s.site, s.state, s.tenant])).toEqual([['acme.example.com', 'ready', 'acme']])
      const now = await shown(bench, 'acme', env)
      expect(now).toMatchObject({ site: 'acme.example.com', api_key: r.json.api_key, status: 'active' })
      expect(await verifies(bench, 'acme.example.com', now.api_key, now.api_secret, env)).toBe(0)
      expect(await verifies(bench, 'acme.example.com', old.api_key, old.api_secret, env)).toBe(1)

      // The backup taken under the old name is the site's own under the new one.
      const sets = (await tenancy(bench, ['list-backups', '--site', 'acme.example.com', '--json'], { env })).json
        .backups
      expect(sets).toMatchObject([{ site: 'acme.example.com' }])
      const set = sets[0].path
      expect(set.startsWith(join(bench, 'backups', 'acme.example.com'))).toBe(true)
      const restored = await tenancy(bench, ['restore', 'acme.example.com', set, '--yes', '--no-backup', '--json'], {
        env,
      })
      expect(restored.exitCode, restored.stderr).toBe(0)
      // Its data was taken as acme.localhost: the API user and the apps' data follow the name again.
      expect(restored.json).toMatchObject({
        rename_from: 'acme.localhost',
        renamed: { site: 'acme.example.com', previous_site: 'acme.localhost', api_user: 'api@acme.example.com' },
      })
      expect(
        (await asSite(bench, 'acme.example.com', "select name, email from users where name like 'api@%'")).rows,
      ).toEqual([{ name: 'api@acme.example.com', email: 'api@acme.example.com' }])
      const again = await asSite(
        bench,
        'acme.example.com',
        "select description from projects where id = 'PRJ-ONBOARDING'",
      )
      expect(again.rows[0].description).toContain('Getting acme.example.com up and running')
      expect((await asSite(bench, 'acme.example.com', 'select note from rec_notes')).rows).toEqual([
        { note: 'Welcome to acme.example.com' },
      ])
      const restoredKeys = await shown(bench, 'acme', env)
      expect(restoredKeys.api_key).toBe(restored.json.renamed.api_key)
      expect(await verifies(bench, 'acme.example.com', restoredKeys.api_key, restoredKeys.api_secret, env)).toBe(0)
      expect(await verifies(bench, 'acme.example.com', now.api_key, now.api_secret, env)).toBe(1)
      expect(renamesLog(bench)).toEqual([
        ...hookLines('acme.localhost', 'acme.example.com'),
        ...hookLines('acme.localhost', 'acme.example.com'),
      ])
      expect(await doctorFindings(bench, env)).toEqual([])
    },
  )
})

describe('rename-site: a site without a tenant, and what is refused', () => {
  it('the default site follows; a bad, taken or busy name, a missing site, a restore under way and a pool site are refused (exit 2) with nothing changed', async () => {
    const dir = makeBench()
    const bench: Bench = await openBench({ cwd: dir, env: { ...process.env, TENANCY_ADMIN_PASSWORD: 'pw' } })
    try {
      await newSite(bench, { site: 'a.localhost' })
      await newSite(bench, { site: 'other.localhost' })
      await useSite(bench, 'a.localhost')
      const pending = await createPending(bench)
      mkdirSync(join(dir, 'sites', 'stray.localhost'))
      mkdirSync(join(dir, 'backups', 'gone.localhost'), { recursive: true })
      const snapshot = () => [
        readdirSync(join(dir, 'sites')).sort(),
        query(registryFile(dir), 'select name, state, rename_from from sites order by name'),
      ]
      const before = snapshot()
      const refused = async (from: string, to: string, message: RegExp) => {
        const error: any = await renameSite(bench, from, to).catch((e: unknown) => e)
        expect(error?.message).toMatch(message)
        expect(error.exitCode).toBe(2)
      }
      await refused('a.localhost', 'B.localhost', /invalid site name "B.localhost": use a lower-case hostname/)
      await refused('a.localhost', '../b', /invalid site name/)
      await refused('missing.localhost', 'b.localhost', /site "missing.localhost" does not exist/)
      await refused('a.localhost', 'a.localhost', /already has that name/)
      await refused('a.localhost', 'other.localhost', /site "other.localhost" exists already/)
      await refused('a.localhost', 'stray.localhost', /sites\/stray.localhost exists \(a directory/)
      await refused('a.localhost', 'gone.localhost', /backups\/gone.localhost exists \(a backups folder/)
      await refused(pending.site!, 'b.localhost', /belongs to the pending tenant .*when a sign-up pulls it/)
      writeFileSync(join(dir, 'sites', 'a.localhost', '.restore.json'), '{}')
      await refused('a.localhost', 'b.localhost', /is being restored/)
      rmSync(join(dir, 'sites', 'a.localhost', '.restore.json'))
      const noTenant: any = await renameTenantSite(bench, 'nobody', 'b.localhost').catch((e: unknown) => e)
      expect(noTenant.exitCode).toBe(2)
      expect(snapshot()).toEqual(before)
    } finally {
      await bench.close()
    }
    const cli = await tenancy(dir, ['rename-site', 'a.localhost', 'other.localhost'])
    expect(cli.exitCode).toBe(2)
    expect(cli.stderr).toMatch(/site "other.localhost" exists already; pick another name/)
    const r = await tenancy(dir, ['rename-site', 'a.localhost', 'b.localhost', '--json'])
    expect(r.exitCode, r.stderr).toBe(0)
    expect(r.json).toMatchObject({ site: 'b.localhost', previous_site: 'a.localhost', tenant: null, hooks: [] })
    expect(readFileSync(join(dir, '.tenancy', 'current-site'), 'utf8')).toBe('b.localhost\n')
    expect(query(registryFile(dir), "select state, rename_from from sites where name = 'b.localhost'")).toEqual([
      { state: 'ready', rename_from: null },
    ])
    const gone = await tenancy(dir, ['rename-site', 'a.localhost', 'c.localhost'])
    expect(gone.exitCode).toBe(2)
    expect(gone.stderr).toMatch(/site "a.localhost" does not exist; did you mean/)
  })

  it('an after_rename hook that fails: the site is renamed and ready, doctor says so, and the same rename-site again runs the hooks', async () => {
    const bench = makeBench()
    addRenameApps(bench)
    const env = { TENANCY_ADMIN_PASSWORD: 'pw' }
    expect((await tenancy(bench, ['new-site', 'a.localhost', '--install-app', 'rec_b'], { env })).exitCode).toBe(0)
    writeFileSync(join(bench, 'fail-hook'), '')
    const failed = await tenancy(bench, ['rename-site', 'a.localhost', 'b.localhost'])
    expect(failed.exitCode).toBe(1)
    expect(failed.stderr).toMatch(
      /site "a.localhost" is now "b.localhost", but the after_rename hook of app "rec_b" on site "b.localhost" exited with code 3.*rec_b cannot rename today.*run "tenancy rename-site a.localhost b.localhost" again/s,
    )
    expect(renamesLog(bench)).toEqual(['rec_a a.localhost b.localhost'])
    // Renamed and usable; only the hooks are owed.
    expect(query(registryFile(bench), 'select name, state, rename_from from sites')).toEqual([
      { name: 'b.localhost', state: 'ready', rename_from: 'a.localhost' },
    ])
    expect((await tenancy(bench, ['list-apps', '--site', 'b.localhost'])).exitCode).toBe(0)
    const errors = (await tenancy(bench, ['errors', '--json'])).json.errors
    expect(errors[0]).toMatchObject({ site: 'b.localhost', step: 'after_rename' })
    expect((await doctorFindings(bench)).map((f) => [f.kind, f.subject])).toEqual([
      ['unfinished_rename', 'b.localhost'],
    ])
    const refused = await tenancy(bench, ['rename-site', 'b.localhost', 'c.localhost'])
    expect(refused.exitCode).toBe(2)
    expect(refused.stderr).toMatch(/finish it first with "tenancy rename-site a.localhost b.localhost"/)
    rmSync(join(bench, 'fail-hook'))
    const again = await tenancy(bench, ['rename-site', 'a.localhost', 'b.localhost', '--json'])
    expect(again.exitCode, again.stderr).toBe(0)
    expect(again.json).toMatchObject({ site: 'b.localhost', resumed: true, hooks: ['rec_a', 'rec_b'] })
    expect(renamesLog(bench).slice(1)).toEqual(hookLines('a.localhost', 'b.localhost'))
    expect(await doctorFindings(bench)).toEqual([])
  })
})

describe('while a rename runs', () => {
  it('commands refuse the site, backup fails it, migrate leaves it out, drop-site refuses it (exit 2), each naming the rename', async () => {
    const bench = makeBench({ exampleApps: false })
    addRenameApps(bench)
    const env = { TENANCY_ADMIN_PASSWORD: 'pw' }
    expect((await tenancy(bench, ['new-site', 'a.localhost', '--install-app', 'rec_b'], { env })).exitCode).toBe(0)
    writeFileSync(join(bench, 'slow-hook'), '')
    const renaming = spawnTenancy(bench, ['rename-site', 'a.localhost', 'b.localhost', '--json'])
    while (!existsSync(join(bench, 'hook-started'))) await new Promise((r) => setTimeout(r, 25))
    const busy = /site "b.localhost" is being renamed from "a.localhost"; wait for it to finish/
    const backup = await tenancy(bench, ['backup', '--site', 'b.localhost', '--json'])
    expect(backup.exitCode).toBe(1)
    expect(backup.json.sites[0].error).toMatch(busy)
    // Left out of every site, and skipped when named.
    expect((await tenancy(bench, ['migrate', '--json'])).json.sites).toEqual([])
    const migrate = await tenancy(bench, ['migrate', '--site', 'b.localhost', '--json'])
    expect(migrate.json.sites).toMatchObject([{ site: 'b.localhost', status: 'skipped' }])
    expect(migrate.json.sites[0].error).toMatch(/state "renaming"/)
    const apps = await tenancy(bench, ['list-apps', '--site', 'b.localhost'])
    expect(apps.exitCode).not.toBe(0)
    expect(apps.stderr).toMatch(busy)
    const drop = await tenancy(bench, ['drop-site', 'b.localhost', '--yes'])
    expect(drop.exitCode).toBe(2)
    expect(drop.stderr).toMatch(busy)
    rmSync(join(bench, 'slow-hook'))
    const done = await renaming
    expect(done.exitCode, String(done.stderr)).toBe(0)
    expect(readdirSync(join(bench, 'sites'))).toEqual(['b.localhost'])
    expect(await doctorFindings(bench)).toEqual([])
  })
})

describe('a rename killed at any step', () => {
  it('kill -9 after the intent, the files, the API user, before the end and during a hook: the next command finishes it, and doctor finds nothing', async () => {
    const bench = renameBench()
    expect((await tenancy(bench, ['tenant', 'create', 'acme', '--no-pool'])).exitCode).toBe(0)
    let site = 'acme.localhost'
    const finished = async (from: string, to: string) => {
      // Any command that opens the bench finishes the rename first.
      const tenant = await shown(bench, 'acme')
      expect(tenant).toMatchObject({ site: to, status: 'active', provisioning_status: 'completed' })
      expect(query(registryFile(bench), 'select name, state, rename_from from sites')).toEqual([
        { name: to, state: 'ready', rename_from: null },
      ])
      expect(readdirSync(join(bench, 'sites'))).toEqual([to])
      expect(renamesLog(bench).slice(-2)).toEqual(hookLines(from, to))
      expect(query(join(bench, 'sites', to, 'db.sqlite'), "select name from users where name like 'api@%'")).toEqual([
        { name: `api@${to}` },
      ])
      expect(await verifies(bench, to, tenant.api_key, tenant.api_secret)).toBe(0)
    }
    for (const [i, fault] of [
      'rename-after-intent',
      'rename-after-files',
      'rename-after-api-user',
      'rename-before-end',
    ].entries()) {
      const to = `r${i}.localhost`
      const killed = await tenancy(bench, ['tenant', 'rename', 'acme', '--site', to], { env: { TENANCY_FAULT: fault } })
      expect(killed.exitCode, `${fault}: ${killed.stderr}`).not.toBe(0)
      expect(query(registryFile(bench), 'select name, state, rename_from from sites')).toEqual([
        { name: to, state: 'renaming', rename_from: site },
      ])
      if (i === 2) {
        // doctor --fix as the next command: the rename is finished before it looks, so it finds nothing.
        expect(await doctorFindings(bench)).toEqual([])
      }
      if (i === 1) {
        // The same command again: the rename it finds finished (by its own start) is reported done.
        const again = await tenancy(bench, ['tenant', 'rename', 'acme', '--site', to, '--json'])
        expect(again.exitCode, again.stderr).toBe(0)
        expect(again.json).toMatchObject({ site: to, previous_site: site, resumed: true, hooks: RENAME_HOOKS })
      }
      await finished(site, to)
      site = to
    }
    // Killed while an app's hook runs: the next command runs the hooks again.
    writeFileSync(join(bench, 'slow-hook'), '')
    const env = {}
    const landed = await killWhen(bench, ['rename-site', site, 'r9.localhost'], env, async () =>
      existsSync(join(bench, 'hook-started')),
    )
    expect(landed).toBe(true)
    rmSync(join(bench, 'slow-hook'))
    await finished(site, 'r9.localhost')
    expect(await doctorFindings(bench)).toEqual([])
  })
})

describe('a restore of data taken under another name, killed after its switch', () => {
  it('doctor --fix finishes the restore, then the rename: the API user and the apps follow the name, the stored key verifies', async () => {
    const bench = renameBench()
    expect((await tenancy(bench, ['tenant', 'create', 'acme', '--no-pool'])).exitCode).toBe(0)
    expect((await tenancy(bench, ['backup', '--site', 'acme.localhost'])).exitCode).toBe(0)
    expect((await tenancy(bench, ['tenant', 'rename', 'acme', '--site', 'acme2.localhost'])).exitCode).toBe(0)
    const set = (await tenancy(bench, ['list-backups', '--site', 'acme2.localhost', '--json'])).json.backups[0].path
    const killed = await tenancy(bench, ['restore', 'acme2.localhost', set, '--yes', '--no-backup'], {
      env: { TENANCY_FAULT: 'restore-after-switch' },
    })
    expect(killed.exitCode).not.toBe(0)
    const fix = await tenancy(bench, ['doctor', '--fix', '--json'])
    expect(fix.json.findings.map((f: any) => f.kind)).toContain('interrupted_restore')
    // Whatever the first pass left (the rename is found once the restore is whole), a second finishes.
    await tenancy(bench, ['doctor', '--fix', '--json'])
    expect(await doctorFindings(bench)).toEqual([])
    expect((await asSite(bench, 'acme2.localhost', "select name from users where name like 'api@%'")).rows).toEqual([
      { name: 'api@acme2.localhost' },
    ])
    expect((await asSite(bench, 'acme2.localhost', 'select note from rec_notes')).rows).toEqual([
      { note: 'Welcome to acme2.localhost' },
    ])
    const keys = await shown(bench, 'acme')
    expect(await verifies(bench, 'acme2.localhost', keys.api_key, keys.api_secret)).toBe(0)
  })
})

describe('a pool pull is a rename', () => {
  it('the hooks see the placeholder as previousSite and no data names it; killed mid-pull, the next command runs them', async () => {
    const { bench, made: placeholders } = await pooled()
    const pulled = await tenancy(bench, ['tenant', 'create', 'acme2', '--json'])
    expect(pulled.exitCode, pulled.stderr).toBe(0)
    expect(pulled.json).toMatchObject({ mode: 'pulled', site: 'acme2.localhost', pulled_from: placeholders[0] })
    expect(renamesLog(bench)).toEqual(hookLines(placeholders[0], 'acme2.localhost'))
    const db = (site: string) => join(bench, 'sites', site, 'db.sqlite')
    expect(query(db('acme2.localhost'), 'select note from rec_notes')).toEqual([{ note: 'Welcome to acme2.localhost' }])
    expect(mentions(db('acme2.localhost'), placeholders[0])).toEqual([])
    expect(mentions(db('acme2.localhost'), placeholders[0].split('.')[0])).toEqual([])
    expect(readFileSync(join(bench, 'sites', 'acme2.localhost', 'site_config.json'), 'utf8')).not.toContain(
      placeholders[0].split('.')[0],
    )

    const killed = await tenancy(bench, ['tenant', 'create', 'acme3'], {
      env: { TENANCY_FAULT: 'rename-after-api-user' },
    })
    expect(killed.exitCode).not.toBe(0)
    const tenant = await shown(bench, 'acme3')
    expect(tenant).toMatchObject({ site: 'acme3.localhost', status: 'active', pending_since: null })
    expect(renamesLog(bench).slice(-2)).toEqual(hookLines(placeholders[1], 'acme3.localhost'))
    expect(mentions(db('acme3.localhost'), placeholders[1].split('.')[0])).toEqual([])
    expect(await verifies(bench, 'acme3.localhost', tenant.api_key, tenant.api_secret)).toBe(0)
    expect(query(registryFile(bench), 'select count(*) as n from sites where rename_from is not null')).toEqual([
      { n: 0 },
    ])
    expect(await doctorFindings(bench)).toEqual([])
  })
})

describe.each(REGISTRIES)('renames at the same time (registry: $name)', ({ name, skip }) => {
  it.skipIf(skip)(
    'four renames of one site: one wins; two sites renamed to one name: one gets it; the losers change nothing (exit 2)',
    async () => {
      const bench = makeBench({ exampleApps: false })
      await useRegistry(bench, name)
      for (const site of ['a.localhost', 'x.localhost', 'y.localhost'])
        expect((await tenancy(bench, ['new-site', site], { env: { TENANCY_ADMIN_PASSWORD: 'pw' } })).exitCode).toBe(0)
      const race = (runs: string[][]) => Promise.all(runs.map((args) => spawnTenancy(bench, args)))
      const one = await race([0, 1, 2, 3].map((i) => ['rename-site', 'a.localhost', `b${i}.localhost`]))
      expect(one.filter((r) => r.exitCode === 0)).toHaveLength(1)
      for (const r of one.filter((r) => r.exitCode !== 0)) expect(r.exitCode, String(r.stderr)).toBe(2)
      const same = await race([
        ['rename-site', 'x.localhost', 't.localhost'],
        ['rename-site', 'y.localhost', 't.localhost'],
      ])
      expect(same.map((r) => r.exitCode).sort()).toEqual([0, 2])
      const sites = (await registryRows(bench, 'select name, state from sites order by name')).map((r) => r.name)
      expect(sites).toHaveLength(3)
      expect(sites).toContain('t.localhost')
      expect(sites.filter((s) => /^b\d\.localhost$/.test(s))).toHaveLength(1)
      expect(readdirSync(join(bench, 'sites')).sort()).toEqual(sites)
      expect(await doctorFindings(bench)).toEqual([])
    },
  )
})

describe('upgrading a registry with a pull an older tenancy left half-done', () => {
  it('the registry migration marks its site as a rename, and the first command finishes the pull', async () => {
    const { bench, made } = await pooled()
    const killed = await tenancy(bench, ['tenant', 'create', 'acme'], { env: { TENANCY_FAULT: 'pull-after-claim' } })
    expect(killed.exitCode).not.toBe(0)
    // Back to schema 7, as the older version's claim left it: the tenant and site renamed, pull_from set.
    const db = new Database(registryFile(bench))
    db.exec(`drop index sites_renaming; alter table sites drop column rename_from;
      drop index site_jobs_host; drop table site_jobs; drop table site_job_results; alter table jobs drop column host;
      update sites set state = 'ready'; delete from registry_migrations where version >= 8`)
    db.close()
    const [{ pull_from: placeholder }] = query(registryFile(bench), "select pull_from from tenants where name = 'acme'")
    expect(made).toContain(placeholder)
    const tenant = await shown(bench, 'acme')
    expect(tenant).toMatchObject({ site: 'acme.localhost', status: 'active', provisioning_status: 'completed' })
    expect(query(registryFile(bench), 'select name, state, rename_from from sites order by name')).toEqual([
      { name: 'acme.localhost', state: 'ready', rename_from: null },
      { name: made.find((s: string) => s !== placeholder), state: 'ready', rename_from: null },
    ])
    expect(renamesLog(bench)).toEqual(hookLines(placeholder, 'acme.localhost'))
    expect(await verifies(bench, 'acme.localhost', tenant.api_key, tenant.api_secret)).toBe(0)
    expect(await doctorFindings(bench)).toEqual([])
  })
})
