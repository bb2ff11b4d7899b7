import type { Bench } from '../bench.js'
import { isUsageError, messageOf } from '../errors.js'
import { KeyRefusedError } from '../registry/key-check.js'
import type { ClaimedJob } from '../registry/jobs.js'
import { keepAlive, renewLease } from '../registry/leases.js'
import { now } from '../registry/registry.js'
import { recordEvent } from '../events/outbox.js'
import { provisionTenant, type StepEvent } from './runner.js'

export type WorkerEvent =
  | { type: 'claimed'; job: number; tenant: string; attempt: number }
  | { type: 'step'; tenant: string; event: StepEvent }
  | {
      type: 'finished'
      job: number
      tenant: string
      status: JobStatus
      error?: string
      retry_at?: string
    }
  /** A fleet command on another machine sent this one `command` over `sites` of its sites (SPEC §10). */
  | { type: 'site_job'; job: number; command: string; sites: number; from: string }
  | { type: 'site_job_finished'; job: number; command: string; ms: number }

/** Where an attempt left its job: done, waiting for a retry, given up, or back in the queue as it was. */
export type JobStatus = 'done' | 'retry' | 'failed' | 'requeued'

/** What the lanes of one worker share while running jobs. */
export interface JobContext {
  /** Aborting stops the job after its current step; it is requeued. */
  signal?: AbortSignal
  onEvent?: (event: WorkerEvent) => void
  /** Set when a job met a refused key: that job goes back as it was, and so does any job failing after it. */
  keyRefused?: KeyRefusedError
}

/** Seconds before retry `attempt` (1-based): `provision.retry_delay` doubled each time, at most 5 minutes. */
export function backoffMs(bench: Bench, attempt: number): number {
  const base = bench.config.provision.retry_delay
  return Math.min(300_000, base * 1000 * 2 ** Math.max(0, attempt - 1))
}

/**
 * Runs one claimed job (an attempt to provision its tenant) under the job's lease, kept
 * alive meanwhile; a lost lease stops it after the current step, requeued. Then records
 * where the attempt left the job: done, retried after a backoff, requeued as it was
 * (interrupted, or the tenant busy elsewhere), or failed after `provision.max_attempts`,
 * with the tenant's `tenant.failed` event and an error log entry.
 */
export async function runJob(bench: Bench, job: ClaimedJob, owner: string, context: JobContext): Promise<JobStatus> {
  const registry = await bench.registry()
  context.onEvent?.({ type: 'claimed', job: job.id, tenant: job.tenant, attempt: job.attempts })
  const renewal = keepAlive(() => renewLease(registry, 'jobs', job.id, owner))
  let status: JobStatus
  let error: string | undefined
  let retryAt: string | undefined
  try {
    const result = await provisionTenant(bench, job.tenant, {
      signal: context.signal,
      alsoHeld: renewal.signal,
      interruptSteps: false,
      notifyFailure: false,
      onStep: (event) => context.onEvent?.({ type: 'step', tenant: job.tenant, event }),
    })
    error = result.error ?? undefined
    if (result.status === 'completed' || result.status === 'already_active') status = 'done'
    else if (result.status === 'interrupted' || result.status === 'busy') status = 'requeued'
    else if (job.attempts >= bench.config.provision.max_attempts) status = 'failed'
    else status = 'retry'
  } catch (thrown) {
    // The tenant was deleted (TenantNotFoundError, a usage error), its configuration is wrong, or
    // the registry failed: the job cannot go on; only the last may be retried.
    error = messageOf(thrown)
    if (thrown instanceof KeyRefusedError) context.keyRefused = thrown
    status = context.keyRefused
      ? 'requeued'
      : isUsageError(thrown)
        ? 'failed'
        : job.attempts >= bench.config.provision.max_attempts
          ? 'failed'
          : 'retry'
  } finally {
    renewal.stop()
  }
  const at = now()
  if (status === 'retry') retryAt = new Date(Date.now() + backoffMs(bench, job.attempts)).toISOString()
  // A job that gives up and its `tenant.failed` event commit together.
  await registry.writeTransaction(async (trx) => {
    const updated = await trx
      .updateTable('jobs')
      .set({
        status: status === 'requeued' ? 'queued' : status,
        // An interrupted attempt does not count against the tenant.
        attempts: status === 'requeued' ? job.attempts - 1 : job.attempts,
        run_at: retryAt ?? (status === 'requeued' ? at : job.run_at),
        lease_owner: null,
        lease_expires_at: null,
        last_error: context.keyRefused ? job.last_error : (error ?? null),
        updated_at: at,
      })
      .where('id', '=', job.id)
      .where('lease_owner', '=', owner)
      .executeTakeFirst()
    if (status !== 'failed' || Number(updated.numUpdatedRows) !== 1) return
    const tenant = await trx.selectFrom('tenants').selectAll().where('name', '=', job.tenant).executeTakeFirst()
    // A pool reservation was nobody's tenant: no one is told it failed (as the runner does).
    if (tenant && tenant.pending_since === null) await recordEvent(bench, trx, 'tenant.failed', tenant)
  })
  if (status === 'retry' || status === 'requeued') {
    await registry.db
      .updateTable('tenants')
      .set({ provisioning_status: 'queued', updated_at: at })
      .where('name', '=', job.tenant)
      .where('provisioning_status', '!=', 'completed')
      .execute()
  }
  if (status === 'failed') {
    await registry.logError({
      tenant: job.tenant,
      job_id: job.id,
      message: `provisioning failed after ${job.attempts} attempt(s): ${error ?? 'unknown error'}`,
    })
  }
  context.onEvent?.({ type: 'finished', job: job.id, tenant: job.tenant, status, error, retry_at: retryAt })
  return status
}
