import { join } from 'node:path'
import { Worker } from 'node:worker_threads'
import type { Bench } from '../bench.js'
import { getDriver } from '../databases/index.js'
import type { SiteRecord } from '../registry/registry.js'
import { packageRoot } from '../util/library-path.js'
import type { MigrationPlan, SiteJob, SiteOutcome } from './site-migrator.js'
import type { BenchMigrations, RollbackJob, SiteRollbackResult, SiteRollbackTarget } from './site-rollback.js'

/** Below this many sites, thread start-up costs more than it saves. */
export const INLINE_BELOW = 16

/**
 * Each thread's young generation, in MB. What a site's migration allocates is garbage by the
 * next site, and V8's default young generation (up to 48 MB a thread) mostly holds that garbage:
 * this keeps a 10,000-site run's threads some 6 MB smaller each, at no cost in time (measured).
 */
const YOUNG_MB = 2

/** Whether every site is on a database server: their work is round trips, not CPU, so threads would not help. */
export async function serversOnly(sites: readonly Pick<SiteRecord, 'db_type'>[]): Promise<boolean> {
  const drivers = await Promise.all([...new Set(sites.map((s) => s.db_type))].map((t) => getDriver(t)))
  return sites.length > 0 && drivers.every((d) => d.server)
}

/**
 * How many worker threads a fleet command runs `sites` on: `concurrency` (default
 * `migrate.concurrency`, else the CPU count) when some site is SQLite and there are at least
 * `INLINE_BELOW` of them; 0 (the main thread) otherwise, or for one at a time.
 */
export async function threadCount(bench: Bench, sites: readonly SiteRecord[], concurrency?: number): Promise<number> {
  if (sites.length < INLINE_BELOW || (await serversOnly(sites))) return 0
  const size = Math.min(concurrency ?? bench.config.migrate.concurrency, sites.length)
  return size > 1 ? size : 0
}

/**
 * What a pool's threads do with each site, and the plain data they are started with: migrate
 * it with the plan, or roll it back with the bench's migrations and the target.
 */
export type ThreadTask =
  { task: 'migrate'; plan: MigrationPlan } | { task: 'rollback'; known: BenchMigrations; target: SiteRollbackTarget }

/** A site's job and its result, by task. */
export type JobOf<T extends ThreadTask> = T extends { task: 'migrate' } ? SiteJob : RollbackJob
export type ResultOf<T extends ThreadTask> = T extends { task: 'migrate' } ? SiteOutcome : SiteRollbackResult

/** The message a thread gets: one site's job, or the word to end. */
export type ToThread<T extends ThreadTask = ThreadTask> = { job: JobOf<T> } | { exit: true }

interface Waiting<T extends ThreadTask> {
  job: JobOf<T>
  /** Undefined only when `startIf` said no. */
  resolve: (result: ResultOf<T> | undefined) => void
  /** Asked as a thread takes the job: false, and it resolves with `undefined` instead (not started). */
  startIf?: () => boolean
}

interface Thread<T extends ThreadTask> {
  worker: Worker
  /** The site it is working on. */
  busy: Waiting<T> | undefined
  /** Why it is gone (an error, or an exit nobody asked for); it takes no more sites. */
  crash: Error | undefined
  exited: Promise<void>
}

/**
 * A pool of worker threads (`dist/migrate-worker.js`, `migrate/worker-entry.ts`), each working
 * on one site at a time: `run` hands a site to a free thread, waiting for one when all are busy.
 * better-sqlite3 is synchronous, so SQLite sites (and the fsyncs of their commits) overlap only
 * across threads. A thread that crashes (a migration calling `process.exit`, a native fault)
 * fails its site with `crashed` and takes no more; the others go on; once none is left, every
 * site fails the same way. `close` ends the threads; always call it.
 *
 * @example
 * const threads = new SiteThreads({ task: 'migrate', plan }, 2, (job, e) => failed(job, e))
 * try { await Promise.all(jobs.map(threads.run)) } finally { await threads.close() }
 */
export class SiteThreads<T extends ThreadTask> {
  readonly #threads: Thread<T>[]
  readonly #waiting: Waiting<T>[] = []
  readonly #crashed: (job: JobOf<T>, error: Error) => ResultOf<T>

  constructor(task: T, size: number, crashed: (job: JobOf<T>, error: Error) => ResultOf<T>) {
    this.#crashed = crashed
    const entry = join(packageRoot(), 'dist', 'migrate-worker.js')
    this.#threads = Array.from({ length: Math.max(1, size) }, () => this.#start(entry, task))
  }

  #start(entry: string, task: T): Thread<T> {
    const worker = new Worker(entry, { workerData: task, resourceLimits: { maxYoungGenerationSizeMb: YOUNG_MB } })
    const thread: Thread<T> = {
      worker,
      busy: undefined,
      crash: undefined,
      exited: new Promise<void>((resolve) => worker.once('exit', () => resolve())),
    }
    const lost = (error: Error) => {
      thread.crash ??= error
      const busy = thread.busy
      thread.busy = undefined
      busy?.resolve(this.#crashed(busy.job, thread.crash))
      this.#dispatch()
    }
    worker.on('message', (message: { result: ResultOf<T> }) => {
      const busy = thread.busy
      thread.busy = undefined
      busy?.resolve(message.result)
      this.#dispatch()
    })
    worker.on('error', lost)
    // A thread that ended without an error (process.exit in a migration, a terminated thread)
    // fails its site the same way; an exit after `close` finds it idle.
    worker.on('exit', (code) => lost(new Error(`it exited with code ${code}`)))
    return thread
  }

  /** Whether a thread is left to take sites. */
  get usable(): boolean {
    return this.#threads.some((t) => t.crash === undefined)
  }

  /** Runs one site on the next free thread; its result (never throws). */
  readonly run = (job: JobOf<T>): Promise<ResultOf<T>> =>
    new Promise((resolve) => {
      // Without `startIf` the job always starts: its result is never undefined.
      this.#waiting.push({ job, resolve: (result) => resolve(result!) })
      this.#dispatch()
    })

  /**
   * `run`, for a job queued ahead of a free thread: `startIf` is asked when a thread takes it,
   * and when it says no (the run is stopping meanwhile), the job is not started and the result
   * is undefined.
   */
  readonly runIf = (job: JobOf<T>, startIf: () => boolean): Promise<ResultOf<T> | undefined> =>
    new Promise((resolve) => {
      this.#waiting.push({ job, resolve, startIf })
      this.#dispatch()
    })

  #dispatch(): void {
    for (const thread of this.#threads) {
      if (thread.crash || thread.busy) continue
      let next = this.#waiting.shift()
      while (next?.startIf && !next.startIf()) {
        next.resolve(undefined)
        next = this.#waiting.shift()
      }
      if (!next) return
      thread.busy = next
      thread.worker.postMessage({ job: next.job } satisfies ToThread<T>)
    }
    if (this.usable) return
    const why = this.#threads[this.#threads.length - 1]?.crash ?? new Error('no thread is left')
    for (const { job, resolve } of this.#waiting.splice(0)) resolve(this.#crashed(job, why))
  }

  /** Ends every thread and waits for them to exit; called once no site is in flight. */
  async close(): Promise<void> {
    for (const thread of this.#threads) if (!thread.crash) thread.worker.postMessage({ exit: true } satisfies ToThread)
    await Promise.all(this.#threads.map((t) => t.exited))
  }
}
