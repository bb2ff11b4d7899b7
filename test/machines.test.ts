import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { tenancy } from './helpers.js'
import { SITE_BACKENDS, asSite, registryRows } from './backends.js'
import {
  MACHINES,
  addMigration,
  killWorkers,
  ledger,
  sendFrom,
  startWorker,
  stopWorker,
  threeMachines,
} from './machines-helpers.js'

// SPEC §10: three "machines" on this host — three benches with their own sites, their own
// TENANCY_HOST, one PostgreSQL registry, a `tenancy worker` for each — and fleet commands run
// from any one of them reach every site on all three, through the machines' own workers.

const postgres = SITE_BACKENDS.find((b) => b.name === 'postgres')!

afterEach(killWorkers)

describe.skipIf(postgres.skip)('three machines on one PostgreSQL registry', () => {
  it(
    'migrate from one machine migrates every site on all three once; a stopped worker leaves its sites unreachable and untouched',
    { timeout: 120_000 },
    async () => {
      const fleet = await threeMachines()
      await startWorker(fleet, 'm2')
      const w3 = await startWorker(fleet, 'm3')
      addMigration(
        fleet,
        '0005_invoices.sql',
        'CREATE TABLE invoices (id INTEGER PRIMARY KEY, total INTEGER NOT NULL);\n',
      )

      const all = await tenancy(fleet.bench.m1, ['migrate', '--json'], { env: fleet.env('m1') })
      expect(all.exitCode, all.stderr).toBe(0)
      const everySite = MACHINES.flatMap((m) => fleet.sites[m])
      expect(all.json.sites.map((s: any) => [s.site, s.status, s.applied])).toEqual(
        everySite.map((s) => [s, 'migrated', ['shared_lib/0005_invoices']]),
      )
      expect(all.json).toMatchObject({ migrated: 6, failed: 0, unreachable: 0 })
      // Each on its own machine's disk, exactly once.
      for (const m of MACHINES)
        for (const site of fleet.sites[m]) expect(await ledger(fleet.bench[m], site)).toContain('0005_invoices')

      // m3's worker stops: its sites are reported unreachable (exit 1) and left as they are.
      await stopWorker(w3, 'SIGTERM')
      addMigration(fleet, '0006_credit_notes.sql', 'CREATE TABLE credit_notes (id INTEGER PRIMARY KEY);\n')
      const partial = await tenancy(fleet.bench.m1, ['migrate', '--json'], { env: fleet.env('m1') })
      expect(partial.exitCode).toBe(1)
      expect(partial.json, JSON.stringify(partial.json.sites)).toMatchObject({ migrated: 4, unreachable: 2 })
      for (const site of fleet.sites.m3) {
        const r = partial.json.sites.find((s: any) => s.site === site)
        expect(r.status).toBe('unreachable')
        expect(r.error).toContain('machine m3 has no live worker')
        expect(await ledger(fleet.bench.m3, site)).not.toContain('0006_credit_notes')
      }
      const text = await tenancy(fleet.bench.m1, ['migrate', '--dry-run'], { env: fleet.env('m1') })
      const printed = `${text.stdout}\n${text.stderr}`
      expect(printed).toContain('2 unreachable')
      expect(printed).toContain('unreachable: m3-s0.localhost, m3-s1.localhost: machine m3 has no live worker')

      // Back again: the next migrate finishes m3's sites, and the others are up to date.
      await startWorker(fleet, 'm3')
      const again = await tenancy(fleet.bench.m1, ['migrate', '--json'], { env: fleet.env('m1') })
      expect(again.exitCode, again.stderr).toBe(0)
      expect(again.json).toMatchObject({ migrated: 2, up_to_date: 4, unreachable: 0 })
      for (const site of fleet.sites.m3) expect(await ledger(fleet.bench.m3, site)).toContain('0006_credit_notes')

      // --local keeps to this machine's sites.
      const local = await tenancy(fleet.bench.m1, ['migrate', '--local', '--json'], { env: fleet.env('m1') })
      expect(local.json.sites.map((s: any) => s.site)).toEqual(fleet.sites.m1)
      // A site named with --local that lives elsewhere is not done: failed, exit 1.
      const named = await tenancy(fleet.bench.m1, ['migrate', '--local', '--site', fleet.sites.m2[0]!, '--json'], {
        env: fleet.env('m1'),
      })
      expect(named.exitCode).toBe(1)
      expect(named.json.sites[0]).toMatchObject({ status: 'failed', error: expect.stringContaining('lives on m2') })

      // Finished jobs are kept a week, then removed (with their results) when another is sent.
      const jobs = async () =>
        (await registryRows(fleet.bench.m1, 'select id from site_jobs order by id')).map((r) => r.id)
      const [oldest] = await jobs()
      await registryRows(
        fleet.bench.m1,
        'update site_jobs set finished_at = ? where id = ?',
        '2020-01-01T00:00:00.000Z',
        oldest,
      )
      expect((await tenancy(fleet.bench.m1, ['migrate', '--json'], { env: fleet.env('m1') })).exitCode).toBe(0)
      expect(await jobs()).not.toContain(oldest)
      expect(
        await registryRows(fleet.bench.m1, 'select count(*) as n from site_job_results where job_id = ?', oldest),
      ).toEqual([{ n: 0 }])
    },
  )

  it(
    'run, execute, backup and rollback from one machine reach every site on its own machine',
    { timeout: 120_000 },
    async () => {
      const fleet = await threeMachines()
      for (const m of MACHINES) await startWorker(fleet, m)
      const everySite = MACHINES.flatMap((m) => fleet.sites[m])
      const where = (site: string) => MACHINES.find((m) => fleet.sites[m].includes(site))!

      const run = await tenancy(
        fleet.bench.m3,
        ['run', '--site', 'all', '--json', '--', 'sh', '-c', 'echo "$TENANCY_SITE_PATH"; echo note >&2'],
        { env: fleet.env('m3') },
      )
      expect(run.exitCode, run.stderr).toBe(0)
      expect(run.json.sites.map((s: any) => [s.site, s.status, s.stdout, s.stderr])).toEqual(
        everySite.map((s) => [s, 'succeeded', `${join(fleet.bench[where(s)], 'sites', s)}\n`, 'note\n']),
      )
      // Off --json, another machine's lines come site-prefixed like this machine's.
      const lines = await tenancy(fleet.bench.m1, ['run', '--site', 'm2-s1.localhost', '--', 'echo', 'hi'], {
        env: fleet.env('m1'),
      })
      expect(lines.stdout).toBe('m2-s1.localhost: hi')
      // A failure on another machine stops that machine's run there too: the site it did not start
      // is reported skipped (not "finished without a result"), exit 1.
      const failing = await tenancy(
        fleet.bench.m1,
        [
          'run',
          '--site',
          'm2-s0.localhost',
          '--site',
          'm2-s1.localhost',
          '--json',
          '--shell',
          'test "$TENANCY_SITE" != m2-s0.localhost',
        ],
        { env: fleet.env('m1') },
      )
      expect(failing.exitCode).toBe(1)
      expect(failing.json.sites.map((s: any) => [s.site, s.status])).toEqual([
        ['m2-s0.localhost', 'failed'],
        ['m2-s1.localhost', 'skipped'],
      ])

      for (const m of MACHINES)
        writeFileSync(
          join(fleet.bench[m], 'count.mjs'),
          `export default async ({ db, site, args }) => ({ machine: ${JSON.stringify(m)}, site, n: args.n, tables: (await db.selectFrom('sqlite_master').select('name').where('type', '=', 'table').execute()).length })\n`,
        )
      const exec = await tenancy(
        fleet.bench.m1,
        ['execute', 'count.mjs', '--site', 'all', '--args', '{"n":7}', '--json'],
        {
          env: fleet.env('m1'),
        },
      )
      expect(exec.exitCode, exec.stderr).toBe(0)
      expect(exec.json.sites.map((s: any) => [s.site, s.result.machine, s.result.n])).toEqual(
        everySite.map((s) => [s, where(s), 7]),
      )

      const backup = await tenancy(fleet.bench.m2, ['backup', '--site', 'all', '--json'], { env: fleet.env('m2') })
      expect(backup.exitCode, backup.stderr).toBe(0)
      for (const r of backup.json.sites) {
        expect(r.status).toBe('backed_up')
        // Each machine backs its sites up on its own disk.
        expect(r.path.startsWith(join(fleet.bench[where(r.site)], 'backups', r.site))).toBe(true)
        expect(existsSync(join(r.path, 'manifest.json'))).toBe(true)
      }

      const rollback = await tenancy(fleet.bench.m1, ['rollback', '--site', 'all', '--app', 'shared_lib', '--json'], {
        env: fleet.env('m1'),
      })
      expect(rollback.exitCode, rollback.stderr).toBe(0)
      expect(rollback.json.rolled_back).toBe(6)
      for (const site of everySite)
        expect(await ledger(fleet.bench[where(site)], site)).not.toContain('0004_notifications')
    },
  )

  it(
    'kill -9 of a worker mid-job: its restart takes the job over, never another machine',
    { timeout: 120_000 },
    async () => {
      const fleet = await threeMachines(3)
      const w2 = await startWorker(fleet, 'm2')
      await startWorker(fleet, 'm3')
      // Each site's command writes where it ran, then takes a while.
      const script = 'echo "$TENANCY_SITE $TENANCY_BENCH_PATH" >> "$RAN_LOG"; sleep 0.6'
      const log = join(fleet.bench.m1, 'ran.log')
      const sender = sendFrom(fleet, 'm1', [
        'run',
        '--site',
        'm2-s0.localhost',
        '--site',
        'm2-s1.localhost',
        '--site',
        'm2-s2.localhost',
        '--json',
        '--shell',
        `RAN_LOG=${log}; ${script}`,
      ])
      // Kill m2's worker once its first site has run.
      for (let i = 0; i < 200 && !(existsSync(log) && readFileSync(log, 'utf8').includes('m2-s0')); i++)
        await new Promise((r) => setTimeout(r, 25))
      await stopWorker(w2, 'SIGKILL')
      appendFileSync(log, 'killed\n')
      await startWorker(fleet, 'm2')
      const r = await sender
      expect(r.exitCode, r.stderr).toBe(0)
      const result = JSON.parse(r.stdout)
      expect(result.sites.map((s: any) => [s.site, s.status])).toEqual(fleet.sites.m2.map((s) => [s, 'succeeded']))
      const ran = readFileSync(log, 'utf8').trim().split('\n')
      // Every run was on m2's bench; after the kill, the restart finished the sites without a result.
      for (const line of ran.filter((l) => l !== 'killed')) expect(line.endsWith(` ${fleet.bench.m2}`)).toBe(true)
      const after = ran.slice(ran.indexOf('killed') + 1).map((l) => l.split(' ')[0])
      expect(after.length).toBeGreaterThan(0)
      expect(new Set(ran.filter((l) => l !== 'killed').map((l) => l.split(' ')[0]))).toEqual(new Set(fleet.sites.m2))
      const jobs = await registryRows(fleet.bench.m1, "select host, status from site_jobs where command = 'run'")
      expect(jobs).toEqual([{ host: 'm2', status: 'done' }])
    },
  )

  it(
    'Ctrl-C of the sending command calls the job off: the machine starts no further site',
    { timeout: 120_000 },
    async () => {
      const fleet = await threeMachines(3)
      await startWorker(fleet, 'm2')
      const log = join(fleet.bench.m1, 'ran.log')
      const sender = sendFrom(fleet, 'm1', [
        'run',
        '--site',
        'all',
        '--skip-site',
        'm1-s0.localhost',
        '--skip-site',
        'm1-s1.localhost',
        '--skip-site',
        'm1-s2.localhost',
        '--skip-site',
        'm3-s0.localhost',
        '--skip-site',
        'm3-s1.localhost',
        '--skip-site',
        'm3-s2.localhost',
        '--json',
        '--shell',
        `echo "$TENANCY_SITE" >> ${log}; sleep 0.8`,
      ])
      for (let i = 0; i < 200 && !existsSync(log); i++) await new Promise((r) => setTimeout(r, 25))
      sender.kill('SIGINT')
      const r = await sender
      expect(r.exitCode).toBe(130)
      const statuses = JSON.parse(r.stdout).sites.map((s: any) => s.status)
      expect(statuses).toContain('interrupted')
      await new Promise((resolve) => setTimeout(resolve, 1500))
      // The site under way when Ctrl-C came finished; no other was started after it.
      expect(readFileSync(log, 'utf8').trim().split('\n').length).toBeLessThan(3)
      expect(await registryRows(fleet.bench.m1, 'select status from site_jobs')).toEqual([{ status: 'cancelled' }])
    },
  )
})

