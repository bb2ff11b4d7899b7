import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { makeBench, setConfig, sleep, spawnTenancy, tenancy } from './helpers.js'
import { enabled, registryRows, useRegistry } from './backends.js'

// SPEC §10: machines sharing one PostgreSQL registry. Each "machine" is a bench of its own
// (its own sites/ directory) with its own TENANCY_HOST, all pointing at one registry.

interface Machine {
  bench: string
  host: string
  env: Record<string, string>
  run: (args: string[], timeout?: number) => ReturnType<typeof tenancy>
  sites: () => string[]
}

/** `hosts.length` benches sharing one PostgreSQL registry and its secret key. */
async function machines<const H extends string[]>(...hosts: H): Promise<{ [K in keyof H]: Machine }> {
  const benches = hosts.map(() => makeBench({ lightSites: true }))
  await useRegistry(benches[0]!, 'postgres')
  const url = JSON.parse(readFileSync(join(benches[0]!, 'tenancy.config.json'), 'utf8')).registry
  const all = benches.map((bench, i) => {
    const env = { TENANCY_HOST: hosts[i]! }
    return {
      bench,
      host: hosts[i]!,
      env,
      run: (args: string[], timeout?: number) => tenancy(bench, args, { env, timeout }),
      sites: () => (existsSync(join(bench, 'sites')) ? readdirSync(join(bench, 'sites')).sort() : []),
    }
  })
  // A first command that opens the secret box makes the registry's tables and the bench's key; the others share both.
  expect((await all[0]!.run(['worker', '--once'])).exitCode).toBe(0)
  for (const m of all.slice(1)) {
    setConfig(m.bench, (c) => (c.registry = url))
    copyFileSync(join(benches[0]!, '.tenancy', 'secret.key'), join(m.bench, '.tenancy', 'secret.key'))
  }
  return all as { [K in keyof H]: Machine }
}

const rows = (m: Machine, text: string, ...params: (string | number)[]) => registryRows(m.bench, text, ...params)

/** Stops this machine's `tenant create --background` from starting a worker: its start lease is taken. */
async function holdWorkerStart(m: Machine): Promise<void> {
  const until = new Date(Date.now() + 300_000).toISOString()
  await rows(
    m,
    'insert into leases (name, owner, expires_at) values (?, ?, ?)',
    `worker-starting:${m.host}`,
    'test',
    until,
  )
}

