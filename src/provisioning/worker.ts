import { hostname } from 'node:os'
import { closeSync, mkdirSync, openSync } from 'node:fs'
import { join } from 'node:path'
import type { Kysely, Selectable } from 'kysely'
import type { Bench } from '../bench.js'
import { TenancyError, messageOf } from '../errors.js'
import { now } from '../registry/registry.js'
import { PROCESS_OWNER, ownerAlive } from '../util/process-owner.js'
import { KeyRefusedError } from '../registry/key-check.js'
import type { JobsTable, RegistrySchema } from '../registry/schema.js'
import { notHomedElsewhere } from '../sites/site-home.js'
import { packageRoot } from '../util/library-path.js'
import { LEASE_MS, inFuture, newOwner } from './lease.js'
import { deliverEvents, recordEvent } from '../events/outbox.js'
import { provisionTenant, type StepEvent } from './runner.js'

type JobRow = Selectable<JobsTable>

/** Queues a provisioning job for a tenant (inside the caller's transaction). */
export async function enqueueJob(trx: Kysely<RegistrySchema>, tenantId: number): Promise<void> {
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
    })
    .execute()
}

/** Seconds before retry `attempt` (1-based): `provision.retry_delay` doubled each time, at most 5 minutes. */
export function backoffMs(bench: Bench, attempt: number): number {
  const base = bench.config.provision.retry_delay
  return Math.min(300_000, base * 1000 * 2 ** Math.max(0, attempt - 1))
}

/**
 * Claims the next job atomically (SQLite: under the write lock; PostgreSQL: `FOR UPDATE SKIP
 * LOCKED`, so workers on several machines take different jobs): a queued job whose time
 * has come, or a running one whose worker died (lease expired, or its process is gone on
 * this host). Returns undefined when there is none.
 */
export async function claimJob(bench: Bench, owner: string): Promise<(JobRow & { tenant: string }) | undefined> {
  const registry = await bench.registry()
  return registry.claimTransaction(async (trx) => {
    const at = now()
    const candidates = await registry
      .lockCandidates(
        trx
          .selectFrom('jobs')
          .innerJoin('tenants', 'tenants.id', 'jobs.tenant_id')
          .selectAll('jobs')
          .select('tenants.name as tenant')
          // Running jobs only when their worker may be gone: lease expired, or held on this host
          // (checked below); a busy fleet's live jobs never crowd out the queued ones.
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
          .$if(registry.kind === 'postgres', (q) => q.where(notHomedElsewhere(bench.host)))
          .orderBy('jobs.run_at')
          .orderBy('jobs.id')
          .limit(100),
        'jobs',
      )
      .execute()
    const job = candidates.find(
      (j) =>
        j.status !== 'running' ||
        (j.lease_expires_at !== null && j.lease_expires_at < at) ||
        (j.lease_owner !== null && ownerAlive(j.lease_owner) === false),
    )
    if (!job) return undefined
    await trx
      .updateTable('jobs')
      .set({
        status: 'running',
        lease_owner: owner,
        lease_expires_at: inFuture(LEASE_MS),
        attempts: job.attempts + 1,
        updated_at: at,
      })
      .where('id', '=', job.id)
      .execute()
    return { ...job, status: 'running', lease_owner: owner, attempts: job.attempts + 1 }
  })
}

/** Whether any job this machine may run is still waiting or running (a `--once` worker stops when none is). */
async function jobsLeft(
  bench: Bench,
  trx?: Kysely<RegistrySchema>,
): Promise<{ count: number; nextRunAt: string | null }> {
  const registry = await bench.registry()
  const db = trx ?? registry.db
  const row = await db
    .selectFrom('jobs')
    .innerJoin('tenants', 'tenants.id', 'jobs.tenant_id')
    .select((eb) => [eb.fn.countAll<number>().as('count'), eb.fn.min('jobs.run_at').as('next')])
    .where('jobs.status', 'in', ['queued', 'retry', 'running'])
    .$if(registry.kind === 'postgres', (q) => q.where(notHomedElsewhere(bench.host)))
    .executeTakeFirst()
  return { count: Number(row?.count ?? 0), nextRunAt: (row?.next as string | null) ?? null }
}

export type WorkerEvent =
  | { type: 'claimed'; job: number; tenant: string; attempt: number }
  | { type: 'step'; tenant: string; event: StepEvent }
  | {
      type: 'finished'
      job: number
      tenant: string
      status: 'done' | 'retry' | 'failed' | 'requeued'
      error?: string
      retry_at?: string
    }

