import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { tenancy } from './helpers.js'
import { SITE_BACKENDS, registryRows } from './backends.js'
import { HAVE_PG, privatePostgres, until, type PrivateServer } from './private-servers.js'
import { killWorkers, machines, sendFrom, startWorker, stopWorker, threeMachines } from './machines-helpers.js'

// SPEC §10 under faults: the sending command killed, the registry's server going away, a
// worker stopped mid-job, two senders at once, odd machine names, and what the registry keeps.

const postgres = SITE_BACKENDS.find((b) => b.name === 'postgres')!

afterEach(killWorkers)

const lines = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n') : [])
const siteFlags = (sites: string[]) => sites.flatMap((s) => ['--site', s])

describe.skipIf(postgres.skip)('the command that sent site jobs goes away', () => {
  it(
    'kill -9 of the sender: its job stops after the current site, the next command runs every site, doctor is clean there',
    { timeout: 60_000 },
    async () => {
      const fleet = await threeMachines(3)
      await startWorker(fleet, 'm2')
      const log = join(fleet.bench.m1, 'ran.log')
      const sites = siteFlags(fleet.sites.m2)
      // Its own process group, killed whole as a terminal's kill -9 would not be caught.
      const sender = sendFrom(
        fleet,
        'm1',
        ['run', ...sites, '--json', '--shell', `echo "$TENANCY_SITE" >> ${log}; sleep 1`],
        {
          detached: true,
        },
      )
      await until('the first site', async () => existsSync(log))
      process.kill(-sender.pid!, 'SIGKILL')
      await sender
      await until(
        'the job called off',
        async () => (await registryRows(fleet.bench.m1, 'select status from site_jobs'))[0].status === 'cancelled',
      )
      const [job] = await registryRows(fleet.bench.m1, 'select status, error, lease_owner from site_jobs')
      expect(job).toEqual({
        status: 'cancelled',
        error: 'called off: the command that sent it is gone (killed, or cut off from the registry)',
        lease_owner: null,
      })
      await new Promise((r) => setTimeout(r, 1200))
      // Only the site under way when the sender died ran.
      expect(lines(log)).toEqual([fleet.sites.m2[0]])

      const again = await tenancy(fleet.bench.m1, ['run', ...sites, '--json', '--', 'true'], { env: fleet.env('m1') })
      expect(again.exitCode, again.stderr).toBe(0)
      expect(again.json.succeeded).toBe(3)
      const doctor = await tenancy(fleet.bench.m2, ['doctor', '--json'], { env: fleet.env('m2') })
      expect(doctor.exitCode, doctor.stdout).toBe(0)
      expect(doctor.json.findings).toEqual([])
      // The senders' registrations are gone with them (the killed one's is cleared by the next).
      expect(await registryRows(fleet.bench.m1, "select name from leases where name like 'site-sender:%'")).toEqual([])
    },
  )

  it(
    'a sender on another host whose registration ran out: its queued job is called off untouched, its running job after the current site',
    { timeout: 60_000 },
    async () => {
      const fleet = await machines(3, ['m1', 'm2'])
      const log = join(fleet.bench.m1, 'ran.log')
      const at = (ms: number) => new Date(Date.now() + ms).toISOString()
      const send = (sender: string) =>
        registryRows(
          fleet.bench.m1,
          `insert into site_jobs (host, command, payload, sites, status, requested_by, created_at, updated_at)
           values ('m2', 'run', ?, ?, 'queued', ?, ?, ?) returning id`,
          JSON.stringify({ command: ['sh', '-c', `echo "$TENANCY_SITE" >> ${log}; sleep 0.5`], timeoutSeconds: 60 }),
          JSON.stringify(fleet.sites.m2),
          sender,
          at(0),
          at(0),
        )
      // One sender whose registration ran out before the job was taken, one still there.
      await registryRows(
        fleet.bench.m1,
        "insert into leases (name, owner, expires_at) values ('site-sender:1@elsewhere#gone', '1@elsewhere#gone', ?), ('site-sender:2@elsewhere#here', '2@elsewhere#here', ?)",
        at(-1000),
        at(30_000),
      )
      const [gone] = await send('1@elsewhere#gone')
      const [here] = await send('2@elsewhere#here')
      await startWorker(fleet, 'm2')
      await until('the first site', async () => lines(log).length > 0)
      // The live one's registration runs out while its first site runs.
      await registryRows(
        fleet.bench.m1,
        "update leases set expires_at = ? where name = 'site-sender:2@elsewhere#here'",
        at(-1),
      )
      await until('the job called off', async () =>
        (await registryRows(fleet.bench.m1, 'select status from site_jobs')).every((j) => j.status === 'cancelled'),
      )
      const results = await registryRows(fleet.bench.m1, 'select job_id, site from site_job_results order by seq')
      expect(results.every((r) => r.job_id === here.id)).toBe(true)
      expect(lines(log).length).toBeLessThan(3)
      expect(results.length).toBeLessThan(3)
      expect(gone.id).not.toBe(here.id)
    },
  )
  it(
    'kill -9 of a pull waiting on the machine the tenant lives on: that machine still finishes the pull it claimed',
    { timeout: 60_000 },
    async () => {
      const fleet = await threeMachines(1)
      const made = await tenancy(fleet.bench.m2, ['pending-create', '--count', '1', '--json'], { env: fleet.env('m2') })
      expect(made.exitCode, made.stderr).toBe(0)
      await startWorker(fleet, 'm2')
      // m2's only lane is busy with another machine's command, so the pull's job waits in the queue.
      const log = join(fleet.bench.m1, 'ran.log')
      const busy = sendFrom(fleet, 'm3', ['run', '--site', fleet.sites.m2[0]!, '--shell', `echo x >> ${log}; sleep 2`])
      await until('m2 busy', async () => existsSync(log))
      const pull = sendFrom(fleet, 'm1', ['tenant', 'create', 'acme', '--json'], { detached: true })
      await until(
        'the pull sent',
        async () => (await registryRows(fleet.bench.m1, "select id from site_jobs where command = 'pull'")).length > 0,
      )
      process.kill(-pull.pid!, 'SIGKILL')
      await pull
      expect((await busy).exitCode).toBe(0)
      await until(
        'the pull finished on m2',
        async () =>
          (await registryRows(fleet.bench.m1, "select status from site_jobs where command = 'pull'"))[0].status ===
          'done',
      )
      expect(
        await registryRows(fleet.bench.m1, "select host, state, rename_from from sites where name = 'acme.localhost'"),
      ).toEqual([{ host: 'm2', state: 'ready', rename_from: null }])
      expect(existsSync(join(fleet.bench.m2, 'sites', 'acme.localhost', 'site_config.json'))).toBe(true)
      const show = await tenancy(fleet.bench.m2, ['tenant', 'show', 'acme', '--json'], { env: fleet.env('m2') })
      expect(show.json).toMatchObject({ host: 'm2', status: 'active' })
    },
  )
})

