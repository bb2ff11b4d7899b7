import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { describe, expect, it } from 'vitest'
import { makeBench, mapLimit, spawnTenancy, tenancy, query, setConfig } from './helpers.js'
import { REGISTRIES, registryRows, useRegistry } from './backends.js'
import {
  checkPassword,
  openBench,
  pendingCount,
  pendingCreate,
  pullPending,
  pullPendingFromPool,
  createPending,
  showTenant,
} from '../src/index.js'

const registry = (bench: string) => join(bench, '.tenancy', 'registry.db')
const pendingRows = (bench: string) =>
  registryRows(bench, 'select name, site, provisioning_status from tenants where pending_since is not null order by id')

async function pulledCorrectly(bench: string, name: string, site = `${name}.localhost`): Promise<void> {
  const show = await tenancy(bench, ['tenant', 'show', name, '--show-secrets', '--json'])
  expect(show.json, show.stderr).toMatchObject({
    name,
    site,
    status: 'active',
    provisioning_status: 'completed',
    pending_since: null,
  })
  expect(existsSync(join(bench, 'sites', site, 'db.sqlite'))).toBe(true)
  expect(
    await registryRows(bench, 'select state, tenant_id is not null as owned from sites where name = ?', site),
  ).toEqual([{ state: 'ready', owned: 1 }])
  expect(await registryRows(bench, 'select count(*) as n from tenants where pull_from is not null')).toEqual([{ n: 0 }])
  const db = join(bench, 'sites', site, 'db.sqlite')
  expect(query(db, "select name from users where name like 'api@%'")).toEqual([{ name: `api@${site}` }])
  const verify = await tenancy(bench, ['verify-key', show.json.api_key, '--site', site], {
    input: show.json.api_secret,
  })
  expect(verify.exitCode, verify.stderr).toBe(0)
}

// Apart from the first test, which checks what a pending site holds, the sites here get shared_lib
// alone (lightSites): the pool is under test, not the apps.