export interface WorkerOptions {
  once?: boolean
  concurrency?: number
  /** Aborting stops claiming; running jobs finish their current step, then are requeued. */
  signal?: AbortSignal
  onEvent?: (event: WorkerEvent) => void
  pollMs?: number
}

export interface WorkerResult {
  /** Distinct jobs this worker ran (a job retried here counts once). */
  jobs: number
  /** Attempts made: a job retried here counts once per attempt. */
  attempts: number
  done: number
  failed: number
  /** Jobs whose last attempt here failed and that wait for a retry. */
  retried: number
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const onAbort = () => {
      clearTimeout(timer)
      resolve()
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal?.addEventListener('abort', onAbort, { once: true })
  })

/**
 * `tenancy worker`: runs queued provisioning jobs, `concurrency` at a time, retrying failures
 * with exponential backoff up to `provision.max_attempts`, then marking the tenant failed.
 * Registers itself in the registry so `tenant create --background` knows a worker is alive.
 */
export async function runWorker(bench: Bench, options: WorkerOptions = {}): Promise<WorkerResult> {
  const registry = await bench.registry()
  // Jobs write secrets: a wrong key is exit 2 before any job is claimed.
  await bench.secretBox()
  const workerOwner = newOwner()
  const leaseName = `worker:${workerOwner}`
  // Registered, this worker stands for the one being started: the starter's claim can go.
  await registry.writeTransaction(async (trx) => {
    await trx
      .insertInto('leases')
      .values({ name: leaseName, owner: workerOwner, expires_at: inFuture(LEASE_MS) })
      .execute()
    await trx.deleteFrom('leases').where('name', '=', STARTING_LEASE).execute()
  })
  const heartbeat = setInterval(() => {
    registry.db
      .updateTable('leases')
      .set({ expires_at: inFuture(LEASE_MS) })
      .where('name', '=', leaseName)
      .execute()
      .catch(() => {})
  }, LEASE_MS / 3)
  heartbeat.unref()
  const totals: WorkerResult = { jobs: 0, attempts: 0, done: 0, failed: 0, retried: 0 }
  const seen = new Set<number>()
  const outcomes = new Map<number, string>()
  const poll = options.pollMs ?? 500
  // A key refused inside a job: its job goes back as it was, and no lane claims another.
  let keyRefused: KeyRefusedError | undefined

  const runJob = async (job: JobRow & { tenant: string }, owner: string) => {
    totals.attempts++
    seen.add(job.id)
    totals.jobs = seen.size
    options.onEvent?.({ type: 'claimed', job: job.id, tenant: job.tenant, attempt: job.attempts })
    const renew = setInterval(() => {
      registry.db
        .updateTable('jobs')
        .set({ lease_expires_at: inFuture(LEASE_MS) })
        .where('id', '=', job.id)
        .where('lease_owner', '=', owner)
        .execute()
        .catch(() => {})
    }, LEASE_MS / 3)
    renew.unref()
    let status: 'done' | 'retry' | 'failed' | 'requeued'
    let error: string | undefined
    let retryAt: string | undefined
    try {
      const result = await provisionTenant(bench, job.tenant, {
        signal: options.signal,
        interruptSteps: false,
        notifyFailure: false,
        onStep: (event) => options.onEvent?.({ type: 'step', tenant: job.tenant, event }),
      })
      error = result.error ?? undefined
      if (result.status === 'completed' || result.status === 'already_active') status = 'done'
      else if (result.status === 'interrupted' || result.status === 'busy') status = 'requeued'
      else if (job.attempts >= bench.config.provision.max_attempts) status = 'failed'
      else status = 'retry'
    } catch (thrown) {
      // The tenant was deleted, or the registry failed: the job cannot go on.
      error = messageOf(thrown)
      if (thrown instanceof KeyRefusedError) keyRefused = thrown
      status = keyRefused
        ? 'requeued'
        : thrown instanceof TenancyError && thrown.exitCode === 2
          ? 'failed'
          : job.attempts >= bench.config.provision.max_attempts
            ? 'failed'
            : 'retry'
    } finally {
      clearInterval(renew)
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
          last_error: keyRefused ? job.last_error : (error ?? null),
          updated_at: at,
        })
        .where('id', '=', job.id)
        .where('lease_owner', '=', owner)
        .executeTakeFirst()
      if (status !== 'failed' || Number(updated.numUpdatedRows) !== 1) return
      const tenant = await trx.selectFrom('tenants').selectAll().where('name', '=', job.tenant).executeTakeFirst()
      if (tenant) await recordEvent(bench, trx, 'tenant.failed', tenant)
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
    // Each job counts once, by where its last attempt here left it.
    outcomes.set(job.id, status)
    const count = (wanted: string) => [...outcomes.values()].filter((s) => s === wanted).length
    ;[totals.done, totals.failed, totals.retried] = [count('done'), count('failed'), count('retry')]
    options.onEvent?.({ type: 'finished', job: job.id, tenant: job.tenant, status, error, retry_at: retryAt })
  }

  const lane = async () => {
    const owner = newOwner()
    while (!options.signal?.aborted && !keyRefused) {
      const job = await claimJob(bench, owner)
      if (job) {
        await runJob(job, owner)
        continue
      }
      // Between jobs the worker drains the outbox: events a crash (or a failing receiver) left.
      if ((await deliverEvents(bench, { limit: 50 })).delivered > 0) continue
      if (options.once) {
        const left = await jobsLeft(bench)
        if (left.count === 0) return
      }
      await sleep(poll, options.signal)
    }
  }

  try {
    for (;;) {
      await Promise.all(Array.from({ length: Math.max(1, options.concurrency ?? 1) }, lane))
      if (keyRefused) throw keyRefused
      if (!options.once || options.signal?.aborted) break
      // A `--once` worker retires only if no job is left, checked under the write lock that
      // `ensureWorker` takes: a job queued meanwhile either sees this worker (and this one
      // runs it) or sees it gone (and starts another), never neither, never both.
      const retired = await registry.writeTransaction(async (trx) => {
        if ((await jobsLeft(bench, trx)).count > 0) return false
        await trx.deleteFrom('leases').where('name', '=', leaseName).execute()
        return true
      })
      if (retired) break
    }
  } finally {
    clearInterval(heartbeat)
    await registry.db.deleteFrom('leases').where('name', '=', leaseName).execute()
  }
  return totals
}

