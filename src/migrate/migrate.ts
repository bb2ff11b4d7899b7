import { availableParallelism } from 'node:os'
import { join } from 'node:path'
import { Worker } from 'node:worker_threads'
import type { Bench } from '../bench.js'
import { listBenchApps, resolveInstallOrder } from '../apps/manifest.js'
import { getDriver } from '../databases/index.js'
import { usageError } from '../errors.js'
import { assertSiteName } from '../names.js'
import { homeName, isHomedHere } from '../sites/site-home.js'
import { packageRoot } from '../util/library-path.js'
import { ownerPurpose, tryTenantLease, type TenantLease } from '../provisioning/lease.js'
import { migrateSite, planApps, type MigrationPlan, type SiteJob, type SiteResult } from './site-migrator.js'

export interface MigrateOptions {
  /** Only these sites (each must exist). */
  sites?: string[]
  /** Include sites of pending tenants; default `pending.include_in_queries`. */
  withPending?: boolean
  concurrency?: number
  skipFailing?: boolean
  dryRun?: boolean
  signal?: AbortSignal
  onSite?: (result: SiteResult, done: number, total: number) => void
}

export interface MigrateResult {
  sites: SiteResult[]
  migrated: number
  failed: number
  up_to_date: number
  skipped: number
  /** Whether Ctrl-C (or SIGTERM) stopped the run; the sites it did not start have status `interrupted`. */
  interrupted: boolean
  duration_ms: number
}

// Below this many sites, thread start-up costs more than it saves.
const INLINE_BELOW = 16
/** Server sites migrated at once by default: the work is round trips, not CPU. */
const SERVER_LANES = 8

/**
 * `tenancy migrate`: every ready site (or those named), pending tenants' sites per
 * `withPending`, each brought up to date by `migrateSite`. SQLite sites run in a pool of
 * worker threads fed from one queue (a slow site never holds up a fixed chunk). Without
 * `skipFailing`, the first failure stops new sites from starting; the rest are `skipped`.
 */
