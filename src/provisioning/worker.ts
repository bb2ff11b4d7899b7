import { closeSync, mkdirSync, openSync } from 'node:fs'
import { join } from 'node:path'
import type { Bench } from '../bench.js'
import { TenancyError, messageOf } from '../errors.js'
import { ServerGoneError } from '../databases/server-gone.js'
import { now } from '../registry/registry.js'
import { PROCESS_OWNER, ownerAlive } from '../util/process-owner.js'
import { claimJob, jobsForHost, jobsLeft, nextQueuedTenant, type TenantScope } from '../registry/jobs.js'
import { LEASE_MS, inFuture, keepAlive, newOwner } from '../registry/leases.js'
import { notHomedElsewhere } from '../sites/site-home.js'
import { jobChannel, liveWorkerHosts, workerLeaseHost, workerLeaseName, workerLeasePattern } from '../registry/hosts.js'
import { claimSiteJob, siteJobsLeft } from '../registry/site-jobs.js'
import { runSiteJob } from '../fleet/site-job-runner.js'
import { forgetLoadedApps } from '../apps/manifest.js'
import { packageRoot } from '../util/library-path.js'
import { handOverSecrets } from '../util/handed-secrets.js'
import { deliverEvents } from '../events/outbox.js'
import { runJob, type JobContext, type JobStatus, type WorkerEvent } from './run-job.js'
import { EarlyHashes } from './steps/create-site.js'

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
  /** Site jobs other machines' fleet commands sent this one, run here (SPEC §10). */
  siteJobs: number
}

/** The longest a lane waits before it tries a registry that went away again. */
const AWAY_MAX_MS = 5000

/** Sleeps up to `ms`; `wakeAll` (a job was queued for this machine) or `signal` ends every sleep at once. */
function sleeper(signal?: AbortSignal) {
  const sleeping = new Set<() => void>()
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const wake = () => {
        clearTimeout(timer)
        sleeping.delete(wake)
        signal?.removeEventListener('abort', wake)
        resolve()
      }
      const timer = setTimeout(wake, ms)
      sleeping.add(wake)
      signal?.addEventListener('abort', wake, { once: true })
    })
  return { sleep, wakeAll: () => [...sleeping].forEach((wake) => wake()) }
}

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
  const leaseName = workerLeaseName(bench.host, workerOwner)
  // Registered, this worker stands for the one being started: the starter's claim can go.
  await registry.writeTransaction(async (trx) => {
    await trx
      .insertInto('leases')
      .values({ name: leaseName, owner: workerOwner, expires_at: inFuture(LEASE_MS) })
      .execute()
    await trx.deleteFrom('leases').where('name', '=', startingLease(bench)).execute()
  })
  // Renewed while the worker runs; once lost, no lane claims another job and the worker stops.
  const registration = keepAlive(async () => {
    const renewed = await registry.db
      .updateTable('leases')
      .set({ expires_at: inFuture(LEASE_MS) })
      .where('name', '=', leaseName)
      .executeTakeFirst()
    return Number(renewed.numUpdatedRows) === 1
  })
  const totals: WorkerResult = { jobs: 0, attempts: 0, done: 0, failed: 0, retried: 0, siteJobs: 0 }
  const seen = new Set<number>()
  const outcomes = new Map<number, JobStatus>()
  const poll = options.pollMs ?? 500
  // A key refused inside a job (`context.keyRefused`): its job goes back as it was, and no lane claims another.
  const context: JobContext = { signal: options.signal, onEvent: options.onEvent }
  // A tenant placed on, or whose site lives on, another machine is that machine's to provision.
  const scope: TenantScope | undefined =
    registry.kind === 'postgres'
      ? (eb) => eb.and([jobsForHost(bench.host)(eb), notHomedElsewhere(bench.host)(eb)])
      : undefined
  const host = registry.kind === 'postgres' ? bench.host : undefined
  const { sleep, wakeAll } = sleeper(options.signal)
  // A job queued for this machine (a provisioning or a site job) wakes the idle lanes at once.
  const stopListening = await registry.listen([jobChannel(bench.host)], wakeAll)

  // Early Administrator hashes, as `pending-create` starts them: a lane starts its job's hash
  // (unless it was started already) and then the next due job's, so that the next one's scrypt
  // runs on the thread pool while this job is provisioned. Its own comes first: the hashes of
  // one password are taken oldest first, so a job must not take the one started for the job
  // after it. Each is discarded once its job here is done, or when the worker stops (another
  // worker may have claimed that job).
  const lanes = Math.max(1, options.concurrency ?? 1)
  const early = new EarlyHashes(bench, EARLY_KEPT * lanes)

  /** One turn of a lane: runs a job if there is one; 'idle' when there was none, 'done' for a `--once` lane with nothing left. */
  const turn = async (owner: string): Promise<'worked' | 'idle' | 'done'> => {
    const job = await claimJob(registry, owner, scope, host)
    // Each job sees the bench's apps as they are now (a deploy may have added migrations).
    forgetLoadedApps()
    // Work another machine's fleet command sent this one (SPEC §10).
    const siteJob = !job && host !== undefined ? await claimSiteJob(registry, host, owner) : undefined
    if (siteJob) {
      const started = performance.now()
      const [job, command, from] = [siteJob.id, siteJob.command, siteJob.requested_by]
      options.onEvent?.({ type: 'site_job', job, command, sites: JSON.parse(siteJob.sites).length, from })
      await runSiteJob(bench, siteJob, owner, options.signal)
      options.onEvent?.({ type: 'site_job_finished', job, command, ms: Math.round(performance.now() - started) })
      totals.siteJobs++
      return 'worked'
    }
    if (job) {
      totals.attempts++
      seen.add(job.id)
      totals.jobs = seen.size
      await early.prepare(job.tenant)
      await early.prepare(await nextQueuedTenant(registry.db, job.id, scope).catch(() => undefined))
      // Each job counts once, by where its last attempt here left it.
      outcomes.set(job.id, await runJob(bench, job, owner, context))
      await early.discard(job.tenant)
      const count = (wanted: JobStatus) => [...outcomes.values()].filter((s) => s === wanted).length
      ;[totals.done, totals.failed, totals.retried] = [count('done'), count('failed'), count('retry')]
      return 'worked'
    }
    // Between jobs the worker drains the outbox: events a crash (or a failing receiver) left.
    if ((await deliverEvents(bench, { limit: 50 })).delivered > 0) return 'worked'
    if (options.once) {
      const left = await jobsLeft(registry.db, scope)
      if (left.count === 0 && (host === undefined || !(await siteJobsLeft(registry.db, host)))) return 'done'
    }
    return 'idle'
  }

  const lane = async () => {
    const owner = newOwner()
    let away = 0
    while (!options.signal?.aborted && !context.keyRefused && !registration.signal.aborted) {
      let state: Awaited<ReturnType<typeof turn>>
      try {
        state = await turn(owner)
        away = 0
      } catch (error) {
        // A registry that went away is waited for, longer each time: the worker carries on
        // when it is back, and stops (its registration lapsed) if it stays away.
        if (!(error instanceof ServerGoneError)) throw error
        away = Math.min(AWAY_MAX_MS, Math.max(poll, away * 2))
        await sleep(away)
        continue
      }
      if (state === 'done') return
      if (state === 'idle') await sleep(poll)
    }
  }

  try {
    for (;;) {
      await Promise.all(Array.from({ length: lanes }, lane))
      if (context.keyRefused) throw context.keyRefused
      if (registration.signal.aborted) throw registrationLost(registration.signal.reason)
      if (!options.once || options.signal?.aborted) break
      // A `--once` worker retires only if no job is left, checked under the write lock that
      // `ensureWorker` takes: a job queued meanwhile either sees this worker (and this one
      // runs it) or sees it gone (and starts another), never neither, never both.
      const retired = await registry.writeTransaction(async (trx) => {
        if ((await jobsLeft(trx, scope)).count > 0) return false
        await trx.deleteFrom('leases').where('name', '=', leaseName).execute()
        return true
      })
      if (retired) break
    }
  } finally {
    await early.discardAll()
    await stopListening()
    registration.stop()
    // A registry that is away cannot be told: the registration runs out by itself.
    await registry.db
      .deleteFrom('leases')
      .where('name', '=', leaseName)
      .execute()
      .catch((error: unknown) => {
        if (!(error instanceof ServerGoneError)) throw error
      })
  }
  return totals
}

