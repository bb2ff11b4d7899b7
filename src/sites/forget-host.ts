import type { Kysely } from 'kysely'
import type { Bench } from '../bench.js'
import { usageError } from '../errors.js'
import { assertHostName } from '../names.js'
import { liveWorkerHosts, workerLeaseHost, workerLeasePattern, workerStartingLeaseName } from '../registry/hosts.js'
import { LEASE_MS } from '../registry/leases.js'
import { now } from '../registry/registry.js'
import type { RegistrySchema, SiteState } from '../registry/schema.js'

/** The states in which a site still has a database and files somewhere: its machine cannot be forgotten. */
const LIVE_STATES: SiteState[] = ['ready', 'creating', 'renaming', 'dropping']

/** `tenancy host forget --json`. */
export interface ForgetHostResult {
  host: string
  /** Its workers' heartbeat leases and its "worker starting" lease, removed. */
  leases_removed: string[]
  /** Fleet work sent to it that it will never run: now `cancelled`, so the senders stop waiting. */
  site_jobs_cancelled: number[]
  /**
   * Provisioning jobs placed on it (`tenant create --host`, a pool reservation, or claimed there)
   * and not finished: placed on no machine now, so the first machine whose worker claims one
   * provisions the tenant and homes its site there. (Finished jobs lose their placement too, so
   * their tenants belong to no machine and `provision` runs on any.)
   */
  jobs_unplaced: { id: number; tenant: string }[]
  /**
   * Rows of sites whose creation failed on it, removed. Their databases were on that machine
   * (or on a server it used, where they are left: drop them there by hand if it still runs).
   */
  sites_removed: { site: string; db_type: string; db_name: string; db_host: string | null }[]
}

/**
 * `tenancy host forget H` (SPEC §10): removes from a shared registry a machine that is gone for
 * good. Refused (exit 2) on an SQLite registry, for this machine's own name, while H has a live
 * worker, and while the registry homes a live site on H (move those first with
 * `restore SITE SET --rehome` on another machine). Everything is checked and changed in one
 * registry transaction under the write lock, so no worker of H can register, nor a site be homed
 * on it, between the checks and the changes.
 */
export async function forgetHost(
  bench: Bench,
  name: string,
  options: { confirm?: (preview: ForgetHostPreview) => Promise<void> } = {},
): Promise<ForgetHostResult> {
  const host = assertHostName(name, 'machine name')
  const registry = await bench.registry()
  if (registry.kind === 'sqlite')
    throw usageError(
      `this registry is SQLite, which belongs to one machine only: there is no other machine to forget ` +
        `("host forget" is for a registry on PostgreSQL shared by several machines)`,
    )
  if (host === bench.host)
    throw usageError(
      `"${host}" is this machine (TENANCY_HOST, "host" in the config, or the hostname); ` +
        `a machine cannot forget itself: run "tenancy host forget ${host}" on another machine`,
    )
  // Asked after the checks (a refusal never waits on a question), outside the write lock.
  if (options.confirm) {
    await assertForgettable(registry.db, host)
    await options.confirm(await previewOf(registry.db, host))
  }
  return registry.writeTransaction(async (trx) => {
    await assertForgettable(trx, host)
    return forgetIn(trx, host)
  })
}

/** What forgetting a machine would change, for the question asked first. */
export interface ForgetHostPreview {
  host: string
  site_jobs: number
  jobs: number
  failed_sites: number
}

async function previewOf(db: Kysely<RegistrySchema>, host: string): Promise<ForgetHostPreview> {
  const [siteJobs, jobs, sites] = await Promise.all([
    db
      .selectFrom('site_jobs')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('host', '=', host)
      .where('status', 'in', ['queued', 'running'])
      .executeTakeFirst(),
    db
      .selectFrom('jobs')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('host', '=', host)
      .where('status', 'in', PLACED_STATUSES)
      .executeTakeFirst(),
    db
      .selectFrom('sites')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('host', '=', host)
      .where('state', '=', 'failed')
      .executeTakeFirst(),
  ])
  return {
    host,
    site_jobs: Number(siteJobs?.n ?? 0),
    jobs: Number(jobs?.n ?? 0),
    failed_sites: Number(sites?.n ?? 0),
  }
}

/** A provisioning job that is still to run (or running) is "placed" on its machine. */
const PLACED_STATUSES = ['queued', 'retry', 'running']