export async function migrate(bench: Bench, options: MigrateOptions = {}): Promise<MigrateResult> {
  const started = performance.now()
  const registry = await bench.registry()
  const named = options.sites?.map(assertSiteName)
  const all = await registry.listSites()
  if (named) {
    const known = new Set(all.map((s) => s.name))
    const missing = named.filter((s) => !known.has(s))
    if (missing.length > 0) throw usageError(`site "${missing[0]}" does not exist; run "tenancy list-sites"`)
  }
  const pendingTenants = new Map(
    (
      await registry.db.selectFrom('tenants').select(['id', 'site']).where('pending_since', 'is not', null).execute()
    ).map((t) => [t.site, t.id]),
  )
  const withPending = options.withPending ?? bench.config.pending.include_in_queries
  const chosen = all.filter((s) =>
    named ? named.includes(s.name) : s.state === 'ready' && (withPending || !pendingTenants.has(s.name)),
  )
  const apps = listBenchApps(bench)
  const plan = planApps(
    resolveInstallOrder(
      bench,
      apps.map((a) => a.name),
    ),
  )

  const results: SiteResult[] = []
  let stop = false
  const record = (result: SiteResult) => {
    results.push(result)
    if (result.status === 'failed' && !options.skipFailing) stop = true
    options.onSite?.(result, results.length, chosen.length)
  }
  const skip = (site: string, why: string) =>
    record({ site, status: 'skipped', applied: [], error: why, duration_ms: 0 })
  const queue = [...chosen]
  const leases = new Map<string, TenantLease>()
  // A pending tenant's site can be pulled (renamed) at any moment: hold the tenant's lease while
  // its site migrates, which pulls and pending-clear respect, and skip it if that is not possible.
  const next = async (): Promise<SiteJob | undefined> => {
    // better-sqlite3 answers synchronously, so a lane of SQLite sites is one long chain of
    // microtasks: yield to the event loop once per site, or Ctrl-C is not seen until the end.
    await new Promise((resolve) => setImmediate(resolve))
    for (let site = queue.shift(); site; site = queue.shift()) {
      if (stop || options.signal?.aborted) {
        queue.unshift(site)
        return undefined
      }
      if (site.state !== 'ready') {
        skip(site.name, `site is in state "${site.state}"; see "tenancy doctor"`)
        continue
      }
      if (!isHomedHere(bench, registry.kind, site)) {
        skip(site.name, `the site lives on ${homeName(site)}; run migrate there`)
        continue
      }
      const tenantId = pendingTenants.get(site.name)
      if (tenantId !== undefined) {
        let lease = await tryTenantLease(bench, tenantId, 'migrate').catch(() => undefined)
        // Another migrate has the site: wait for it, then see the site as it left it (up to date).
        while (lease && !('owner' in lease) && ownerPurpose(lease.heldBy) === 'migrate' && !options.signal?.aborted) {
          await new Promise((r) => setTimeout(r, 100 + Math.random() * 100))
          lease = await tryTenantLease(bench, tenantId, 'migrate').catch(() => undefined)
        }
        if (!lease || !('owner' in lease)) {
          skip(
            site.name,
            options.signal?.aborted
              ? 'interrupted while another migrate held it'
              : 'its pending tenant is being pulled, provisioned or cleared by another process; run migrate again',
          )
          continue
        }
        const still = await registry.db
          .selectFrom('tenants')
          .select('site')
          .where('id', '=', tenantId)
          .where('pending_since', 'is not', null)
          .executeTakeFirst()
        if (still?.site !== site.name) {
          await lease.release()
          skip(site.name, 'its tenant was pulled from the pool meanwhile; run migrate again')
          continue
        }
        leases.set(site.name, lease)
      }
      return { site: site.name, path: bench.sitePath(site.name), dryRun: options.dryRun }
    }
    return undefined
  }
  const finish = async (result: SiteResult) => {
    await leases.get(result.site)?.release()
    leases.delete(result.site)
    if (result.apps) await registry.setSiteApps(result.site, result.apps)
    record(result)
  }
  // Server sites wait on the network, not the CPU: they run as async lanes on this thread,
  // more of them than there are cores. SQLite sites (or a mix) use worker threads.
  const serversOnly =
    chosen.length > 0 &&
    (await Promise.all([...new Set(chosen.map((s) => s.db_type))].map((t) => getDriver(t)))).every((d) => d.server)
  const wanted =
    options.concurrency ?? bench.config.migrate.concurrency ?? (serversOnly ? SERVER_LANES : availableParallelism())
  const concurrency = Math.max(1, Math.min(wanted, chosen.length))
  const lane = async () => {
    for (let job = await next(); job; job = await next()) await finish(await migrateSite(plan, job))
  }

  if (serversOnly) {
    // Every lane finishes (and releases its leases) before an error is reported.
    const lanes = await Promise.allSettled(Array.from({ length: concurrency }, lane))
    const broken = lanes.find((l): l is PromiseRejectedResult => l.status === 'rejected')
    if (broken) throw broken.reason
  } else if (concurrency === 1 || chosen.length < INLINE_BELOW) {
    await lane()
  } else {
    await runInThreads(plan, concurrency, next, finish)
  }
  const interrupted = options.signal?.aborted === true
  for (const site of queue) {
    if (interrupted)
      record({
        site: site.name,
        status: 'interrupted',
        applied: [],
        error: 'not started: migrate was interrupted',
        duration_ms: 0,
      })
    else skip(site.name, 'an earlier site failed, so it was not started (use --skip-failing to try every site)')
  }
  const count = (status: SiteResult['status']) => results.filter((r) => r.status === status).length
  // Sites finish in any order; the result lists them in the order they were taken up.
  const order = new Map(chosen.map((s, i) => [s.name, i]))
  results.sort((a, b) => (order.get(a.site) ?? 0) - (order.get(b.site) ?? 0))
  return {
    sites: results,
    migrated: count('migrated'),
    failed: count('failed'),
    up_to_date: count('up_to_date'),
    skipped: count('skipped'),
    interrupted,
    duration_ms: Math.round(performance.now() - started),
  }
}

/** A pool of worker threads, each taking the next site from the shared queue when it is free. */
async function runInThreads(
  plan: MigrationPlan,
  size: number,
  next: () => Promise<SiteJob | undefined>,
  finish: (r: SiteResult) => Promise<void>,
): Promise<void> {
  const entry = join(packageRoot(), 'dist', 'migrate-worker.js')
  let id = 0
  await Promise.all(
    Array.from(
      { length: size },
      () =>
        new Promise<void>((resolve) => {
          const worker = new Worker(entry, { workerData: { plan } })
          const inFlight = new Map<number, SiteJob>()
          const feed = async () => {
            const job = await next()
            if (!job) {
              worker.postMessage({ exit: true })
              return
            }
            const jobId = ++id
            inFlight.set(jobId, job)
            worker.postMessage({ id: jobId, job })
          }
          worker.on('message', (message: { id: number; result: SiteResult }) => {
            inFlight.delete(message.id)
            void finish(message.result).then(feed)
          })
          // A crashed thread fails its own site; the other threads go on with the queue.
          worker.on('error', (error) => {
            for (const job of inFlight.values())
              void finish({
                site: job.site,
                status: 'failed',
                applied: [],
                error: `migrate worker crashed: ${error.message}`,
                duration_ms: 0,
              })
            inFlight.clear()
          })
          worker.on('exit', () => resolve())
          void feed()
        }),
    ),
  )
}