describe('pending-create and pending-clear', () => {
  it('creates only the shortfall, from --count, TENANCY_PENDING_COUNT or pending.count', async () => {
    const bench = makeBench()
    const first = await tenancy(bench, ['pending-create', '--count', '2', '--json'])
    expect(first.exitCode, first.stderr).toBe(0)
    expect(first.json).toMatchObject({ target: 2, pool: { ready: 2, provisioning: 0, failed: 0 } })
    expect(first.json.reserved).toHaveLength(2)
    const rows = await pendingRows(bench)
    expect(rows.map((r) => r.provisioning_status)).toEqual(['completed', 'completed'])
    const list = await tenancy(bench, ['tenant', 'list', '--only-pending', '--json'])
    expect(list.json.tenants.every((t: any) => t.pending_since !== null && t.status === 'active')).toBe(true)
    const env = await tenancy(bench, ['pending-create', '--json'], { env: { TENANCY_PENDING_COUNT: '3' } })
    expect(env.json.reserved).toHaveLength(1)
    setConfig(bench, (c) => (c.pending.count = 4))
    const config = await tenancy(bench, ['pending-create', '--json'])
    expect(config.json.reserved).toHaveLength(1)
    const none = await tenancy(bench, ['pending-create', '--count', '2', '--json'])
    expect(none.json.reserved).toEqual([])
    expect(await pendingRows(bench)).toHaveLength(4)
    // Pending tenants have complete, usable sites.
    const sample = rows[0]
    const db = join(bench, 'sites', sample.site, 'db.sqlite')
    expect(query(db, 'select name from installed_apps order by name')).toEqual([
      { name: 'shared_lib' },
      { name: 'tenant_ops' },
    ])
  })

  it("each tenant's Administrator logs in with its stored password (hashes started for the next tenant ahead)", async () => {
    for (const [concurrency, configured] of [
      [1, undefined],
      [2, 'pool-admin-pw'],
    ] as const) {
      const dir = makeBench({ lightSites: true })
      const env = { ...process.env, TENANCY_ADMIN_PASSWORD: configured }
      if (configured === undefined) delete env.TENANCY_ADMIN_PASSWORD
      const bench = await openBench({ cwd: dir, env })
      try {
        const result = await pendingCreate(bench, { count: 4, concurrency })
        expect(result.provisioned).toHaveLength(4)
        const hashes = new Set<string>()
        for (const name of result.provisioned) {
          const tenant = await showTenant(bench, name, { showSecrets: true })
          const password = tenant.admin_password!
          if (configured !== undefined) expect(password).toBe(configured)
          expect(await checkPassword(bench, { site: tenant.site!, email: 'Administrator', password })).toBe(true)
          expect(await checkPassword(bench, { site: tenant.site!, email: 'Administrator', password: 'x' })).toBe(false)
          const db = join(dir, 'sites', tenant.site!, 'db.sqlite')
          hashes.add(query(db, "select password_hash from users where name = 'Administrator'")[0].password_hash)
        }
        // One hash, and salt, each, also when they share the configured password.
        expect(hashes.size).toBe(4)
      } finally {
        await bench.close()
      }
    }
  })

  it("killed once the next tenant's password is stored: the next run provisions both with their stored passwords", async () => {
    const dir = makeBench({ lightSites: true })
    const killed = await tenancy(dir, ['pending-create', '--count', '2'], {
      env: { TENANCY_FAULT: 'pending-after-prepare' },
    })
    expect(killed.exitCode).not.toBe(0)
    // Both chose and stored before anything of either site was made.
    expect(await registryRows(dir, 'select count(*) as n from tenants where admin_password_enc is not null')).toEqual([
      { n: 2 },
    ])
    expect(readdirSync(join(dir, 'sites')).filter((s) => s.startsWith('pending-'))).toEqual([])
    const again = await tenancy(dir, ['pending-create', '--count', '2', '--json'])
    expect(again.exitCode, again.stderr).toBe(0)
    expect(again.json.reserved).toEqual([])
    expect(again.json.provisioned).toHaveLength(2)
    const bench = await openBench({ cwd: dir })
    try {
      for (const name of again.json.provisioned) {
        const tenant = await showTenant(bench, name, { showSecrets: true })
        const password = tenant.admin_password!
        expect(await checkPassword(bench, { site: tenant.site!, email: 'Administrator', password })).toBe(true)
      }
    } finally {
      await bench.close()
    }
  })

  it('clears all, or only those older than the bound; both bounds are exit 2', async () => {
    const bench = makeBench({ lightSites: true })
    await tenancy(bench, ['pending-create', '--count', '3'])
    const [old] = await pendingRows(bench)
    const db = new Database(registry(bench))
    db.prepare('update tenants set pending_since = ? where name = ?').run(
      new Date(Date.now() - 3 * 86_400_000).toISOString(),
      old.name,
    )
    db.close()
    const both = await tenancy(bench, ['pending-clear', '--older-than-days', '1', '--older-than-hours', '1'])
    expect(both.exitCode).toBe(2)
    const days = await tenancy(bench, ['pending-clear', '--older-than-days', '2', '--json'])
    expect(days.json.cleared).toEqual([old.name])
    expect(existsSync(join(bench, 'sites', old.site))).toBe(false)
    expect(await pendingRows(bench)).toHaveLength(2)
    const hours = await tenancy(bench, ['pending-clear', '--older-than-hours', '1', '--json'])
    expect(hours.json.cleared).toEqual([])
    const all = await tenancy(bench, ['pending-clear', '--json'])
    expect(all.json.cleared).toHaveLength(2)
    expect(await pendingRows(bench)).toEqual([])
    expect(readdirSync(join(bench, 'sites'))).toEqual([])
    expect(query(registry(bench), 'select count(*) as n from sites')).toEqual([{ n: 0 }])
    expect((await tenancy(bench, ['doctor'])).exitCode).toBe(0)
  })
})

