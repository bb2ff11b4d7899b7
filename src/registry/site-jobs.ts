import type { Kysely, Selectable } from 'kysely'
import { claimOneRow } from './claim-row.js'
import { jobChannel, resultChannel } from './hosts.js'
import { ownerAlive } from '../util/process-owner.js'
import { LEASE_MS, inFuture, keepAlive, leaseHolderGone } from './leases.js'
import { now, type Registry } from './registry.js'
import type { RegistrySchema, SiteJobsTable } from './schema.js'

/**
 * Site jobs (SPEC §10): the work a fleet command on one machine sends to another machine's
 * workers, one job per machine with its list of sites, and one result row per site written
 * as the site finishes. The sender waits on the results; the machine's worker runs the job.
 */

export type SiteJobRow = Selectable<SiteJobsTable>

/** The lease a command that sends site jobs holds while it waits on them (its jobs are wanted while it is fresh). */
const SENDER_LEASE_PREFIX = 'site-sender:'
const senderLeaseName = (sender: string) => `${SENDER_LEASE_PREFIX}${sender}`

/**
 * Registers `sender` as a command waiting on the site jobs it sends, and keeps the registration
 * alive until `stop()`: a machine's worker stops a job whose sender is gone (killed, or its
 * machine lost) after the current site, instead of working on for nobody. The registrations of
 * senders gone earlier (killed: run out, or their process gone on this host) are cleared on the way.
 */
export async function registerSender(
  registry: Registry,
  sender: string,
): Promise<{ signal: AbortSignal; release(): Promise<void> }> {
  const name = senderLeaseName(sender)
  const at = now()
  const left = await registry.db
    .selectFrom('leases')
    .select(['name', 'owner', 'expires_at'])
    .where('name', 'like', `${SENDER_LEASE_PREFIX}%`)
    .execute()
  const stale = left.filter((l) => l.name === name || l.expires_at < at || ownerAlive(l.owner) === false)
  if (stale.length > 0)
    await registry.db
      .deleteFrom('leases')
      .where(
        'name',
        'in',
        stale.map((l) => l.name),
      )
      .execute()
  await registry.db
    .insertInto('leases')
    .values({ name, owner: sender, expires_at: inFuture(LEASE_MS) })
    .execute()
  const held = keepAlive(async () => {
    const renewed = await registry.db
      .updateTable('leases')
      .set({ expires_at: inFuture(LEASE_MS) })
      .where('name', '=', name)
      .executeTakeFirst()
    return Number(renewed.numUpdatedRows) === 1
  })
  return {
    signal: held.signal,
    async release() {
      held.stop()
      // A registration that cannot be removed (the registry is gone) runs out by itself.
      await registry.db
        .deleteFrom('leases')
        .where('name', '=', name)
        .execute()
        .catch(() => {})
    },
  }
}

/** The payload field of a job that is finished even once its sender is gone (see `senderGone`). */
export const OUTLIVES_SENDER = 'outlivesSender'

/**
 * Whether the command that sent job `job` is gone: on this host, whether its process is; on
 * another, whether its registration ran out or was removed (it ended, or was killed). Never for
 * a job sent to outlive its sender.
 */
export async function senderGone(
  db: Kysely<RegistrySchema>,
  job: Pick<SiteJobRow, 'requested_by' | 'payload'>,
): Promise<boolean> {
  if ((JSON.parse(job.payload) as Record<string, unknown>)[OUTLIVES_SENDER] === true) return false
  const alive = ownerAlive(job.requested_by)
  if (alive !== undefined) return !alive
  const lease = await db
    .selectFrom('leases')
    .select('expires_at')
    .where('name', '=', senderLeaseName(job.requested_by))
    .executeTakeFirst()
  return !lease || lease.expires_at < now()
}

/** Queues a job for `host`'s workers and wakes them. Returns its id. */
export async function enqueueSiteJob(
  registry: Registry,
  job: { host: string; command: string; payload: unknown; sites: string[]; requestedBy: string },
): Promise<number> {
  const at = now()
  const id = await registry.db.transaction().execute(async (trx) => {
    const row = await trx
      .insertInto('site_jobs')
      .values({
        host: job.host,
        command: job.command,
        payload: JSON.stringify(job.payload),
        sites: JSON.stringify(job.sites),
        status: 'queued',
        requested_by: job.requestedBy,
        lease_owner: null,
        lease_expires_at: null,
        error: null,
        created_at: at,
        updated_at: at,
        finished_at: null,
      })
      .returning('id')
      .executeTakeFirstOrThrow()
    await registry.notify(jobChannel(job.host), trx)
    return Number(row.id)
  })
  await pruneSiteJobs(registry)
  return id
}

