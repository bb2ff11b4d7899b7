import { copyFileSync, cpSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { makeBench, setConfig, sleep, spawnTenancy, tenancy } from './helpers.js'
import { asSite, enabled, registryRows, serverHas, siteConfig, useBackend, useRegistry } from './backends.js'

// Several machines, one registry (SPEC §10): two benches ("machines" m1 and m2) in their own
// directories, with their own TENANCY_HOST, sharing one PostgreSQL registry and its key.

const M1 = { TENANCY_HOST: 'm1' }
const M2 = { TENANCY_HOST: 'm2' }

/** Two machines sharing a fresh PostgreSQL registry (m2 has m1's key, as machines of one registry must). */
async function twoMachines(): Promise<{ one: string; two: string }> {
  const one = makeBench({ lightSites: true })
  const two = makeBench({ lightSites: true })
  await useRegistry(one, 'postgres')
  const url = JSON.parse(readFileSync(join(one, 'tenancy.config.json'), 'utf8')).registry
  setConfig(two, (c) => (c.registry = url))
  return { one, two }
}

/** Machines that share a registry share its key: m1 made it with its first tenant or site. */
function shareKey(one: string, two: string): void {
  copyFileSync(join(one, '.tenancy', 'secret.key'), join(two, '.tenancy', 'secret.key'))
}

async function ok(bench: string, args: string[], env: Record<string, string>) {
  const r = await tenancy(bench, args, { env })
  expect(r.exitCode, `${args.join(' ')}: ${r.stderr}`).toBe(0)
  return r
}

async function sitesOn(bench: string, host: string, env: Record<string, string>): Promise<string[]> {
  const r = await ok(bench, ['list-sites', '--host', host, '--with-pending', '--json'], env)
  return r.json.sites.map((s: any) => s.site)
}

/** A usage error: exit 2, one line on stderr, matching `says`. */
function refused(r: { exitCode: number; stderr: string }, says: RegExp): void {
  expect(r.exitCode, r.stderr).toBe(2)
  expect(r.stderr.trim().split('\n')).toHaveLength(1)
  expect(r.stderr).toMatch(says)
}

/** Backs a site up on `from` and copies the set into `to`'s backups, as an operator would; returns its path there. */
async function carryBackup(from: string, to: string, site: string, env: Record<string, string>): Promise<string> {
  const r = await ok(from, ['backup', '--site', site, '--json'], env)
  const set: string = r.json.sites[0].path
  const there = join(to, 'backups', relative(join(from, 'backups'), set))
  cpSync(set, there, { recursive: true })
  return there
}

const workers: ReturnType<typeof spawnTenancy>[] = []
afterEach(() => {
  for (const w of workers.splice(0)) w.kill('SIGKILL')
})

/**
 * Starts `tenancy worker` on a machine and waits until its heartbeat lease is in the registry.
 * (Wrapped: the child is a promise of its end, which an async function would wait for.)
 */
async function startWorker(
  bench: string,
  env: Record<string, string>,
): Promise<{ worker: ReturnType<typeof spawnTenancy> }> {
  const worker = spawnTenancy(bench, ['worker'], env)
  workers.push(worker)
  for (let i = 0; i < 200; i++) {
    const rows = await registryRows(bench, `select name from leases where name like 'worker:${env.TENANCY_HOST}:%'`)
    if (rows.length > 0) return { worker }
    await sleep(50)
  }
  throw new Error('the worker did not register')
}

describe.skipIf(!enabled('postgres'))('machines sharing a registry', () => {
  it('list-sites --host lists one machine\'s sites (with the other filters), tenant show has "host"; bad names are exit 2', async () => {
    const { one, two } = await twoMachines()
    await ok(one, ['tenant', 'create', 'a1'], M1)
    await ok(one, ['new-site', 'solo.localhost'], M1)
    await ok(one, ['pending-create', '--count', '1'], M1)
    shareKey(one, two)
    await ok(two, ['new-site', 'b2.localhost'], M2)

    const all = await ok(two, ['list-sites', '--with-pending', '--json'], M2)
    expect(all.json.sites).toHaveLength(4)
    for (const s of all.json.sites) expect(s.host, s.site).toBe(s.site === 'b2.localhost' ? 'm2' : 'm1')
    const onM1 = await sitesOn(two, 'm1', M2)
    expect(onM1).toHaveLength(3)
    expect(onM1).toEqual(expect.arrayContaining(['a1.localhost', 'solo.localhost']))
    expect(await sitesOn(one, 'm2', M1)).toEqual(['b2.localhost'])
    // --host with the pending filters: m1's pool site alone, or m1's sites without it.
    const pool = await ok(two, ['list-sites', '--host', 'm1', '--only-pending', '--json'], M2)
    expect(pool.json.sites).toHaveLength(1)
    expect(pool.json.sites[0]).toMatchObject({ pending: true, host: 'm1' })
    const noPool = await ok(two, ['list-sites', '--host', 'm1', '--without-pending', '--json'], M2)
    expect(noPool.json.sites.map((s: any) => s.site).sort()).toEqual(['a1.localhost', 'solo.localhost'])
    const text = await ok(two, ['list-sites', '--host', 'm1'], M2)
    expect(text.stdout).toMatch(/^SITE .* HOST$/m)
    expect(text.stdout).toMatch(/^solo\.localhost .* m1$/m)
    expect(text.stdout).not.toContain('b2.localhost')

    // A machine with no sites: an empty list, and a line that says so on a terminal.
    expect((await ok(two, ['list-sites', '--host', 'm3', '--json'], M2)).json).toEqual({ sites: [], total: 0 })
    expect((await ok(two, ['list-sites', '--host', 'm3'], M2)).stdout.trim()).toBe('no sites on m3')

    const shown = await ok(two, ['tenant', 'show', 'a1', '--json'], M2)
    expect(shown.json).toMatchObject({ name: 'a1', site: 'a1.localhost', host: 'm1' })
    expect((await ok(one, ['tenant', 'show', 'a1'], M1)).stdout).toMatch(/^host +m1$/m)

    for (const bad of ['web 1', 'a/b', '-x', '', 'x'.repeat(65), 'é', 'web1.']) {
      const r = await tenancy(two, ['list-sites', `--host=${bad}`], { env: M2 })
      refused(r, /invalid --host .*use a hostname such as "web-1"/)
      const json = await tenancy(two, ['list-sites', `--host=${bad}`, '--json'], { env: M2 })
      expect(json.exitCode).toBe(2)
      expect(json.json.error.message).toMatch(/invalid --host/)
      refused(await tenancy(two, ['host', 'forget', '--yes', '--', bad], { env: M2 }), /invalid machine name/)
    }
  })

  it('host forget is refused while the machine has a live worker or live sites, and for this machine; restore --rehome moves its sites, then forget removes it', async () => {
    const { one, two } = await twoMachines()
    await ok(one, ['tenant', 'create', 'a1'], M1)
    await ok(one, ['new-site', 'solo.localhost'], M1)
    shareKey(one, two)
    const tenantBefore = await registryRows(
      one,
      "select name, site, status, provisioning_status, api_key, api_secret_enc, data from tenants where name = 'a1'",
    )
    const setA1 = await carryBackup(one, two, 'a1.localhost', M1)
    const setSolo = await carryBackup(one, two, 'solo.localhost', M1)
    const m1Files = readdirSync(join(one, 'sites')).sort()

    // m1 is live while its worker runs: nothing of it is forgotten or moved.
    const { worker } = await startWorker(one, M1)
    refused(
      await tenancy(two, ['host', 'forget', 'm1', '--yes'], { env: M2 }),
      /machine "m1" is live: a "tenancy worker" there renews its lease; stop it first/,
    )
    refused(
      await tenancy(two, ['restore', 'a1.localhost', setA1, '--rehome', '--yes'], { env: M2 }),
      /machine "m1" is live \(its worker is running\): restore site "a1.localhost" there/,
    )
    // m1 dies: its worker is killed, its lease left behind.
    worker.kill('SIGKILL')
    await worker
    expect(await registryRows(one, "select count(*) as n from leases where name like 'worker:m1:%'")).toEqual([
      { n: 1 },
    ])

    // Work left for m1: a fleet job sent to it, a provisioning job placed on it, a site whose creation failed there.
    const at = new Date().toISOString()
    await registryRows(
      one,
      `insert into site_jobs (host, command, payload, sites, status, requested_by, created_at, updated_at)
       values ('m1', 'migrate', '{}', '["a1.localhost"]', 'queued', 'test', ?, ?)`,
      at,
      at,
    )
    // A tenant recorded (its steps to do) and its job queued for m1, as `tenant create --host m1 --background` does.
    // And a tenant whose provisioning failed there for good (its job failed, no site made).
    setConfig(one, (c) => (c.auto_provision_tenant_sites = false))
    await ok(one, ['tenant', 'create', 'q1'], M1)
    await ok(one, ['tenant', 'create', 'f1'], M1)
    setConfig(one, (c) => delete c.auto_provision_tenant_sites)
    await registryRows(
      one,
      `insert into jobs (tenant_id, kind, status, attempts, run_at, created_at, updated_at, host, last_error)
       select id, 'provision', 'failed', 3, ?, ?, ?, 'm1', 'gave up' from tenants where name = 'f1'`,
      at,
      at,
      at,
    )
    refused(await tenancy(two, ['provision', 'f1'], { env: M2 }), /m1/)
    await registryRows(
      one,
      `insert into jobs (tenant_id, kind, status, attempts, run_at, created_at, updated_at, host)
       select id, 'provision', 'queued', 0, ?, ?, ?, 'm1' from tenants where name = 'q1'`,
      at,
      at,
      at,
    )
    await registryRows(
      one,
      `insert into sites (name, state, db_type, db_name, host, created_at, updated_at)
       values ('dead.localhost', 'failed', 'sqlite', '_dead', 'm1', ?, ?)`,
      at,
      at,
    )

    refused(
      await tenancy(two, ['host', 'forget', 'm1', '--yes'], { env: M2 }),
      /machine "m1" still homes 2 live site\(s\) \(a1\.localhost, solo\.localhost\); see them with "tenancy list-sites --host m1", .*"tenancy restore SITE SET --rehome"/,
    )
    refused(await tenancy(two, ['host', 'forget', 'm2', '--yes'], { env: M2 }), /"m2" is this machine/)
    refused(
      await tenancy(two, ['host', 'forget', 'm9', '--yes'], { env: M2 }),
      /no site, job or worker .* names machine "m9"/,
    )
    // A plain restore of m1's site on m2 says how to move it.
    const plain = await tenancy(two, ['restore', 'a1.localhost', setA1, '--yes'], { env: M2 })
    expect(plain.exitCode).toBe(2)
    expect(plain.stderr).toContain(
      `site "a1.localhost" lives on m1, not on this machine (m2); run "tenancy restore a1.localhost" there, ` +
        `or, if m1 is gone for good, move the site here with "tenancy restore a1.localhost ${setA1} --rehome"`,
    )
    refused(
      await tenancy(two, ['restore', 'b.localhost', setA1, '--rehome', '--yes'], { env: M2 }),
      /site "b\.localhost" does not exist/,
    )

    const moved = await ok(two, ['restore', 'a1.localhost', setA1, '--rehome', '--yes', '--json'], M2)
    expect(moved.json).toMatchObject({
      site: 'a1.localhost',
      rehomed_from: 'm1',
      host: 'm2',
      backup: null,
      migrate: { status: expect.any(String), error: null },
    })
    expect(siteConfig(two, 'a1.localhost').db_name).toBe(moved.json.db_name)
    expect(existsSync(join(two, 'sites', 'a1.localhost', '.restore.json'))).toBe(false)
    const text = await ok(two, ['restore', 'solo.localhost', setSolo, '--rehome', '--yes'], M2)
    expect(text.stdout).toMatch(
      /^site solo\.localhost moved from m1 to this machine \(m2\), on the database _[0-9a-f]+/m,
    )
    expect(
      await registryRows(one, "select name, host, state from sites where host in ('m1', 'm2') order by name"),
    ).toEqual([
      { name: 'a1.localhost', host: 'm2', state: 'ready' },
      { name: 'dead.localhost', host: 'm1', state: 'failed' },
      { name: 'solo.localhost', host: 'm2', state: 'ready' },
    ])
    // Only the site moved: the tenant is as it was.
    expect(
      await registryRows(
        one,
        "select name, site, status, provisioning_status, api_key, api_secret_enc, data from tenants where name = 'a1'",
      ),
    ).toEqual(tenantBefore)
    // Nothing on the machine that was left is touched.
    expect(readdirSync(join(one, 'sites')).sort()).toEqual(m1Files)
    expect(existsSync(join(one, 'sites', 'a1.localhost', 'db.sqlite'))).toBe(true)
    // Done once, --rehome is refused: the site lives here now.
    refused(
      await tenancy(two, ['restore', 'a1.localhost', setA1, '--rehome', '--yes'], { env: M2 }),
      /lives on this machine \(m2\) already; restore it without --rehome/,
    )

    // The moved site works on m2: its keys, and migrate run there.
    const keys = await ok(two, ['tenant', 'show', 'a1', '--show-secrets', '--json'], M2)
    expect(keys.json.host).toBe('m2')
    const verify = await tenancy(two, ['verify-key', keys.json.api_key, '--site', 'a1.localhost'], {
      env: M2,
      input: keys.json.api_secret,
    })
    expect(verify.exitCode, verify.stderr).toBe(0)
    writeFileSync(
      join(two, 'apps', 'shared_lib', 'migrations', '0090_moved.sql'),
      'CREATE TABLE moved_here (id VARCHAR(32) PRIMARY KEY);\n',
    )
    const migrated = await ok(two, ['migrate', '--site', 'a1.localhost', '--json'], M2)
    expect(migrated.json.sites).toEqual([
      expect.objectContaining({ site: 'a1.localhost', status: 'migrated', applied: ['shared_lib/0090_moved'] }),
    ])
    expect((await asSite(two, 'a1.localhost', 'select count(*) as n from moved_here')).rows).toEqual([{ n: 0 }])

    const forgot = await ok(two, ['host', 'forget', 'm1', '--yes', '--json'], M2)
    expect(forgot.json).toMatchObject({
      host: 'm1',
      leases_removed: [expect.stringMatching(/^worker:m1:/)],
      site_jobs_cancelled: [expect.any(Number)],
      jobs_unplaced: [{ id: expect.any(Number), tenant: 'q1' }],
      sites_removed: [{ site: 'dead.localhost', db_type: 'sqlite', db_name: '_dead', db_host: null }],
    })
    expect(await registryRows(one, 'select status, error from site_jobs')).toEqual([
      { status: 'cancelled', error: 'machine m1 was forgotten' },
    ])
    expect(
      await registryRows(
        one,
        'select t.name, j.host, j.status from jobs j join tenants t on t.id = j.tenant_id order by t.name',
      ),
    ).toEqual([
      { name: 'f1', host: null, status: 'failed' },
      { name: 'q1', host: null, status: 'queued' },
    ])
    expect(await registryRows(one, "select count(*) as n from leases where name like 'worker%m1%'")).toEqual([{ n: 0 }])
    expect((await ok(two, ['list-sites', '--host', 'm1'], M2)).stdout.trim()).toBe('no sites on m1')
    // The job that was m1's is now any machine's: m2's worker provisions q1 and homes its site on m2.
    await ok(two, ['worker', '--once'], M2)
    expect(await registryRows(one, "select host, state from sites where name = 'q1.localhost'")).toEqual([
      { host: 'm2', state: 'ready' },
    ])
    // The tenant that failed on m1 belongs to no machine now: m2 provisions it.
    expect((await ok(two, ['tenant', 'show', 'f1', '--json'], M2)).json.host).toBeNull()
    await ok(two, ['provision', 'f1'], M2)
    expect(await registryRows(one, "select host, state from sites where name = 'f1.localhost'")).toEqual([
      { host: 'm2', state: 'ready' },
    ])
  })

  it('a restore --rehome killed before the switch leaves the site on m1 and is undone by the next; one killed after it is finished by doctor --fix', async () => {
    const { one, two } = await twoMachines()
    await ok(one, ['new-site', 'k.localhost'], M1)
    await ok(one, ['new-site', 'j.localhost'], M1)
    await ok(one, ['tenant', 'create', 'keyed'], M1)
    shareKey(one, two)
    const setK = await carryBackup(one, two, 'k.localhost', M1)
    const setJ = await carryBackup(one, two, 'j.localhost', M1)

    for (const fault of ['rehome-after-create', 'rehome-before-switch']) {
      const killed = await tenancy(two, ['restore', 'k.localhost', setK, '--rehome', '--yes'], {
        env: { ...M2, TENANCY_FAULT: fault },
      })
      expect(killed.exitCode, fault).not.toBe(0)
      expect(await registryRows(one, "select host from sites where name = 'k.localhost'")).toEqual([{ host: 'm1' }])
      expect(existsSync(join(two, 'sites', 'k.localhost', '.restore.json')), fault).toBe(true)
    }
    const again = await ok(two, ['restore', 'k.localhost', setK, '--rehome', '--yes', '--json'], M2)
    expect(again.json).toMatchObject({ rehomed_from: 'm1', host: 'm2' })
    expect(readdirSync(join(two, 'sites', 'k.localhost')).sort()).toEqual(['db.sqlite', 'site_config.json'])

    const afterSwitch = await tenancy(two, ['restore', 'j.localhost', setJ, '--rehome', '--yes'], {
      env: { ...M2, TENANCY_FAULT: 'rehome-after-switch' },
    })
    expect(afterSwitch.exitCode).not.toBe(0)
    expect(await registryRows(one, "select host from sites where name = 'j.localhost'")).toEqual([{ host: 'm2' }])
    const look = await tenancy(two, ['doctor', '--json'], { env: M2 })
    expect(look.exitCode, look.stdout).toBe(1)
    expect(look.json.findings).toContainEqual(
      expect.objectContaining({
        kind: 'interrupted_restore',
        subject: 'j.localhost',
        fix: expect.stringContaining('its old database on m1 is left'),
      }),
    )
    await ok(two, ['doctor', '--fix'], M2)
    expect(existsSync(join(two, 'sites', 'j.localhost', '.restore.json'))).toBe(false)
    expect(existsSync(join(one, 'sites', 'j.localhost', 'db.sqlite'))).toBe(true)
    await ok(two, ['--site', 'j.localhost', 'add-user', 'ops@j.localhost'], M2)
  })

  it("restore --rehome makes the database on this machine's server (its config), a new user, and leaves the old one", async () => {
    const { one, two } = await twoMachines()
    const env1 = { ...M1, ...useBackend(one, 'postgres') }
    const env2 = { ...M2, ...useBackend(two, 'postgres') }
    await ok(one, ['tenant', 'create', 'pg1'], env1)
    shareKey(one, two)
    const old = siteConfig(one, 'pg1.localhost')
    const set = await carryBackup(one, two, 'pg1.localhost', env1)
    // Killed after its database was made here: the next rehome drops that database and its user first.
    const killed = await tenancy(two, ['restore', 'pg1.localhost', set, '--rehome', '--yes'], {
      env: { ...env2, TENANCY_FAULT: 'rehome-before-switch' },
    })
    expect(killed.exitCode).not.toBe(0)
    const orphan = JSON.parse(readFileSync(join(two, 'sites', 'pg1.localhost', '.restore.json'), 'utf8')).new
    expect(await serverHas('postgres', orphan.db_name)).toEqual({ database: true, user: true })
    const moved = await ok(two, ['restore', 'pg1.localhost', set, '--rehome', '--yes', '--json'], env2)
    const fresh = siteConfig(two, 'pg1.localhost')
    expect(fresh).toMatchObject({ db_type: 'postgres', db_name: moved.json.db_name })
    expect(fresh.db_name).not.toBe(old.db_name)
    expect(fresh.db_user).not.toBe(old.db_user)
    expect(moved.json.previous_db_name).toBe(old.db_name)
    expect(await serverHas('postgres', orphan.db_name)).toEqual({ database: false, user: false })
    expect(await registryRows(one, "select host, db_name, db_user from sites where name = 'pg1.localhost'")).toEqual([
      { host: 'm2', db_name: fresh.db_name, db_user: fresh.db_user },
    ])
    // The old database is left as it was, still readable by its own user.
    expect((await asSite(one, 'pg1.localhost', 'select count(*) as n from tenancy_migrations')).error).toBeUndefined()
    const keys = await ok(two, ['tenant', 'show', 'pg1', '--show-secrets', '--json'], env2)
    const verify = await tenancy(two, ['verify-key', keys.json.api_key, '--site', 'pg1.localhost'], {
      env: env2,
      input: keys.json.api_secret,
    })
    expect(verify.exitCode, verify.stderr).toBe(0)
  })
})

describe('one machine (an SQLite registry)', () => {
  it("list-sites --host: every site is this machine's; host forget and restore --rehome are refused", async () => {
    const bench = makeBench({ lightSites: true })
    const env = { TENANCY_HOST: 'solo-box' }
    await ok(bench, ['new-site', 'a.localhost'], env)
    expect(await sitesOn(bench, 'solo-box', env)).toEqual(['a.localhost'])
    expect(await sitesOn(bench, 'other', env)).toEqual([])
    refused(
      await tenancy(bench, ['host', 'forget', 'other', '--yes'], { env }),
      /SQLite, which belongs to one machine only/,
    )
    const set = (await ok(bench, ['backup', '--site', 'a.localhost', '--json'], env)).json.sites[0].path
    refused(
      await tenancy(bench, ['restore', 'a.localhost', set, '--rehome', '--yes'], { env }),
      /with this SQLite registry every site lives on this machine/,
    )
    refused(
      await tenancy(bench, ['restore', 'a.localhost', set, '--rehome', '--backup-path', 'x', '--yes'], { env }),
      /--rehome takes no backup first/,
    )
  })
})
