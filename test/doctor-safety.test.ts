import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  truncateSync,
  utimesSync,
  writeFileSync,
} from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { makeBench, query, setConfig, tempDir, tenancy } from './helpers.js'
import { asSite, enabled, registryRows, siteConfig, useBackend, useRegistry } from './backends.js'

const registryFile = (bench: string) => join(bench, '.tenancy', 'registry.db')
const stateFiles = (bench: string) => readdirSync(join(bench, '.tenancy')).sort()

/** Every file under a site directory with its bytes: what "the site is intact" means. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {}
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile() || /-(wal|shm)$/.test(entry.name)) continue
    const path = join(entry.parentPath, entry.name)
    out[path.slice(dir.length)] = readFileSync(path).toString('base64')
  }
  return out
}

/** Makes a directory look older than doctor's one-minute "on its way in" window. */
function age(path: string): void {
  const old = new Date(Date.now() - 120_000)
  utimesSync(path, old, old)
}

async function sitesWithApps(bench: string): Promise<Record<string, string[]>> {
  const r = await tenancy(bench, ['list-sites', '--json'])
  expect(r.exitCode, r.stderr).toBe(0)
  return Object.fromEntries(r.json.sites.map((s: any) => [s.site, s.apps.map((a: any) => `${a.name}@${a.version}`)]))
}