const ownServers: PrivateServer[] = []
afterAll(async () => {
  for (const server of ownServers.splice(0)) await server.remove()
})

/** A PostgreSQL server of this test's own (never the shared one), to stop and start again. */
async function ownPostgres(): Promise<PrivateServer & { url: string }> {
  const server = await privatePostgres()
  ownServers.push(server)
  return Object.assign(server, { url: `postgres://postgres@127.0.0.1:${server.port}/postgres` })
}

describe.skipIf(postgres.skip || !HAVE_PG)('the registry’s server goes away', () => {
  it(
    'mid-wait and mid-job: the sender fails in one line (exit 1), the worker waits for the server and carries on when it is back',
    { timeout: 60_000 },
    async () => {
      const server = await ownPostgres()
      const fleet = await machines(3, ['m1', 'm2'], server.url)
      const worker = await startWorker(fleet, 'm2', {
        registered: async () =>
          (await server.query("select name from leases where name like 'worker:m2:%'")).length > 0,
      })
      const log = join(fleet.bench.m1, 'ran.log')
      const sites = siteFlags(fleet.sites.m2)
      const sender = sendFrom(fleet, 'm1', ['run', ...sites, '--shell', `echo "$TENANCY_SITE" >> ${log}; sleep 1`])
      await until('the first site', async () => existsSync(log))
      await server.kill()
      const sent = await sender
      expect(sent.exitCode).toBe(1)
      const message = sent.stderr.trim()
      expect(message.split('\n')).toHaveLength(1)
      expect(message).toMatch(
        /^error: the registry postgres:\/\/postgres@127\.0\.0\.1:\d+\/postgres (stopped accepting connections|closed the connection).*; check that it is running$/,
      )
      // The worker does not crash while the server is away.
      await new Promise((r) => setTimeout(r, 2500))
      expect(worker.worker.exitCode).toBeNull()
      await server.start()
      // Back, it records what it did and sees that its sender is gone.
      await until(
        'the job called off',
        async () => (await server.query('select status from site_jobs'))[0]?.status === 'cancelled',
      )
      const again = await tenancy(fleet.bench.m1, ['run', ...sites, '--json', '--', 'true'], { env: fleet.env('m1') })
      expect(again.exitCode, again.stderr).toBe(0)
      expect(again.json.succeeded).toBe(3)
      process.kill(worker.worker.pid!, 'SIGTERM')
      const stopped = await worker.worker
      expect(stopped.stderr).not.toContain('Error')
    },
  )
})