/** Whether a live worker is registered (its heartbeat lease has not expired). */
export async function workerAlive(bench: Bench): Promise<boolean> {
  const registry = await bench.registry()
  const rows = await registry.db
    .selectFrom('leases')
    .select(['owner', 'expires_at'])
    .where('name', 'like', 'worker:%')
    .where('expires_at', '>', now())
    .execute()
  return rows.some((r) => ownerAlive(r.owner) !== false)
}

/** The lease a process takes to start this machine's background worker, until the worker registers. */
const STARTING_LEASE = `worker-starting:${hostname()}`
/** Long enough for a worker to start and register; a starter that died frees it after this. */
const STARTING_MS = 20_000

/**
 * Starts a detached `tenancy worker --once` unless a live worker is registered or one is
 * being started: the check and the claim of the starting lease are one write transaction,
 * so concurrent `tenant create --background` runs start one worker between them. Its output
 * goes to `.tenancy/worker.log`. Returns whether one was started.
 */
export async function ensureWorker(bench: Bench): Promise<boolean> {
  const registry = await bench.registry()
  const claimed = await registry.writeTransaction(async (trx) => {
    const at = now()
    const live = await trx
      .selectFrom('leases')
      .select(['name', 'owner'])
      .where((eb) => eb.or([eb('name', 'like', 'worker:%'), eb('name', '=', STARTING_LEASE)]))
      .where('expires_at', '>', at)
      .execute()
    if (live.some((l) => l.name === STARTING_LEASE || ownerAlive(l.owner) !== false)) return false
    await trx.deleteFrom('leases').where('name', '=', STARTING_LEASE).execute()
    await trx
      .insertInto('leases')
      .values({ name: STARTING_LEASE, owner: PROCESS_OWNER, expires_at: inFuture(STARTING_MS) })
      .execute()
    return true
  })
  if (!claimed) return false
  const { execa } = await import('execa')
  mkdirSync(bench.stateDir, { recursive: true, mode: 0o700 })
  // The worker writes straight to the log file (a descriptor it inherits), so it needs
  // nothing from this process once started.
  const log = openSync(join(bench.stateDir, 'worker.log'), 'a', 0o600)
  try {
    const child = execa(
      process.execPath,
      [join(packageRoot(bench.env), 'bin', 'tenancy.js'), 'worker', '--once', '--config', bench.configFile],
      {
        cwd: bench.root,
        env: bench.env as Record<string, string>,
        extendEnv: false,
        detached: true,
        cleanup: false,
        stdin: 'ignore',
        // execa passes a file descriptor through (its docs: "integer: a file descriptor"); its
        // type definitions do not list plain numbers for stdout/stderr.
        stdout: log as never,
        stderr: log as never,
        reject: false,
      },
    )
    child.unref()
    // The promise settles when the worker ends; nobody waits for it here.
    child.catch(() => {})
  } finally {
    closeSync(log)
  }
  return true
}