describe('a lost registry is refused, never replaced by an empty one', () => {
  it('deleted SQLite registry next to live sites: every command refuses (exit 2, no file made); doctor --adopt rebuilds it with each site and its apps', async () => {
    const bench = makeBench()
    for (const t of ['a', 'b']) expect((await tenancy(bench, ['tenant', 'create', t])).exitCode).toBe(0)
    expect((await tenancy(bench, ['new-site', 'bare.localhost'])).exitCode).toBe(0)
    const before = await sitesWithApps(bench)
    expect(before['a.localhost']).toEqual(['shared_lib@1.0.0', 'tenant_ops@1.0.0'])
    const sites = snapshot(join(bench, 'sites'))

    for (const f of readdirSync(join(bench, '.tenancy')))
      if (f.startsWith('registry.db')) rmSync(join(bench, '.tenancy', f))
    const left = stateFiles(bench)
    for (const args of [
      ['tenant', 'list'],
      ['list-sites'],
      ['doctor'],
      ['doctor', '--fix'],
      ['doctor', '--fix', '--json'],
    ]) {
      const r = await tenancy(bench, args)
      expect(r.exitCode, args.join(' ')).toBe(2)
      expect(r.stderr).toContain(
        'registry .tenancy/registry.db is missing but sites/ holds 3 sites; run "tenancy doctor --adopt" to rebuild it from them',
      )
      expect(stateFiles(bench), `${args.join(' ')} created a file`).toEqual(left)
    }
    expect(existsSync(join(bench, 'archived'))).toBe(false)
    expect(snapshot(join(bench, 'sites'))).toEqual(sites)

    const adopt = await tenancy(bench, ['doctor', '--adopt', '--json'])
    expect(adopt.exitCode, adopt.stderr).toBe(0)
    expect(adopt.json.findings.map((f: any) => [f.kind, f.subject, f.fixed])).toEqual([
      ['unregistered_site', 'a.localhost', true],
      ['unregistered_site', 'b.localhost', true],
      ['unregistered_site', 'bare.localhost', true],
    ])
    expect(await sitesWithApps(bench)).toEqual(before)
    const listed = (await tenancy(bench, ['list-sites', '--json'])).json.sites
    expect(listed.map((s: any) => [s.state, s.tenant])).toEqual([
      ['ready', null],
      ['ready', null],
      ['ready', null],
    ])
    const fix = await tenancy(bench, ['doctor', '--fix', '--json'])
    expect(fix.exitCode, fix.stderr).toBe(0)
    expect(fix.json.findings).toEqual([])
    expect(existsSync(join(bench, 'archived'))).toBe(false)
    expect(snapshot(join(bench, 'sites'))).toEqual(sites)
    // The adopted sites work: their data is there and migrate reaches them.
    expect(
      (await asSite(bench, 'a.localhost', "select email from users where email = 'api@a.localhost'")).rows,
    ).toHaveLength(1)
    const migrate = await tenancy(bench, ['migrate', '--json'])
    expect(migrate.exitCode, migrate.stderr).toBe(0)
    expect(migrate.json.sites.map((s: any) => s.status)).toEqual(['up_to_date', 'up_to_date', 'up_to_date'])
  })

  it('a registry truncated to zero bytes, or one holding nothing, is refused; a fresh bench with no sites still gets its registry', async () => {
    const fresh = makeBench()
    expect((await tenancy(fresh, ['tenant', 'list'])).exitCode).toBe(0)
    expect(existsSync(registryFile(fresh))).toBe(true)

    const bench = makeBench()
    expect((await tenancy(bench, ['new-site', 'one.localhost', '--install-app', 'shared_lib'])).exitCode).toBe(0)
    truncateSync(registryFile(bench), 0)
    for (const f of ['registry.db-wal', 'registry.db-shm']) rmSync(join(bench, '.tenancy', f), { force: true })
    const left = stateFiles(bench)
    const r = await tenancy(bench, ['doctor', '--fix'])
    expect(r.exitCode).toBe(2)
    expect(r.stderr).toContain(
      'registry .tenancy/registry.db is empty but sites/ holds 1 site; run "tenancy doctor --adopt"',
    )
    expect(stateFiles(bench)).toEqual(left)
    expect(readFileSync(registryFile(bench)).length).toBe(0)

    // What an earlier tenancy left: a new registry with the schema and no rows, next to the sites.
    const other = makeBench()
    expect((await tenancy(other, ['list-sites'])).exitCode).toBe(0)
    rmSync(registryFile(bench))
    copyFileSync(registryFile(other), registryFile(bench))
    const hollow = await tenancy(bench, ['doctor', '--fix'])
    expect(hollow.exitCode).toBe(2)
    expect(hollow.stderr).toContain('registry .tenancy/registry.db is empty but sites/ holds 1 site')
    expect(existsSync(join(bench, 'sites', 'one.localhost', 'db.sqlite'))).toBe(true)
    expect((await tenancy(bench, ['doctor', '--adopt'])).exitCode).toBe(0)
    expect(await sitesWithApps(bench)).toEqual({ 'one.localhost': ['shared_lib@1.0.0'] })
  })

  it.skipIf(!enabled('postgres'))(
    'an empty PostgreSQL registry next to sites is refused; doctor --adopt fills it',
    async () => {
      const bench = makeBench()
      expect((await tenancy(bench, ['tenant', 'create', 'a'])).exitCode).toBe(0)
      await useRegistry(bench, 'postgres')
      const r = await tenancy(bench, ['tenant', 'list'])
      expect(r.exitCode).toBe(2)
      expect(r.stderr).toMatch(
        /registry postgres:\/\/\S+ is empty but sites\/ holds 1 site; run "tenancy doctor --adopt"/,
      )
      expect(
        await registryRows(bench, "select count(*) as n from information_schema.tables where table_schema = 'public'"),
      ).toEqual([{ n: 0 }])
      const adopt = await tenancy(bench, ['doctor', '--adopt'])
      expect(adopt.exitCode, adopt.stderr).toBe(0)
      expect(await sitesWithApps(bench)).toEqual({ 'a.localhost': ['shared_lib@1.0.0', 'tenant_ops@1.0.0'] })
    },
  )

  it.skipIf(!enabled('postgres'))(
    'doctor --fix adopts an intact server site without a row, keeps one it cannot read, and archives only a directory that is no site',
    async () => {
      const bench = makeBench()
      const env = useBackend(bench, 'postgres')
      expect(
        (await tenancy(bench, ['new-site', 'pg.localhost', '--install-app', 'shared_lib'], { env })).exitCode,
      ).toBe(0)
      expect((await tenancy(bench, ['new-site', 'locked.localhost'], { env })).exitCode).toBe(0)
      // A registered site: the registry is not empty, only two rows are lost.
      expect((await tenancy(bench, ['new-site', 'kept.localhost', '--db-type', 'sqlite'], { env })).exitCode).toBe(0)
      const db = new (await import('better-sqlite3')).default(registryFile(bench))
      db.prepare("delete from sites where name in ('pg.localhost', 'locked.localhost')").run()
      db.close()
      // locked.localhost's server cannot be reached (as when it is down): it may hold data, so it stays.
      const lockedFile = join(bench, 'sites', 'locked.localhost', 'site_config.json')
      writeFileSync(lockedFile, JSON.stringify({ ...siteConfig(bench, 'locked.localhost'), db_port: 1 }))
      const locked = snapshot(join(bench, 'sites', 'locked.localhost'))
      mkdirSync(join(bench, 'sites', 'junk'))
      age(join(bench, 'sites', 'junk'))
      for (const site of ['pg.localhost', 'locked.localhost']) age(join(bench, 'sites', site))

      const fix = await tenancy(bench, ['doctor', '--fix', '--json'], { env })
      expect(fix.exitCode, fix.stderr).toBe(1)
      const byKind = Object.fromEntries(fix.json.findings.map((f: any) => [f.subject, [f.kind, f.fixed]]))
      expect(byKind).toEqual({
        junk: ['stray_directory', true],
        'locked.localhost': ['unreadable_site', false],
        'pg.localhost': ['unregistered_site', true],
      })
      expect(existsSync(join(bench, 'sites', 'junk'))).toBe(false)
      expect(snapshot(join(bench, 'sites', 'locked.localhost'))).toEqual(locked)
      const rows = await registryRows(
        bench,
        "select name, state, db_type, db_name, db_user, apps from sites where name = 'pg.localhost'",
      )
      expect(rows).toEqual([
        {
          name: 'pg.localhost',
          state: 'ready',
          db_type: 'postgres',
          db_name: siteConfig(bench, 'pg.localhost').db_name,
          db_user: siteConfig(bench, 'pg.localhost').db_user,
          apps: JSON.stringify([{ name: 'shared_lib', version: '1.0.0' }]),
        },
      ])
      const migrate = await tenancy(bench, ['migrate', '--site', 'pg.localhost', '--json'], { env })
      expect(migrate.json.sites[0].status, migrate.stderr).toBe('up_to_date')
    },
  )
})

