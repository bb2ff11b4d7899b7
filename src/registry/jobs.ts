import { hostname } from 'node:os'
import type { Expression, ExpressionBuilder, Kysely, Selectable, SqlBool } from 'kysely'
import { claimOneRow } from './claim-row.js'
import { LEASE_MS, inFuture, leaseHolderGone } from './leases.js'
import { now, type Registry } from './registry.js'
import type { JobsTable, RegistrySchema } from './schema.js'

export type JobRow = Selectable<JobsTable>

/** A claimed job, with its tenant's name. */
export type ClaimedJob = JobRow & { tenant: string }

/**
 * Which jobs this machine may run: a condition over `jobs` and their `tenants` (on a shared
 * registry, see `machineJobs`); without it, every job.
 */
export type TenantScope = (eb: ExpressionBuilder<RegistrySchema, 'jobs' | 'tenants'>) => Expression<SqlBool>

/** The jobs `host` may take: those for it, and those for no machine yet (it then homes them on itself). */
export function jobsForHost(host: string): TenantScope {
  return (eb) => eb.or([eb('jobs.host', 'is', null), eb('jobs.host', '=', host)])
}

/**
 * Queues a provisioning job for a tenant (inside the caller's transaction), for machine `host`'s
 * workers, or (null) for the first worker that claims it.
 */
export async function enqueueJob(
  trx: Kysely<RegistrySchema>,
  tenantId: number,
  host: string | null = null,
): Promise<void> {
  const at = now()
  await trx
    .insertInto('jobs')
    .values({
      tenant_id: tenantId,
      kind: 'provision',
      status: 'queued',
      attempts: 0,
      run_at: at,
      lease_owner: null,
      lease_expires_at: null,
      last_error: null,
      created_at: at,
      updated_at: at,
      host,
    })
    .execute()
}

/**
 * Claims the next job for `owner` with `claimOneRow` (so workers on several machines take
 * different jobs): a queued job whose time has come, or a running one whose worker is gone
 * (lease expired, or its process is gone on this host). A job for no machine claimed by `host`
 * becomes `host`'s. Returns undefined when there is none.
 */
export async function claimJob(
  registry: Registry,
  owner: string,
  scope?: TenantScope,
  host?: string,
): Promise<ClaimedJob | undefined> {
  return claimOneRow(registry, {
    // Typed here, so the claim's row type is inferred from this query.
    candidates: (trx: Kysely<RegistrySchema>, at: string) =>
      trx
        .selectFrom('jobs')
        .innerJoin('tenants', 'tenants.id', 'jobs.tenant_id')
        .selectAll('jobs')
        .select('tenants.name as tenant')
        // Running jobs only when their worker may be gone: lease expired, or held on this host
        // (tested by `free`); a busy fleet's live jobs never crowd out the queued ones.
        .where((eb) =>
          eb.or([
            eb.and([eb('jobs.status', 'in', ['queued', 'retry']), eb('jobs.run_at', '<=', at)]),
            eb.and([
              eb('jobs.status', '=', 'running'),
              eb.or([eb('jobs.lease_expires_at', '<', at), eb('jobs.lease_owner', 'like', `%@${hostname()}%`)]),
            ]),
          ]),
        )
        // A tenant whose site lives on another machine is that machine's to provision.
        .$call((q) => (scope ? q.where(scope) : q))
        .orderBy('jobs.run_at')
        .orderBy('jobs.id')
        .limit(100),
    table: 'jobs',
    only: (candidates, job) => candidates.where('jobs.id', '=', job.id),
    free: (job, at) => job.status !== 'running' || leaseHolderGone(job, at),
    take: async (trx, job, at) => {
      await trx
        .updateTable('jobs')
        .set({
          status: 'running',
          lease_owner: owner,
          lease_expires_at: inFuture(LEASE_MS),
          attempts: job.attempts + 1,
          updated_at: at,
          // Claimed, a job for no machine becomes this one's: its retries stay where its site is.
          ...(host !== undefined && job.host === null ? { host } : {}),
        })
        .where('id', '=', job.id)
        .execute()
      return {
        ...job,
        status: 'running',
        lease_owner: owner,
        attempts: job.attempts + 1,
        host: job.host ?? host ?? null,
      }
    },
  })
}

/**
 * How many jobs (in `scope`) are still waiting or running, and when the earliest is due (a `--once`
 * worker stops when none is).
 */
export async function jobsLeft(
  db: Kysely<RegistrySchema>,
  scope?: TenantScope,
): Promise<{ count: number; nextRunAt: string | null }> {
  const row = await db
    .selectFrom('jobs')
    .innerJoin('tenants', 'tenants.id', 'jobs.tenant_id')
    .select((eb) => [eb.fn.countAll<number>().as('count'), eb.fn.min('jobs.run_at').as('next')])
    .where('jobs.status', 'in', ['queued', 'retry', 'running'])
    .$call((q) => (scope ? q.where(scope) : q))
    .executeTakeFirst()
  return { count: Number(row?.count ?? 0), nextRunAt: (row?.next as string | null) ?? null }
}

/**
 * The tenant of the job (in `scope`) due next after `claimed`, waiting to be claimed: what a
 * worker may prepare while it runs `claimed` (another worker may still take it).
 */
export async function nextQueuedTenant(
  db: Kysely<RegistrySchema>,
  claimed: number,
  scope?: TenantScope,
): Promise<string | undefined> {
  const row = await db
    .selectFrom('jobs')
    .innerJoin('tenants', 'tenants.id', 'jobs.tenant_id')
    .select('tenants.name')
    .where('jobs.status', 'in', ['queued', 'retry'])
    .where('jobs.run_at', '<=', now())
    .where('jobs.id', '!=', claimed)
    .$call((q) => (scope ? q.where(scope) : q))
    .orderBy('jobs.run_at')
    .orderBy('jobs.id')
    .limit(1)
    .executeTakeFirst()
  return row?.name
}