describe('pulling from the pool', () => {
  it('tenant create pulls a ready tenant: renamed site, own API user, new keys, attributes applied', async () => {
    const bench = makeBench({ lightSites: true })
    setConfig(bench, (c) => (c.pending.attributes = { plan: 'trial', region: 'eu' }))
    await tenancy(bench, ['pending-create', '--count', '2'])
    const [first] = await pendingRows(bench)
    const placeholder = (await tenancy(bench, ['tenant', 'show', first.name, '--json'])).json
    const r = await tenancy(bench, ['tenant', 'create', 'acme', '--data', 'plan=pro', '--json'])
    expect(r.exitCode, r.stderr).toBe(0)
    expect(r.json).toMatchObject({
      mode: 'pulled',
      name: 'acme',
      site: 'acme.localhost',
      pulled_from: first.site,
      data: { plan: 'pro', region: 'eu' },
    })
    expect(r.json.api_key).not.toBe(placeholder.api_key)
    expect(existsSync(join(bench, 'sites', first.site))).toBe(false)
    await pulledCorrectly(bench, 'acme')
    expect(await pendingRows(bench)).toHaveLength(1)
    // The pulled tenant keeps its provisioning history.
    expect(r.json.steps.every((s: any) => s.status === 'done')).toBe(true)
  })

  it('an empty pool provisions synchronously; --no-pool skips a full pool', async () => {
    const bench = makeBench({ lightSites: true })
    const empty = await tenancy(bench, ['tenant', 'create', 'acme', '--json'])
    expect(empty.json.mode).toBe('provisioned')
    await tenancy(bench, ['pending-create', '--count', '1'])
    const skip = await tenancy(bench, ['tenant', 'create', 'beta', '--no-pool', '--json'])
    expect(skip.json.mode).toBe('provisioned')
    expect(await pendingRows(bench)).toHaveLength(1)
  })

  it('a pull whose attributes cannot apply leaves the tenant in the pool', async () => {
    const bench = makeBench({ lightSites: true })
    await tenancy(bench, ['new-site', 'taken.localhost'])
    await tenancy(bench, ['pending-create', '--count', '1'])
    const before = await pendingRows(bench)
    const r = await tenancy(bench, ['tenant', 'create', 'x', '--site', 'taken.localhost'])
    expect(r.exitCode).toBe(2)
    expect(r.stderr).toMatch(/site "taken.localhost" exists already/)
    expect(await pendingRows(bench)).toEqual(before)
    expect(existsSync(join(bench, 'sites', before[0].site))).toBe(true)
  })

  it('library: pullPendingFromPool is null when empty, pullPending creates, createPending uses getPendingAttributes', async () => {
    const bench = makeBench({ lightSites: true })
    const options = { cwd: bench, env: { ...process.env, TENANCY_ADMIN_PASSWORD: undefined } as NodeJS.ProcessEnv }
    expect(await pullPendingFromPool(false, { name: 'nobody' }, options)).toBeNull()
    expect(await pendingCount(options)).toBe(0)
    const created = await pullPending({ name: 'fresh', data: { company: 'acme' } }, options)
    expect(created).toMatchObject({ name: 'fresh', status: 'active', data: { company: 'acme' } })
    const pending = await createPending(
      { foo: 'bar' },
      { ...options, getPendingAttributes: () => ({ plan: 'trial', foo: 'default' }) },
    )
    expect(pending.pending_since).not.toBeNull()
    expect(pending.data).toEqual({ plan: 'trial', foo: 'bar' })
    expect(await pendingCount(options)).toBe(1)
    const bench2 = await openBench(options)
    try {
      const pulled = await pullPending({ name: 'acme', data: { company: 'acme' } }, { bench: bench2 })
      expect(pulled).toMatchObject({
        name: 'acme',
        site: 'acme.localhost',
        pending_since: null,
        data: { plan: 'trial', foo: 'bar', company: 'acme' },
      })
      expect(pulled.pulled_from).toBe(pending.site)
    } finally {
      await bench2.close()
    }
    expect(await pendingCount(options)).toBe(0)
    await pulledCorrectly(bench, 'acme')
  })
})

describe('pending tenants in queries', () => {
  it('follows pending.include_in_queries unless --with-pending/--only-pending/--without-pending says otherwise', async () => {
    const bench = makeBench({ lightSites: true })
    await tenancy(bench, ['tenant', 'create', 'real'])
    await tenancy(bench, ['pending-create', '--count', '1'])
    const names = async (args: string[]) => (await tenancy(bench, [...args, '--json'])).json
    for (const include of [false, true]) {
      setConfig(bench, (c) => (c.pending.include_in_queries = include))
      const expectations: [string[], number][] = [
        [[], include ? 2 : 1],
        [['--with-pending'], 2],
        [['--with-pending=true'], 2],
        [['--with-pending=1'], 2],
        [['--with-pending=false'], 1],
        [['--with-pending=0'], 1],
        [['--only-pending'], 1],
        [['--without-pending'], 1],
      ]
      // Reads only: several at a time.
      const listed = await mapLimit(expectations, 2, ([flags]) =>
        Promise.all([names(['tenant', 'list', ...flags]), names(['list-sites', ...flags])]),
      )
      expectations.forEach(([flags, count], i) => {
        const [tenants, sites] = listed[i]!
        expect(tenants.tenants, `tenant list ${flags} include=${include}`).toHaveLength(count)
        expect(sites.sites, `list-sites ${flags} include=${include}`).toHaveLength(count)
      })
      expect((await names(['tenant', 'list', '--only-pending'])).tenants[0].pending_since).not.toBeNull()
    }
    expect((await tenancy(bench, ['tenant', 'list', '--with-pending=maybe'])).exitCode).toBe(2)
    expect((await tenancy(bench, ['tenant', 'list', '--only-pending', '--without-pending'])).exitCode).toBe(2)
  })
})