describe.skipIf(!enabled('postgres'))('two machines, one PostgreSQL registry', () => {
  it("pending-create on the second machine leaves the first machine's failed pool tenant to it", async () => {
    const one = makeBench()
    const two = makeBench()
    await useRegistry(one, 'postgres')
    const url = JSON.parse(readFileSync(join(one, 'tenancy.config.json'), 'utf8')).registry
    for (const bench of [one, two]) {
      setConfig(bench, (c) => {
        c.registry = url
        c.provision = { ...(c.provision ?? {}), steps: ['create-site', { run: 'exit 3' }, 'activate'] }
      })
    }
    const first = await tenancy(one, ['pending-create', '--count', '1', '--json'], { env: { TENANCY_HOST: 'm1' } })
    expect(first.json.failed).toHaveLength(1)
    copyFileSync(join(one, '.tenancy', 'secret.key'), join(two, '.tenancy', 'secret.key'))
    const before = await registryRows(one, 'select name, provisioning_status, updated_at from tenants order by name')
    setConfig(two, (c) => (c.pending = { ...(c.pending ?? {}), count: 0 }))
    const second = await tenancy(two, ['pending-create', '--json'], { env: { TENANCY_HOST: 'm2' } })
    expect(second.exitCode, second.stderr).toBe(0)
    expect(second.json).toMatchObject({ target: 0, reserved: [], provisioned: [], failed: [] })
    expect(await registryRows(one, 'select name, provisioning_status, updated_at from tenants order by name')).toEqual(
      before,
    )
  })

  it("doctor --fix on the second machine changes nothing of the first's tenant, and no command there touches it", async () => {
    const one = makeBench()
    const two = makeBench()
    await useRegistry(one, 'postgres')
    const url = JSON.parse(readFileSync(join(one, 'tenancy.config.json'), 'utf8')).registry
    setConfig(two, (c) => (c.registry = url))
    const m1 = { TENANCY_HOST: 'm1' }
    const m2 = { TENANCY_HOST: 'm2' }
    expect((await tenancy(one, ['tenant', 'create', 'a1'], { env: m1 })).exitCode).toBe(0)
    expect((await tenancy(one, ['pending-create', '--count', '1'], { env: m1 })).exitCode).toBe(0)
    expect((await tenancy(one, ['new-site', 'solo.localhost'], { env: m1 })).exitCode).toBe(0)
    // Machines that share a registry share its key.
    copyFileSync(join(one, '.tenancy', 'secret.key'), join(two, '.tenancy', 'secret.key'))
    const registry = async () => [
      await registryRows(one, 'select * from sites order by name'),
      await registryRows(one, 'select * from tenants order by name'),
      await registryRows(one, 'select * from steps order by tenant_id, idx'),
      await registryRows(one, 'select * from jobs order by id'),
    ]
    const before = await registry()
    expect(before[0]!.map((s: any) => s.host)).toEqual(['m1', 'm1', 'm1'])

    const look = await tenancy(two, ['doctor', '--json'], { env: m2 })
    expect(look.exitCode, look.stderr).toBe(0)
    expect(look.json.findings).toEqual([])
    expect(look.json.elsewhere).toContainEqual({ site: 'a1.localhost', host: 'm1' })
    const text = await tenancy(two, ['doctor', '--fix'], { env: m2 })
    expect(text.exitCode, text.stderr).toBe(0)
    expect(text.stderr).toContain('site a1.localhost is on m1: not judged from this machine')
    expect(text.stderr).not.toMatch(/provision tenant|remove the row/)

    for (const [args, site] of [
      [['drop-site', 'solo.localhost', '--yes'], 'solo.localhost'],
      [['tenant', 'delete', 'a1', '--yes'], 'a1.localhost'],
    ] as const) {
      const r = await tenancy(two, [...args], { env: m2 })
      expect(r.exitCode, args.join(' ')).toBe(2)
      expect(r.stderr).toContain(`site "${site}" lives on m1, not on this machine (m2)`)
    }
    const clear = await tenancy(two, ['pending-clear', '--json'], { env: m2 })
    expect(clear.exitCode, clear.stderr).toBe(0)
    expect(clear.json.cleared).toEqual([])
    // With no worker on the first machine, its sites are reported unreachable (exit 1), not touched.
    const migrate = await tenancy(two, ['migrate', '--json'], { env: m2 })
    expect(migrate.exitCode).toBe(1)
    expect(migrate.json.sites.find((s: any) => s.site === 'a1.localhost')).toMatchObject({
      status: 'unreachable',
      error: expect.stringContaining('machine m1 has no live worker'),
    })
    expect(await registry()).toEqual(before)
    // A sign-up on the second machine does not pull the first machine's pool tenant (its site is there).
    const signUp = await tenancy(two, ['tenant', 'create', 'b2', '--json'], { env: m2 })
    expect(signUp.exitCode, signUp.stderr).toBe(0)
    expect(signUp.json.pulled_from).toBeUndefined()
    expect(await registryRows(one, 'select count(*) as n from tenants where pending_since is not null')).toEqual([
      { n: 1 },
    ])
    expect(await registryRows(one, "select host from sites where name = 'b2.localhost'")).toEqual([{ host: 'm2' }])

    // A job for the first machine's tenant: the second machine's doctor and worker leave it to the first.
    const at = new Date().toISOString()
    await registryRows(
      one,
      `insert into jobs (tenant_id, kind, status, attempts, run_at, created_at, updated_at) select id, 'provision', 'queued', 0, ?, ?, ? from tenants where name = 'a1'`,
      at,
      at,
      at,
    )
    expect((await tenancy(two, ['doctor', '--json'], { env: m2 })).json.findings).toEqual([])
    expect((await tenancy(two, ['worker', '--once'], { env: m2 })).exitCode).toBe(0)
    expect(await registryRows(one, 'select status, attempts from jobs')).toEqual([{ status: 'queued', attempts: 0 }])
    expect((await tenancy(one, ['worker', '--once'], { env: m1 })).exitCode).toBe(0)
    expect(await registryRows(one, 'select status from jobs')).toEqual([{ status: 'done' }])

    // The first machine's site still works.
    expect((await tenancy(one, ['doctor'], { env: m1 })).exitCode).toBe(0)
    const secrets = (await tenancy(one, ['tenant', 'show', 'a1', '--show-secrets', '--json'], { env: m1 })).json
    expect(secrets.status).toBe('active')
    const verify = await tenancy(one, ['verify-key', secrets.api_key, '--site', 'a1.localhost'], {
      env: m1,
      input: secrets.api_secret,
    })
    expect(verify.exitCode, verify.stderr).toBe(0)
  })
})