/** How long finished site jobs (and their results, up to 64 KiB of output a site) are kept. */
const KEEP_FINISHED_MS = 7 * 24 * 3600 * 1000

/** Removes the site jobs that finished more than a week ago, with their results: the tables do not grow forever. */
async function pruneSiteJobs(registry: Registry): Promise<void> {
  const before = new Date(Date.now() - KEEP_FINISHED_MS).toISOString()
  const old = registry.db.selectFrom('site_jobs').select('id').where('finished_at', '<', before)
  await registry.db.deleteFrom('site_job_results').where('job_id', 'in', old).execute()
  await registry.db.deleteFrom('site_jobs').where('finished_at', '<', before).execute()
}

/**
 * Claims the oldest job for `host`: a queued one, or a running one whose worker is gone (its
 * lease expired, or its process is gone on this host), which is then taken over and resumed
 * from the sites it has no result for. Never a job of another machine.
 */
export async function claimSiteJob(registry: Registry, host: string, owner: string): Promise<SiteJobRow | undefined> {
  return claimOneRow(registry, {
    candidates: (trx: Kysely<RegistrySchema>) =>
      trx
        .selectFrom('site_jobs')
        .selectAll()
        .where('host', '=', host)
        .where('status', 'in', ['queued', 'running'])
        .orderBy('id')
        .limit(20),
    table: 'site_jobs',
    only: (candidates, job) => candidates.where('id', '=', job.id),
    free: (job, at) => job.status === 'queued' || leaseHolderGone(job, at),
    take: async (trx, job, at) => {
      const taken = await trx
        .updateTable('site_jobs')
        .set({ status: 'running', lease_owner: owner, lease_expires_at: inFuture(LEASE_MS), updated_at: at })
        .where('id', '=', job.id)
        .where('status', '=', job.status)
        .executeTakeFirst()
      if (Number(taken.numUpdatedRows) !== 1) return undefined
      return { ...job, status: 'running' as const, lease_owner: owner }
    },
  })
}

/** Renews the lease of a running job; false once it is no longer this owner's (taken over or called off). */
export async function renewSiteJob(db: Kysely<RegistrySchema>, id: number, owner: string): Promise<boolean> {
  const renewed = await db
    .updateTable('site_jobs')
    .set({ lease_expires_at: inFuture(LEASE_MS) })
    .where('id', '=', id)
    .where('lease_owner', '=', owner)
    .where('status', '=', 'running')
    .executeTakeFirst()
  return Number(renewed.numUpdatedRows) === 1
}

/** The sites of job `id` that already have a result (a taken-over job resumes after them). */
export async function sitesWithResults(db: Kysely<RegistrySchema>, id: number): Promise<Set<string>> {
  const rows = await db.selectFrom('site_job_results').select('site').where('job_id', '=', id).execute()
  return new Set(rows.map((r) => r.site))
}

/**
 * Records one site's result of job `id` (as `seq`), if the job is still this owner's, and
 * wakes the sender. Returns false when it is not (called off or taken over): stop there.
 */
export async function addSiteJobResult(
  registry: Registry,
  id: number,
  owner: string,
  seq: number,
  site: string,
  result: unknown,
): Promise<boolean> {
  return registry.db.transaction().execute(async (trx) => {
    const mine = await trx
      .selectFrom('site_jobs')
      .select('requested_by')
      .where('id', '=', id)
      .where('lease_owner', '=', owner)
      .where('status', '=', 'running')
      .$call((q) => (registry.kind === 'postgres' ? q.forUpdate() : q))
      .executeTakeFirst()
    if (!mine) return false
    await trx
      .insertInto('site_job_results')
      .values({ job_id: id, seq, site, result: JSON.stringify(result), created_at: now() })
      .execute()
    await registry.notify(resultChannel(mine.requested_by), trx)
    return true
  })
}