describe.skipIf(postgres.skip)('a pull from another machine’s pool', () => {
  it(
    'takes this machine’s pool first, then a machine with a live worker, whose worker finishes it there',
    { timeout: 120_000 },
    async () => {
      const fleet = await threeMachines(0)
      const made = await tenancy(fleet.bench.m2, ['pending-create', '--count', '1', '--json'], { env: fleet.env('m2') })
      expect(made.exitCode, made.stderr).toBe(0)
      const [placeholder] = (
        await registryRows(fleet.bench.m1, 'select site from tenants where pending_since is not null')
      ).map((r) => r.site as string)
      // m2's worker is not running: m1 does not take m2's tenant, it provisions one of its own.
      const own = await tenancy(fleet.bench.m1, ['tenant', 'create', 'early', '--json'], { env: fleet.env('m1') })
      expect(own.exitCode, own.stderr).toBe(0)
      expect(own.json.pulled_from).toBeUndefined()
      expect(own.json.host).toBe('m1')

      await startWorker(fleet, 'm2')
      const pulled = await tenancy(fleet.bench.m1, ['tenant', 'create', 'acme', '--json'], { env: fleet.env('m1') })
      expect(pulled.exitCode, pulled.stderr).toBe(0)
      expect(pulled.json).toMatchObject({
        name: 'acme',
        site: 'acme.localhost',
        status: 'active',
        pulled_from: placeholder,
      })
      // The site stays where it lives: renamed on m2's disk, nothing made on m1's.
      expect(existsSync(join(fleet.bench.m2, 'sites', 'acme.localhost', 'site_config.json'))).toBe(true)
      expect(existsSync(join(fleet.bench.m2, 'sites', placeholder!))).toBe(false)
      expect(existsSync(join(fleet.bench.m1, 'sites', 'acme.localhost'))).toBe(false)
      expect(
        await registryRows(fleet.bench.m1, "select host, state, rename_from from sites where name = 'acme.localhost'"),
      ).toEqual([{ host: 'm2', state: 'ready', rename_from: null }])
      // Its API user followed the name (on m2), and m2 verifies the key the sign-up got.
      const users = await asSite(fleet.bench.m2, 'acme.localhost', "select email from users where email like 'api@%'")
      expect(users.rows).toEqual([{ email: 'api@acme.localhost' }])
      const show = await tenancy(fleet.bench.m2, ['tenant', 'show', 'acme', '--json'], { env: fleet.env('m2') })
      expect(show.json).toMatchObject({ host: 'm2', provisioning_status: 'completed' })
    },
  )
})
