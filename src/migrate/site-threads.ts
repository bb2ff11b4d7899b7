import { join } from 'node:path'
import type { Worker } from 'node:worker_threads'
import type { Bench } from '../bench.js'
import { getDriver } from '../databases/index.js'
import type { SiteRecord } from '../registry/registry.js'
import { lazyBuiltin } from '../util/lazy-builtin.js'
import { packageRoot } from '../util/library-path.js'
import type { MigrationPlan, SiteJob, SiteOutcome } from './site-migrator.js'
import type { BenchMigrations, RollbackJob, SiteRollbackResult, SiteRollbackTarget } from './site-rollback.js'

const workerThreads = lazyBuiltin<typeof import('node:worker_threads')>('node:worker_threads')

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

/** A thread's answer to one job, in the order it got them: the result, or that it did not start it (halted). */
export type FromThread<T extends ThreadTask = ThreadTask> = { result: ResultOf<T> } | { notStarted: true }

/** What a thread is started with: its task, and the flag that halts it (see `SiteThreads` `halt`). */
export type ThreadData<T extends ThreadTask = ThreadTask> = T & { halt?: Int32Array }

interface Waiting<T extends ThreadTask> {
  job: JobOf<T>
  /** Undefined only when the job was not started: the pool was halted first. */
  resolve: (result: ResultOf<T> | undefined) => void
}

interface Thread<T extends ThreadTask> {
  worker: Worker
  /** The sites handed to it, in order: the first is the one it works on, the others wait in it. */
  given: Waiting<T>[]
  /** Why it is gone (an error, or an exit nobody asked for); it takes no more sites. */
  crash: Error | undefined
  exited: Promise<void>
}

/** How a pool hands out sites. */
export interface SiteThreadsOptions {
  /**
   * Sites handed to a thread beyond the one it works on, so that it starts the next as soon as
   * it finishes one instead of waiting for this thread to answer (default 0). Still one site at
   * a time per thread.
   */
  ahead?: number
  /**
   * A flag (`Int32Array` on a `SharedArrayBuffer`): once its first element is not 0, a site
   * not started yet (here, or waiting in a thread) is not started, and its result is undefined.
   */
  halt?: Int32Array
}

/**
 * A pool of worker threads (`dist/migrate-worker.js`, `migrate/worker-entry.ts`), each working
 * on one site at a time: `run` hands a site to a free thread, waiting for one when all are busy.
 * better-sqlite3 is synchronous, so SQLite sites (and the fsyncs of their commits) overlap only
 * across threads. A thread that crashes (a migration calling `process.exit`, a native fault)
 * fails the site it was working on with `crashed` (the sites waiting in it go to another
 * thread) and takes no more; the others go on; once none is left, every site fails the same
 * way. `close` ends the threads; always call it.
 *
 * @example
 * const threads = new SiteThreads({ task: 'migrate', plan }, 2, (job, e) => failed(job, e))
 * try { await Promise.all(jobs.map(threads.run)) } finally { await threads.close() }
 */
export class SiteThreads<T extends ThreadTask> {
  readonly #threads: Thread<T>[]
  readonly #waiting: Waiting<T>[] = []
  readonly #crashed: (job: JobOf<T>, error: Error) => ResultOf<T>
  readonly #perThread: number
  readonly #halt: Int32Array | undefined

  constructor(
    task: T,
    size: number,
    crashed: (job: JobOf<T>, error: Error) => ResultOf<T>,
    options: SiteThreadsOptions = {},
  ) {
    this.#crashed = crashed
    this.#perThread = 1 + Math.max(0, options.ahead ?? 0)
    this.#halt = options.halt
    const entry = join(packageRoot(), 'dist', 'migrate-worker.js')
    const data: ThreadData<T> = { ...task, halt: options.halt }
    this.#threads = Array.from({ length: Math.max(1, size) }, () => this.#start(entry, data))
  }

  #start(entry: string, data: ThreadData<T>): Thread<T> {
    const { Worker } = workerThreads()
    const worker = new Worker(entry, { workerData: data, resourceLimits: { maxYoungGenerationSizeMb: YOUNG_MB } })
    const thread: Thread<T> = {
      worker,
      given: [],
      crash: undefined,
      exited: new Promise<void>((resolve) => worker.once('exit', () => resolve())),
    }
    const lost = (error: Error) => {
      thread.crash ??= error
      const [working, ...waiting] = thread.given.splice(0)
      working?.resolve(this.#crashed(working.job, thread.crash))
      // The thread takes its sites one after the other: those behind the one it crashed on never started.
      this.#waiting.unshift(...waiting)
      this.#dispatch()
    }
    worker.on('message', (message: FromThread<T>) => {
      thread.given.shift()?.resolve('result' in message ? message.result : undefined)
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

  get #halted(): boolean {
    return this.#halt !== undefined && Atomics.load(this.#halt, 0) !== 0
  }

  /** Runs one site on the next free thread; its result (never throws). Only for a pool without `halt`. */
  readonly run = (job: JobOf<T>): Promise<ResultOf<T>> =>
    new Promise((resolve) => {
      this.#waiting.push({ job, resolve: (result) => resolve(result!) })
      this.#dispatch()
    })

  /** `run` in a pool with `halt`: undefined when the site was not started because the pool was halted first. */
  readonly runUnlessHalted = (job: JobOf<T>): Promise<ResultOf<T> | undefined> =>
    new Promise((resolve) => {
      this.#waiting.push({ job, resolve })
      this.#dispatch()
    })

  #dispatch(): void {
    if (this.#halted) for (const { resolve } of this.#waiting.splice(0)) resolve(undefined)
    // The least loaded thread first, so that sites spread over every thread before any gets one ahead.
    for (let load = 0; load < this.#perThread; load++) {
      for (const thread of this.#threads) {
        if (thread.crash || thread.given.length !== load) continue
        const next = this.#waiting.shift()
        if (!next) return
        thread.given.push(next)
        thread.worker.postMessage({ job: next.job } satisfies ToThread<T>)
      }
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