describe.skipIf(postgres.skip)('a machine’s worker stopped and started again', () => {
  it(
    'SIGTERM of a worker running two jobs (concurrency 2): both go back to the queue, the next worker finishes them without re-running a finished site',
    { timeout: 60_000 },
    async () => {
      const fleet = await threeMachines(3)
      const first = await startWorker(fleet, 'm2', { args: ['--concurrency', '2'] })
      const log = join(fleet.bench.m1, 'ran.log')
      const sites = siteFlags(fleet.sites.m2)
      const script = (who: string) =>
        `echo "$TENANCY_SITE ${who} start" >> ${log}; sleep 0.6; echo "$TENANCY_SITE ${who} end" >> ${log}`
      const a = sendFrom(fleet, 'm1', ['run', ...sites, '--json', '--shell', script('A')])
      const b = sendFrom(fleet, 'm3', ['run', ...sites, '--json', '--shell', script('B')])
      // Stopped once both jobs have a finished site.
      await until('a result of each job', async () => {
        const jobs = await registryRows(fleet.bench.m1, 'select distinct job_id from site_job_results')
        return jobs.length === 2
      })
      const running = await registryRows(fleet.bench.m1, 'select status, lease_owner from site_jobs order by id')
      expect(running.map((j) => j.status)).toEqual(['running', 'running'])
      expect(running[0].lease_owner).not.toBe(running[1].lease_owner)
      await stopWorker(first, 'SIGTERM')
      expect(await registryRows(fleet.bench.m1, 'select status, lease_owner from site_jobs')).toEqual([
        { status: 'queued', lease_owner: null },
        { status: 'queued', lease_owner: null },
      ])
      const finished = await registryRows(fleet.bench.m1, 'select site from site_job_results')
      // A restart takes a moment: the senders look at their jobs meanwhile and keep waiting.
      await new Promise((r) => setTimeout(r, 2500))
      await startWorker(fleet, 'm2', { args: ['--concurrency', '2'] })
      for (const sent of await Promise.all([a, b])) {
        expect(sent.exitCode, sent.stderr).toBe(0)
        expect(JSON.parse(sent.stdout).succeeded).toBe(3)
      }
      const ran = lines(log)
      for (const who of ['A', 'B'])
        for (const site of fleet.sites.m2) {
          // Each site ran to its end once for each sender; a site with a result was not started again.
          expect(ran.filter((l) => l === `${site} ${who} end`)).toHaveLength(1)
          if (finished.some((f) => f.site === site))
            expect(ran.filter((l) => l === `${site} ${who} start`).length).toBeLessThanOrEqual(2)
        }
      expect(ran.filter((l) => l === `${fleet.sites.m2[0]} A start`)).toHaveLength(1)
      expect(ran.filter((l) => l === `${fleet.sites.m2[0]} B start`)).toHaveLength(1)
      expect(await registryRows(fleet.bench.m1, 'select status from site_jobs')).toEqual([
        { status: 'done' },
        { status: 'done' },
      ])
    },
  )
})