/** Ends job `id` (done, or failed with `error`) if it is still this owner's, and wakes the sender. */
export async function finishSiteJob(
  registry: Registry,
  id: number,
  owner: string,
  outcome: { status: 'done' } | { status: 'failed'; error: string },
): Promise<void> {
  await registry.db.transaction().execute(async (trx) => {
    const at = now()
    const finished = await trx
      .updateTable('site_jobs')
      .set({
        status: outcome.status,
        error: outcome.status === 'failed' ? outcome.error : null,
        lease_owner: null,
        lease_expires_at: null,
        updated_at: at,
        finished_at: at,
      })
      .where('id', '=', id)
      .where('lease_owner', '=', owner)
      .where('status', '=', 'running')
      .returning('requested_by')
      .executeTakeFirst()
    if (finished) await registry.notify(resultChannel(finished.requested_by), trx)
  })
}

/**
 * Gives a running job back to the queue (its worker is stopping): the next worker of its machine
 * takes it and resumes from the sites without a result.
 */
export async function releaseSiteJob(registry: Registry, id: number, owner: string): Promise<void> {
  await registry.db.transaction().execute(async (trx) => {
    const released = await trx
      .updateTable('site_jobs')
      .set({ status: 'queued', lease_owner: null, lease_expires_at: null, updated_at: now() })
      .where('id', '=', id)
      .where('lease_owner', '=', owner)
      .where('status', '=', 'running')
      .returning('host')
      .executeTakeFirst()
    if (released) await registry.notify(jobChannel(released.host), trx)
  })
}

/** Whether any site job waits for, or runs on, `host` (a `--once` worker stays while one does). */
export async function siteJobsLeft(db: Kysely<RegistrySchema>, host: string): Promise<boolean> {
  const row = await db
    .selectFrom('site_jobs')
    .select('id')
    .where('host', '=', host)
    .where('status', 'in', ['queued', 'running'])
    .limit(1)
    .executeTakeFirst()
  return row !== undefined
}

/** Whether job `id` is still wanted: false once its sender called it off. */
export async function siteJobWanted(db: Kysely<RegistrySchema>, id: number): Promise<boolean> {
  const row = await db.selectFrom('site_jobs').select('status').where('id', '=', id).executeTakeFirst()
  return row?.status === 'running' || row?.status === 'queued'
}

/** The results of job `id` from `fromSeq` on, in order. */
export async function siteJobResults(
  db: Kysely<RegistrySchema>,
  id: number,
  fromSeq: number,
): Promise<{ seq: number; site: string; result: unknown }[]> {
  const rows = await db
    .selectFrom('site_job_results')
    .select(['seq', 'site', 'result'])
    .where('job_id', '=', id)
    .where('seq', '>=', fromSeq)
    .orderBy('seq')
    .execute()
  return rows.map((r) => ({ seq: Number(r.seq), site: r.site, result: JSON.parse(r.result) }))
}

/** Job `id` as it is now. */
export async function getSiteJob(db: Kysely<RegistrySchema>, id: number): Promise<SiteJobRow | undefined> {
  return db.selectFrom('site_jobs').selectAll().where('id', '=', id).executeTakeFirst()
}

/**
 * Calls job `id` off, with `error`: only while it is queued, or (`orphaned`) running with an
 * expired lease — its worker died and none took it over. Once called off, no worker starts it
 * or records another result. Returns whether it was called off.
 */
export async function cancelSiteJob(
  db: Kysely<RegistrySchema>,
  id: number,
  error: string,
  when: 'queued' | 'orphaned' | 'any',
): Promise<boolean> {
  const at = now()
  const cancelled = await db
    .updateTable('site_jobs')
    .set({ status: 'cancelled', error, lease_owner: null, lease_expires_at: null, updated_at: at, finished_at: at })
    .where('id', '=', id)
    .$call((q) =>
      when === 'queued'
        ? q.where('status', '=', 'queued')
        : when === 'orphaned'
          ? q.where('status', '=', 'running').where('lease_expires_at', '<', at)
          : q.where('status', 'in', ['queued', 'running']),
    )
    .executeTakeFirst()
  return Number(cancelled.numUpdatedRows) === 1
}