describe.skipIf(!enabled('postgres'))('placing tenants on machines (one PostgreSQL registry)', () => {
  it('tenant create --host m2 on m1: queued for m2, nothing made on m1; only a worker of m2 takes it', async () => {
    const [m1, m2] = await machines('m1', 'm2')

    const queued = await m1.run(['tenant', 'create', 'acme', '--host', 'm2', '--json'])
    expect(queued.exitCode, queued.stderr).toBe(0)
    expect(queued.json).toMatchObject({
      name: 'acme',
      site: 'acme.localhost',
      mode: 'queued',
      provisioning_status: 'queued',
      host: 'm2',
      worker_live: false,
    })
    expect(queued.json.worker_started).toBeUndefined()
    expect(queued.stderr).toContain(
      'no worker is running on m2, so tenant acme waits queued: start "tenancy worker" on m2',
    )
    // Text mode says the same to a person.
    const text = await m1.run(['tenant', 'create', 'beta', '--host', 'm2'])
    expect(text.exitCode, text.stderr).toBe(0)
    expect(text.stdout).toContain('Queued tenant beta (site beta.localhost) for m2.')
    expect(text.stderr).toContain('no worker is running on m2')

    // Nothing was made here: no site, no row, no worker started; the jobs are m2's.
    expect(m1.sites()).toEqual([])
    expect(await rows(m1, 'select count(*) as n from sites')).toEqual([{ n: 0 }])
    expect(await rows(m1, "select count(*) as n from leases where name like 'worker%'")).toEqual([{ n: 0 }])
    expect(await rows(m1, 'select host, status, attempts from jobs order by id')).toEqual([
      { host: 'm2', status: 'queued', attempts: 0 },
      { host: 'm2', status: 'queued', attempts: 0 },
    ])
    expect((await m1.run(['tenant', 'show', 'acme', '--json'])).json).toMatchObject({ host: 'm2', status: 'inactive' })

    // m1 never provisions it: not by hand, not by its worker, not by doctor.
    const here = await m1.run(['provision', 'acme'])
    expect(here.exitCode).toBe(2)
    expect(here.stderr).toContain('tenant "acme" is placed on m2, not on this machine (m1)')
    const w1 = await m1.run(['worker', '--once', '--json'])
    expect(w1.exitCode, w1.stderr).toBe(0)
    expect(w1.json.jobs).toBe(0)
    const doctor = await m1.run(['doctor', '--fix', '--json'])
    expect(doctor.exitCode, doctor.stderr).toBe(0)
    expect(doctor.json.findings).toEqual([])
    expect(m1.sites()).toEqual([])
    expect(await rows(m1, 'select status, attempts from jobs order by id')).toEqual([
      { status: 'queued', attempts: 0 },
      { status: 'queued', attempts: 0 },
    ])

    // m2's worker provisions both there.
    const w2 = await m2.run(['worker', '--once', '--json'], 120_000)
    expect(w2.exitCode, w2.stderr).toBe(0)
    expect(w2.json).toMatchObject({ jobs: 2, done: 2 })
    expect(m2.sites()).toEqual(['acme.localhost', 'beta.localhost'])
    expect(m1.sites()).toEqual([])
    expect(await rows(m1, 'select name, host from sites order by name')).toEqual([
      { name: 'acme.localhost', host: 'm2' },
      { name: 'beta.localhost', host: 'm2' },
    ])
    expect((await m1.run(['tenant', 'show', 'acme', '--json'])).json).toMatchObject({ host: 'm2', status: 'active' })

    // With a worker running on m2, the command says so and the worker takes it at once.
    const worker = spawnTenancy(m2.bench, ['worker', '--json'], m2.env)
    try {
      for (let i = 0; i < 200; i++) {
        if ((await rows(m1, "select count(*) as n from leases where name like 'worker:m2:%'"))[0].n > 0) break
        await sleep(50)
      }
      const live = await m1.run(['tenant', 'create', 'gamma', '--host', 'm2', '--json'])
      expect(live.exitCode, live.stderr).toBe(0)
      expect(live.json).toMatchObject({ mode: 'queued', host: 'm2', worker_live: true })
      expect(live.stderr).not.toContain('no worker')
      for (let i = 0; i < 600; i++) {
        if ((await m1.run(['tenant', 'show', 'gamma', '--json'])).json.status === 'active') break
        await sleep(100)
      }
      expect(m2.sites()).toContain('gamma.localhost')
    } finally {
      worker.kill('SIGTERM')
      await worker
    }
    expect(m1.sites()).toEqual([])
  })

  it('an unplaced --background tenant goes to whichever worker claims it first and is homed there; --host of this machine keeps it here', async () => {
    const [m1, m2] = await machines('m1', 'm2')
    await holdWorkerStart(m1)

    const first = await m1.run(['tenant', 'create', 'u1', '--background', '--json'])
    expect(first.exitCode, first.stderr).toBe(0)
    expect(first.json).toMatchObject({ mode: 'queued', host: null, worker_started: false, any_machine: true })
    expect(await rows(m1, 'select host from jobs')).toEqual([{ host: null }])
    // Placed explicitly on this machine: a job for m1 only.
    const own = await m1.run(['tenant', 'create', 'own', '--host', 'm1', '--background', '--json'])
    expect(own.exitCode, own.stderr).toBe(0)
    expect(own.json).toMatchObject({ mode: 'queued', host: 'm1', worker_started: false })
    expect(own.json.any_machine).toBeUndefined()

    // m2's worker claims the unplaced one first: it becomes m2's; the one placed on m1 stays.
    const w2 = await m2.run(['worker', '--once', '--json'], 120_000)
    expect(w2.exitCode, w2.stderr).toBe(0)
    expect(w2.json).toMatchObject({ jobs: 1, done: 1 })
    expect(m2.sites()).toEqual(['u1.localhost'])
    expect(await rows(m1, "select host from sites where name = 'u1.localhost'")).toEqual([{ host: 'm2' }])
    expect(
      await rows(m1, "select j.host, j.status from jobs j join tenants t on t.id = j.tenant_id where t.name = 'own'"),
    ).toEqual([{ host: 'm1', status: 'queued' }])

    // The next unplaced one is claimed by m1's worker, which also takes its own.
    // Said so in words: m1's own worker is not the only one that may take it.
    const u2 = await m1.run(['tenant', 'create', 'u2', '--background'])
    expect(u2.exitCode, u2.stderr).toBe(0)
    expect(u2.stdout).toContain(
      'Queued tenant u2 (site u2.localhost) for the first worker of any machine sharing the registry ' +
        '(one is already running or starting on this machine, m1; --host m1 keeps a tenant here)',
    )
    const w1 = await m1.run(['worker', '--once', '--json'], 120_000)
    expect(w1.exitCode, w1.stderr).toBe(0)
    expect(w1.json).toMatchObject({ jobs: 2, done: 2 })
    expect(m1.sites()).toEqual(['own.localhost', 'u2.localhost'])
    expect(m2.sites()).toEqual(['u1.localhost'])
    expect(await rows(m1, 'select name, host from sites order by name')).toEqual([
      { name: 'own.localhost', host: 'm1' },
      { name: 'u1.localhost', host: 'm2' },
      { name: 'u2.localhost', host: 'm1' },
    ])
    for (const [tenant, host] of [
      ['u1', 'm2'],
      ['u2', 'm1'],
    ])
      expect((await m2.run(['tenant', 'show', tenant!, '--json'])).json.host).toBe(host)
  })

  it('each machine keeps its own pool; pending-create --host m2 on m1 queues for m2; sign-ups pull their own; pending-clear --host m2 clears only what is not made', async () => {
    const [m1, m2] = await machines('m1', 'm2')
    const pool = async (m: Machine) =>
      rows(
        m,
        'select s.host, count(*) as n from tenants t join sites s on s.name = t.site where t.pending_since is not null group by s.host order by s.host',
      )

    // m2's pool first, so m1's own is the younger: a sign-up on m1 still takes m1's.
    const two = await m2.run(['pending-create', '--count', '2', '--json'], 120_000)
    expect(two.exitCode, two.stderr).toBe(0)
    expect(two.json).toMatchObject({ host: 'm2', target: 2, pool: { ready: 2, provisioning: 0 } })
    expect(two.json.provisioned).toHaveLength(2)
    const one = await m1.run(['pending-create', '--count', '2', '--json'], 120_000)
    expect(one.exitCode, one.stderr).toBe(0)
    // m2's two do not count for m1.
    expect(one.json).toMatchObject({ host: 'm1', target: 2, pool: { ready: 2, provisioning: 0 } })
    expect(one.json.reserved).toHaveLength(2)
    expect(one.json.provisioned).toEqual(one.json.reserved)
    expect(await pool(m1)).toEqual([
      { host: 'm1', n: 2 },
      { host: 'm2', n: 2 },
    ])
    // Provisioned here, a reservation keeps no job (its site's row says where it lives).
    expect(await rows(m1, 'select count(*) as n from jobs')).toEqual([{ n: 0 }])
    for (const m of [m1, m2]) {
      const again = await m.run(['pending-create', '--count', '2', '--json'])
      expect(again.json).toMatchObject({ host: m.host, reserved: [], pool: { ready: 2 } })
    }

    // m1 fills m2's pool to 3: one reservation queued for m2's workers, nothing provisioned here.
    const m1Sites = m1.sites()
    const remote = await m1.run(['pending-create', '--host', 'm2', '--count', '3', '--json'])
    expect(remote.exitCode, remote.stderr).toBe(0)
    expect(remote.json).toMatchObject({
      host: 'm2',
      worker_live: false,
      target: 3,
      provisioned: [],
      failed: [],
      pool: { ready: 2, provisioning: 1 },
    })
    expect(remote.json.reserved).toHaveLength(1)
    expect(remote.stderr).toContain(
      `no worker is running on m2, so its pool's 1 reservation(s) waits queued: start "tenancy worker" on m2`,
    )
    expect(m1.sites()).toEqual(m1Sites)
    expect(await rows(m1, 'select host, status from jobs')).toEqual([{ host: 'm2', status: 'queued' }])
    // m1's pool is still full at 2, and m1's pending-create leaves m2's reservation alone.
    const mine = await m1.run(['pending-create', '--count', '2', '--json'])
    expect(mine.json).toMatchObject({ reserved: [], provisioned: [], pool: { ready: 2, provisioning: 0 } })
    expect(await rows(m1, 'select status, attempts from jobs')).toEqual([{ status: 'queued', attempts: 0 }])
    const w2 = await m2.run(['worker', '--once', '--json'], 120_000)
    expect(w2.json).toMatchObject({ jobs: 1, done: 1 })
    expect(await pool(m1)).toEqual([
      { host: 'm1', n: 2 },
      { host: 'm2', n: 3 },
    ])
    expect(m2.sites()).toContain(`${remote.json.reserved[0]}.localhost`)

    // A sign-up takes its own machine's pool tenant (the youngest here), never the older one of m2.
    const signUp = await m1.run(['tenant', 'create', 'acme', '--json'])
    expect(signUp.exitCode, signUp.stderr).toBe(0)
    expect(signUp.json).toMatchObject({ mode: 'pulled', host: 'm1' })
    expect(one.json.reserved.map((n: string) => `${n}.localhost`)).toContain(signUp.json.pulled_from)
    expect(m1.sites()).toContain('acme.localhost')
    // Placed on m2, a sign-up takes no pool tenant (m1's cannot move there, m2's cannot be renamed from here).
    const placed = await m1.run(['tenant', 'create', 'beta', '--host', 'm2', '--json'])
    expect(placed.json).toMatchObject({ mode: 'queued', host: 'm2' })
    expect(placed.json.pulled_from).toBeUndefined()
    expect(await pool(m1)).toEqual([
      { host: 'm1', n: 1 },
      { host: 'm2', n: 3 },
    ])

    // pending-clear --host m2 on m1: the reservation not made yet goes; the ready ones are m2's to drop.
    const queuedOne = (await m1.run(['pending-create', '--host', 'm2', '--count', '4', '--json'])).json.reserved
    expect(queuedOne).toHaveLength(1)
    const m2Sites = m2.sites()
    const clear = await m1.run(['pending-clear', '--host', 'm2', '--json'])
    expect(clear.exitCode).toBe(1)
    expect(clear.json).toMatchObject({ host: 'm2', cleared: queuedOne, skipped: [] })
    expect(clear.json.refused).toHaveLength(3)
    expect(clear.stderr).toContain('3 pending tenant(s) of m2 have their sites there')
    expect(clear.stderr).toContain('run "tenancy pending-clear" on m2')
    expect(m2.sites()).toEqual(m2Sites)
    expect(await rows(m1, 'select count(*) as n from tenants where name = ?', queuedOne[0])).toEqual([{ n: 0 }])
    // beta's job is left: it is no pool tenant.
    expect(await rows(m1, "select count(*) as n from jobs where status = 'queued'")).toEqual([{ n: 1 }])

    // pending-clear on m1 clears m1's pool only.
    const own = await m1.run(['pending-clear', '--json'])
    expect(own.exitCode, own.stderr).toBe(0)
    expect(own.json).toMatchObject({ host: 'm1', skipped: [], refused: [] })
    expect(own.json.cleared).toHaveLength(1)
    expect(await pool(m1)).toEqual([{ host: 'm2', n: 3 }])
    expect(m2.sites()).toEqual(m2Sites)
    // And m2's own clear drops its sites there.
    const theirs = await m2.run(['pending-clear', '--json'])
    expect(theirs.json.cleared).toHaveLength(3)
    expect(await pool(m1)).toEqual([])
    expect(m2.sites().filter((s) => s.startsWith('pending-'))).toEqual([])
  })

  it("a pending-create killed after reserving leaves its reservation to its own machine: not counted or taken by m2, finished by m1's worker once due", async () => {
    const [m1, m2] = await machines('m1', 'm2')
    const killed = await tenancy(m1.bench, ['pending-create', '--count', '1'], {
      env: { ...m1.env, TENANCY_FAULT: 'pending-after-reserve' },
    })
    expect(killed.exitCode).not.toBe(0)
    const [left] = await rows(
      m1,
      'select t.name, j.host, j.status, j.run_at from tenants t join jobs j on j.tenant_id = t.id',
    )
    expect(left).toMatchObject({ host: 'm1', status: 'queued' })
    // Due later: this run was to provision it, so a worker of m1 waits before taking it over.
    expect(Date.parse(left.run_at)).toBeGreaterThan(Date.now() + 500_000)

    const two = await m2.run(['pending-create', '--count', '1', '--json'], 120_000)
    expect(two.exitCode, two.stderr).toBe(0)
    expect(two.json.reserved).toHaveLength(1)
    expect(two.json.provisioned).toEqual(two.json.reserved)
    expect((await m2.run(['worker', '--once', '--json'])).json.jobs).toBe(0)
    expect(await rows(m1, 'select count(*) as n from sites where name = ?', `${left.name}.localhost`)).toEqual([
      { n: 0 },
    ])

    // Once due, m1's worker finishes it there.
    await rows(m1, 'update jobs set run_at = ?', new Date(Date.now() - 1000).toISOString())
    const w1 = await m1.run(['worker', '--once', '--json'], 120_000)
    expect(w1.json).toMatchObject({ jobs: 1, done: 1 })
    expect(m1.sites()).toEqual([`${left.name}.localhost`])
    expect(await rows(m1, 'select host from sites where name = ?', `${left.name}.localhost`)).toEqual([{ host: 'm1' }])
    const status = await m1.run(['pending-create', '--count', '1', '--json'])
    expect(status.json).toMatchObject({ reserved: [], pool: { ready: 1, provisioning: 0 } })
  })

  it("a failing tenant placed on m2 is failed by m2's worker and told; a failing pool reservation for m2 is not told", async () => {
    const [m1, m2] = await machines('m1', 'm2')
    for (const m of [m1, m2])
      setConfig(m.bench, (c) => {
        c.provision.steps = ['create-site', { name: 'broken', run: 'exit 3' }, 'activate']
        c.provision.max_attempts = 1
        c.provision.notify = { run: 'true' }
      })
    expect((await m1.run(['tenant', 'create', 'acme', '--host', 'm2'])).exitCode).toBe(0)
    expect((await m1.run(['pending-create', '--host', 'm2', '--count', '1'])).exitCode).toBe(0)
    // A directory in the way on m2: create-site itself fails there, so this tenant fails with no site.
    mkdirSync(join(m2.bench, 'sites', 'zed.localhost'), { recursive: true })
    expect((await m1.run(['tenant', 'create', 'zed', '--host', 'm2'])).exitCode).toBe(0)
    const w2 = await m2.run(['worker', '--once', '--json'], 120_000)
    expect(w2.exitCode, w2.stderr).toBe(0)
    expect(w2.json).toMatchObject({ jobs: 3, failed: 3 })
    expect(await rows(m1, 'select status from jobs')).toEqual([
      { status: 'failed' },
      { status: 'failed' },
      { status: 'failed' },
    ])
    expect(await rows(m1, "select count(*) as n from sites where name = 'zed.localhost'")).toEqual([{ n: 0 }])
    expect(
      await rows(
        m1,
        "select t.name from events e join tenants t on t.id = e.tenant_id where e.type = 'tenant.failed' order by t.name",
      ),
    ).toEqual([{ name: 'acme' }, { name: 'zed' }])
    // m1's doctor leaves m2's failed tenants to m2 (resuming them here would make their sites on m1).
    const doctor = await m1.run(['doctor', '--fix', '--json'])
    expect(doctor.json.findings).toEqual([])
    expect(m1.sites()).toEqual([])
    const kinds = (await m2.run(['doctor', '--json'])).json.findings.map((f: any) => [f.kind, f.subject])
    expect(kinds).toContainEqual(['failed_tenant', 'acme'])
    expect(kinds).toContainEqual(['failed_tenant', 'zed'])
  })

  it('bad --host values, another machine on an SQLite registry, and --host with auto-provisioning off are exit 2 and record nothing', async () => {
    const [m1] = await machines('m1')
    const commands = (host: string) => [
      ['tenant', 'create', 'acme', '--host', host],
      ['pending-create', '--count', '1', '--host', host],
      ['pending-clear', '--host', host],
    ]
    for (const host of ['', 'bad host', 'web/1', '-web', 'w'.repeat(65), 'web.']) {
      for (const args of commands(host)) {
        const r = await m1.run(args)
        expect(r.exitCode, `${args.join(' ')}: ${r.stderr}`).toBe(2)
        expect(r.stderr).toContain('invalid --host')
      }
    }
    setConfig(m1.bench, (c) => (c.auto_provision_tenant_sites = false))
    const manual = await m1.run(['tenant', 'create', 'acme', '--host', 'm2'])
    expect(manual.exitCode).toBe(2)
    expect(manual.stderr).toContain(
      'auto_provision_tenant_sites is off, so "tenant create" only records the tenant and nothing would provision it on m2',
    )
    expect(await rows(m1, 'select count(*) as n from tenants')).toEqual([{ n: 0 }])
    expect(await rows(m1, 'select count(*) as n from jobs')).toEqual([{ n: 0 }])

    const solo = makeBench({ lightSites: true })
    const env = { TENANCY_HOST: 'solo' }
    for (const args of commands('other')) {
      const r = await tenancy(solo, args, { env })
      expect(r.exitCode, args.join(' ')).toBe(2)
      expect(r.stderr).toContain(
        "--host other names another machine than this one (solo), but this bench's registry is SQLite",
      )
    }
    expect((await tenancy(solo, ['tenant', 'list', '--json'], { env })).json.tenants).toEqual([])
    // This machine's own name is fine on SQLite too.
    const here = await tenancy(solo, ['tenant', 'create', 'acme', '--host', 'solo', '--json'], { env })
    expect(here.exitCode, here.stderr).toBe(0)
    expect(here.json).toMatchObject({ mode: 'provisioned', status: 'active', host: 'solo' })
  })
})