describe.skipIf(postgres.skip)('machines named with dots, underscores and capitals', () => {
  it(
    'each is reached by its own name: another machine whose name the `_` matches stands in for none',
    { timeout: 60_000 },
    async () => {
      const fleet = await machines(1, ['m1', 'Web_1.Prod', 'WebX1.Prod'])
      await startWorker(fleet, 'WebX1.Prod')
      const across = async () =>
        (await tenancy(fleet.bench.m1, ['run', '--site', 'all', '--json', '--', 'true'], { env: fleet.env('m1') })).json
      const before = await across()
      expect(before.sites.map((s: any) => [s.site, s.status])).toEqual([
        ['m1-s0.localhost', 'succeeded'],
        ['web-1-prod-s0.localhost', 'unreachable'],
        ['webx1-prod-s0.localhost', 'succeeded'],
      ])
      // A background tenant on Web_1.Prod starts that machine's worker: WebX1.Prod's is not its.
      const made = await tenancy(fleet.bench['Web_1.Prod'], ['tenant', 'create', 'acme', '--background', '--json'], {
        env: fleet.env('Web_1.Prod'),
      })
      expect(made.exitCode, made.stderr).toBe(0)
      expect(made.json.worker_started).toBe(true)
      await until('acme provisioned', async () => {
        const [t] = await registryRows(fleet.bench.m1, "select status from tenants where name = 'acme'")
        return t?.status === 'active'
      })
      await startWorker(fleet, 'Web_1.Prod')
      const after = await across()
      expect(after.sites.map((s: any) => s.status)).toEqual(['succeeded', 'succeeded', 'succeeded', 'succeeded'])
    },
  )
})

describe.skipIf(postgres.skip)('doctor and another machine’s job whose worker is gone', () => {
  it(
    'is that machine’s doctor’s to judge: m1 neither reports nor re-queues m2’s job; m2 does',
    { timeout: 60_000 },
    async () => {
      const fleet = await machines(0, ['m1', 'm2'])
      const queued = await tenancy(fleet.bench.m1, ['tenant', 'create', 'bg', '--host', 'm2', '--json'], {
        env: fleet.env('m1'),
      })
      expect(queued.exitCode, queued.stderr).toBe(0)
      // As a worker of m2 that died mid-job leaves it: running, its lease long expired.
      await registryRows(
        fleet.bench.m1,
        "update jobs set status = 'running', lease_owner = '999999@m2-box#dead', lease_expires_at = '2000-01-01T00:00:00.000Z'",
      )
      const lost = (r: { json: any }) => r.json.findings.filter((f: any) => f.kind === 'lost_job')
      const here = await tenancy(fleet.bench.m1, ['doctor', '--fix', '--json'], { env: fleet.env('m1') })
      expect(lost(here)).toEqual([])
      expect(await registryRows(fleet.bench.m1, 'select status from jobs')).toEqual([{ status: 'running' }])
      const there = await tenancy(fleet.bench.m2, ['doctor', '--json'], { env: fleet.env('m2') })
      expect(lost(there)).toMatchObject([{ kind: 'lost_job', fix: 'queue it again' }])
    },
  )
})