/** A bench for the races, its registry on `kind`. */
async function raceBench(kind: 'sqlite' | 'postgres'): Promise<string> {
  const bench = makeBench({ lightSites: true })
  await useRegistry(bench, kind)
  return bench
}

describe.each(REGISTRIES)('races and crashes, with real processes (registry: $name)', ({ name: kind, skip }) => {
  describe.skipIf(skip)('', () => {
    it('8 concurrent tenant create against a pool of 4: 4 pulled, 4 provisioned, 8 distinct sites', async () => {
      const bench = await raceBench(kind)
      await tenancy(bench, ['pending-create', '--count', '4'])
      const runs = await Promise.all(
        Array.from({ length: 8 }, (_, i) => spawnTenancy(bench, ['tenant', 'create', `c${i}`, '--json'])),
      )
      const modes = runs.map((r) => {
        expect(r.exitCode, String(r.stderr)).toBe(0)
        return JSON.parse(String(r.stdout)).mode
      })
      expect(modes.filter((m) => m === 'pulled')).toHaveLength(4)
      expect(modes.filter((m) => m === 'provisioned')).toHaveLength(4)
      const sites = (await registryRows(bench, 'select site from tenants order by site')).map((r: any) => r.site)
      expect(sites).toEqual(Array.from({ length: 8 }, (_, i) => `c${i}.localhost`).sort())
      expect(readdirSync(join(bench, 'sites')).sort()).toEqual(sites)
      await mapLimit(
        Array.from({ length: 8 }, (_, i) => `c${i}`),
        2,
        (name) => pulledCorrectly(bench, name),
      )
    })

    it('4 overlapping pending-create --count 6 end with exactly 6, all exit 0', async () => {
      const bench = await raceBench(kind)
      const runs = await Promise.all(
        Array.from({ length: 4 }, () => spawnTenancy(bench, ['pending-create', '--count', '6', '--json'])),
      )
      for (const r of runs) expect(r.exitCode, String(r.stderr)).toBe(0)
      const reserved = runs.flatMap((r) => JSON.parse(String(r.stdout)).reserved)
      expect(reserved).toHaveLength(6)
      const rows = await pendingRows(bench)
      expect(rows).toHaveLength(6)
      expect(rows.every((r) => r.provisioning_status === 'completed')).toBe(true)
      expect(readdirSync(join(bench, 'sites'))).toHaveLength(6)
    })

    it('pending-clear racing pulls never deletes a pulled tenant', async () => {
      const bench = await raceBench(kind)
      await tenancy(bench, ['pending-create', '--count', '6'])
      const pulls = Array.from({ length: 3 }, (_, i) => spawnTenancy(bench, ['tenant', 'create', `p${i}`, '--json']))
      const clear = spawnTenancy(bench, ['pending-clear', '--json'])
      const results = await Promise.all([...pulls, clear])
      for (const r of results) expect(r.exitCode, String(r.stderr)).toBe(0)
      for (let i = 0; i < 3; i++) {
        const mode = JSON.parse(String(results[i]!.stdout)).mode
        expect(['pulled', 'provisioned']).toContain(mode)
        await pulledCorrectly(bench, `p${i}`)
      }
      expect(await pendingRows(bench)).toEqual([])
      expect(readdirSync(join(bench, 'sites')).sort()).toEqual(['p0.localhost', 'p1.localhost', 'p2.localhost'])
    })

    it('SIGKILL in the middle of a pull: the next command finishes it', async () => {
      const bench = await raceBench(kind)
      await tenancy(bench, ['pending-create', '--count', '2'])
      for (const [i, fault] of ['pull-after-claim', 'rename-after-files'].entries()) {
        const name = `k${i}`
        const r = await tenancy(bench, ['tenant', 'create', name], { env: { TENANCY_FAULT: fault } })
        expect(r.exitCode).not.toBe(0)
        expect(await registryRows(bench, 'select count(*) as n from tenants where pull_from is not null')).toEqual([
          { n: 1 },
        ])
        // Any command that opens the bench finishes the pull.
        const list = await tenancy(bench, ['tenant', 'list', '--json'])
        expect(list.exitCode, list.stderr).toBe(0)
        await pulledCorrectly(bench, name)
      }
      expect(await pendingRows(bench)).toEqual([])
      expect((await tenancy(bench, ['doctor'])).exitCode).toBe(0)
    })
  })
})