describe('a site directory replaced by a symbolic link', () => {
  it('drop-site, tenant delete, doctor --fix and new-site --force refuse (exit 2) and the file behind the link survives', async () => {
    const bench = makeBench({ exampleApps: false })
    expect((await tenancy(bench, ['new-site', 'b.localhost'])).exitCode).toBe(0)
    expect((await tenancy(bench, ['tenant', 'create', 't'])).exitCode).toBe(0)
    // The victim: a directory elsewhere that looks like a site, with a database holding data.
    const victim = tempDir('tenancy-victim-')
    writeFileSync(join(victim, 'db.sqlite'), 'precious')
    copyFileSync(join(bench, 'sites', 'b.localhost', 'site_config.json'), join(victim, 'site_config.json'))
    const moved = tempDir('tenancy-moved-')
    for (const site of ['b.localhost', 't.localhost']) {
      renameSync(join(bench, 'sites', site), join(moved, site))
      symlinkSync(victim, join(bench, 'sites', site))
    }
    symlinkSync(victim, join(bench, 'sites', 'c.localhost'))

    const cases: [string[], RegExp][] = [
      [['drop-site', 'b.localhost', '--yes'], /sites\/b\.localhost is a symbolic link, not a site directory/],
      [['drop-site', 'b.localhost', '--yes', '--no-archive'], /is a symbolic link/],
      [['tenant', 'delete', 't', '--yes'], /sites\/t\.localhost is a symbolic link/],
      [['new-site', 'c.localhost', '--force'], /sites\/c\.localhost is a symbolic link/],
      [['new-site', 'b.localhost', '--force'], /sites\/b\.localhost is a symbolic link/],
    ]
    for (const [args, message] of cases) {
      const r = await tenancy(bench, args)
      expect(r.exitCode, `${args.join(' ')}: ${r.stderr}`).toBe(2)
      expect(r.stderr).toMatch(message)
      expect(readFileSync(join(victim, 'db.sqlite'), 'utf8')).toBe('precious')
    }
    const fix = await tenancy(bench, ['doctor', '--fix', '--json'])
    expect(fix.exitCode).toBe(1)
    expect(fix.json.findings).toContainEqual(
      expect.objectContaining({
        kind: 'unreadable_site',
        subject: 'c.localhost',
        fixed: false,
        problem: expect.stringContaining('symbolic link'),
      }),
    )
    expect(readFileSync(join(victim, 'db.sqlite'), 'utf8')).toBe('precious')
    expect(readdirSync(victim).sort()).toEqual(['db.sqlite', 'site_config.json'])
    // Nothing was half-done: the rows are as they were.
    expect(query(registryFile(bench), 'select name, state from sites order by name')).toEqual([
      { name: 'b.localhost', state: 'ready' },
      { name: 't.localhost', state: 'ready' },
    ])
    expect(query(registryFile(bench), 'select name from tenants')).toEqual([{ name: 't' }])
  })
})