/** Early hashes a worker keeps per lane (its job's and the next one's, and one to spare). */
const EARLY_KEPT = 3

/** Why a worker stopped whose registration could not be renewed. */
function registrationLost(reason: unknown): TenancyError {
  const why = reason === 'taken' ? 'it was removed' : messageOf(reason)
  return new TenancyError(`the worker lost its registration in the registry (${why}); start it again`, {
    cause: reason === 'taken' ? undefined : reason,
  })
}

/** Whether a live worker of this machine is registered (its heartbeat lease has not expired). */
export async function workerAlive(bench: Bench): Promise<boolean> {
  const registry = await bench.registry()
  return (await liveWorkerHosts(registry.db, bench.host)).has(bench.host)
}

/** The lease a process takes to start this machine's background worker, until the worker registers. */
const startingLease = (bench: Bench) => `worker-starting:${bench.host}`
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
  const starting = startingLease(bench)
  const claimed = await registry.writeTransaction(async (trx) => {
    const at = now()
    const live = await trx
      .selectFrom('leases')
      .select(['name', 'owner'])
      .where((eb) => eb.or([eb('name', 'like', workerLeasePattern(bench.host)), eb('name', '=', starting)]))
      .where('expires_at', '>', at)
      .execute()
    // `_` in a machine's name is a `like` wildcard: only the leases that name this very machine count.
    const mine = live.filter((l) => l.name === starting || workerLeaseHost(l.name) === bench.host)
    if (mine.some((l) => l.name === starting || ownerAlive(l.owner) !== false)) return false
    await trx.deleteFrom('leases').where('name', '=', starting).execute()
    await trx
      .insertInto('leases')
      .values({ name: starting, owner: PROCESS_OWNER, expires_at: inFuture(STARTING_MS) })
      .execute()
    return true
  })
  if (!claimed) return false
  const { execa } = await import('execa')
  mkdirSync(bench.stateDir, { recursive: true, mode: 0o700 })
  // The worker writes straight to the log file (a descriptor it inherits), so it needs
  // nothing from this process once started.
  const log = openSync(join(bench.stateDir, 'worker.log'), 'a', 0o600)
  // The worker needs this process's secrets (the admin password, a registry URL's password, …)
  // but gets them on its stdin, not in its environment, which lasts as long as it runs.
  const { environment, secrets } = handOverSecrets(bench.env)
  try {
    const child = execa(
      process.execPath,
      [join(packageRoot(bench.env), 'bin', 'tenancy.js'), 'worker', '--once', '--config', bench.configFile],
      {
        cwd: bench.root,
        env: environment,
        extendEnv: false,
        detached: true,
        cleanup: false,
        stdin: secrets === undefined ? 'ignore' : 'pipe',
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
    if (secrets !== undefined && child.stdin) {
      const stdin = child.stdin
      // A worker that failed to start has no reader: its failure is in worker.log, not here.
      stdin.on('error', () => {})
      await new Promise<void>((resolve) => stdin.end(secrets, () => resolve()))
    }
  } finally {
    closeSync(log)
  }
  return true
}