/** The refusals that depend on the registry's rows: a live worker on `host`, a live site homed on it, an unknown name. */
async function assertForgettable(db: Kysely<RegistrySchema>, host: string): Promise<void> {
  if ((await liveWorkerHosts(db, host)).has(host))
    throw usageError(
      `machine "${host}" is live: a "tenancy worker" there renews its lease; stop it first ` +
        `(a worker that died is seen as gone once its lease expires, within ${LEASE_MS / 1000} s), ` +
        `then run "tenancy host forget ${host}" again`,
    )
  const live = await db
    .selectFrom('sites')
    .select('name')
    .where('host', '=', host)
    .where('state', 'in', LIVE_STATES)
    .orderBy('name')
    .execute()
  if (live.length > 0) {
    const some = live.slice(0, 3).map((s) => s.name)
    throw usageError(
      `machine "${host}" still homes ${live.length} live site(s) (${some.join(', ')}${live.length > 3 ? ', …' : ''}); ` +
        `see them with "tenancy list-sites --host ${host}", move each to this machine from its latest backup ` +
        `with "tenancy restore SITE SET --rehome", then run "tenancy host forget ${host}" again`,
    )
  }
  if (!(await namesHost(db, host)))
    throw usageError(
      `no site, job or worker in the registry names machine "${host}"; check the name ` +
        `(the machines are in the HOST column of "tenancy list-sites")`,
    )
}

/** Whether anything in the registry names `host`: a guard against forgetting a misspelt name. */
async function namesHost(trx: Kysely<RegistrySchema>, host: string): Promise<boolean> {
  const found = await Promise.all([
    trx.selectFrom('sites').select('name').where('host', '=', host).limit(1).executeTakeFirst(),
    trx.selectFrom('jobs').select('id').where('host', '=', host).limit(1).executeTakeFirst(),
    trx.selectFrom('site_jobs').select('id').where('host', '=', host).limit(1).executeTakeFirst(),
  ])
  return found.some((row) => row !== undefined) || (await leasesOf(trx, host)).length > 0
}

/** The names of `host`'s worker leases (live or not) and of its starting lease. */
async function leasesOf(trx: Kysely<RegistrySchema>, host: string): Promise<string[]> {
  const starting = workerStartingLeaseName(host)
  const rows = await trx
    .selectFrom('leases')
    .select('name')
    .where((eb) => eb.or([eb('name', 'like', workerLeasePattern(host)), eb('name', '=', starting)]))
    .execute()
  // `_` in a machine's name is a `like` wildcard: only the leases that name this very machine.
  return rows.map((r) => r.name).filter((n) => n === starting || workerLeaseHost(n) === host)
}

async function forgetIn(trx: Kysely<RegistrySchema>, host: string): Promise<ForgetHostResult> {
  const at = now()
  const leases = await leasesOf(trx, host)
  if (leases.length > 0) await trx.deleteFrom('leases').where('name', 'in', leases).execute()

  const siteJobs = await trx
    .updateTable('site_jobs')
    .set({
      status: 'cancelled',
      error: `machine ${host} was forgotten`,
      lease_owner: null,
      lease_expires_at: null,
      finished_at: at,
      updated_at: at,
    })
    .where('host', '=', host)
    .where('status', 'in', ['queued', 'running'])
    .returning('id')
    .execute()

  const placed = await trx
    .selectFrom('jobs')
    .innerJoin('tenants', 'tenants.id', 'jobs.tenant_id')
    .select(['jobs.id', 'tenants.name as tenant'])
    .where('jobs.host', '=', host)
    .where('jobs.status', 'in', PLACED_STATUSES)
    .orderBy('jobs.id')
    .execute()
  // Every job of the machine, finished ones too: a tenant belongs to the machine its newest
  // placed job names until its site exists (registry/placement.ts), so one whose provisioning
  // failed there would stay the forgotten machine's, and `provision` refused everywhere. A
  // running one keeps its status: its lease, no longer renewed, expires and any machine takes it over.
  await trx.updateTable('jobs').set({ host: null, updated_at: at }).where('host', '=', host).execute()

  const failed = await trx
    .selectFrom('sites')
    .select(['name', 'db_type', 'db_name', 'db_host'])
    .where('host', '=', host)
    .where('state', '=', 'failed')
    .orderBy('name')
    .execute()
  if (failed.length > 0) await trx.deleteFrom('sites').where('host', '=', host).where('state', '=', 'failed').execute()

  return {
    host,
    leases_removed: leases,
    site_jobs_cancelled: siteJobs.map((j) => j.id),
    jobs_unplaced: placed.map((j) => ({ id: j.id, tenant: j.tenant })),
    sites_removed: failed.map((s) => ({ site: s.name, db_type: s.db_type, db_name: s.db_name, db_host: s.db_host })),
  }
}