describe('pulls: the edges', () => {
  it('moves an API user named after the tenant ({tenant}) and refuses a target directory that exists', async () => {
    const bench = makeBench({ lightSites: true })
    setConfig(bench, (c) => (c.provision.api_user = 'api-{tenant}@example.com'))
    await tenancy(bench, ['pending-create', '--count', '2'])
    const r = await tenancy(bench, ['tenant', 'create', 'beta', '--json'])
    expect(r.exitCode, r.stderr).toBe(0)
    expect(r.json.mode).toBe('pulled')
    const db = join(bench, 'sites', 'beta.localhost', 'db.sqlite')
    expect(query(db, "select name from users where name like 'api-%'")).toEqual([{ name: 'api-beta@example.com' }])
    const { mkdirSync } = await import('node:fs')
    mkdirSync(join(bench, 'sites', 'gamma.localhost'))
    const before = await pendingRows(bench)
    const stray = await tenancy(bench, ['tenant', 'create', 'gamma'])
    expect(stray.exitCode).toBe(2)
    expect(stray.stderr).toMatch(/directory .*gamma.localhost exists but no site is registered/)
    expect(await pendingRows(bench)).toEqual(before)
    expect((await tenancy(bench, ['tenant', 'list', '--json'])).exitCode).toBe(0)
  })

  it('a pull never renames a pending site while migrate works on it', async () => {
    const bench = makeBench({ lightSites: true })
    await tenancy(bench, ['pending-create', '--count', '1'])
    const marker = join(bench, 'migrating')
    writeFileSync(
      join(bench, 'apps', 'shared_lib', 'migrations', '0009_slow.mjs'),
      `import { writeFileSync } from 'node:fs'\nexport async function up(db) {\n  writeFileSync(${JSON.stringify(marker)}, '')\n  await new Promise((r) => setTimeout(r, 1500))\n  await db.schema.createTable('slow_things').addColumn('id', 'integer').execute()\n}\n`,
    )
    const migrating = spawnTenancy(bench, ['migrate', '--with-pending', '--json'])
    for (let i = 0; i < 200 && !existsSync(marker); i++) await new Promise((r) => setTimeout(r, 25))
    const pull = await tenancy(bench, ['tenant', 'create', 'delta', '--json'])
    expect(pull.exitCode, pull.stderr).toBe(0)
    expect(pull.json.mode).toBe('provisioned')
    const m = await migrating
    expect(m.exitCode, String(m.stderr)).toBe(0)
    expect(JSON.parse(String(m.stdout)).sites[0]).toMatchObject({
      status: 'migrated',
      applied: ['shared_lib/0009_slow'],
    })
    const [pending] = await pendingRows(bench)
    expect(
      query(
        join(bench, 'sites', pending.site, 'db.sqlite'),
        "select count(*) as n from sqlite_master where name = 'slow_things'",
      ),
    ).toEqual([{ n: 1 }])
  })
})

describe('pulls: what the sign-up gets', () => {
  it('an up-to-date site (migrated at the pull), a notification for the real tenant only, its own name space', async () => {
    const bench = makeBench({ lightSites: true })
    const log = join(bench, 'notify.log')
    writeFileSync(
      join(bench, 'notify.mjs'),
      `import { appendFileSync } from 'node:fs'\nappendFileSync(${JSON.stringify(log)}, process.env.TENANCY_EVENT + ' ' + process.env.TENANCY_TENANT + '\\n')\n`,
    )
    setConfig(bench, (c) => (c.provision.notify = { run: 'node notify.mjs' }))
    await tenancy(bench, ['pending-create', '--count', '1'])
    writeFileSync(
      join(bench, 'apps', 'shared_lib', 'migrations', '0009_credit_notes.sql'),
      'CREATE TABLE credit_notes (id VARCHAR(32) PRIMARY KEY);\n',
    )
    // A deploy that leaves pending sites out, as include_in_queries=false does by default.
    expect((await tenancy(bench, ['migrate', '--json'])).json.sites).toEqual([])
    const r = await tenancy(bench, ['tenant', 'create', 'acme', '--json'])
    expect(r.json).toMatchObject({ mode: 'pulled', migrated: ['shared_lib/0009_credit_notes'] })
    const apps = await tenancy(bench, ['list-apps', '--site', 'acme.localhost', '--json'])
    expect(apps.json.apps.every((a: any) => a.pending_migrations.length === 0)).toBe(true)
    // The pool tenant is announced once, as the pool's (pending.created), then as the sign-up's.
    expect(readFileSync(log, 'utf8')).toMatch(
      /^pending\.created pending-[0-9a-f]+\ntenant\.pulled acme\ntenant\.active acme\n$/,
    )
    const reserved = await tenancy(bench, ['tenant', 'create', 'pending-mine'])
    expect(reserved.exitCode).toBe(2)
    expect(reserved.stderr).toMatch(/kept for the pending pool/)
  })
})
