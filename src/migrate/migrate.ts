import { existsSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { join } from 'node:path'
import type { Bench } from '../bench.js'
import { listBenchApps, resolveInstallOrder } from '../apps/manifest.js'
import { homeName, isHomedHere } from '../sites/site-home.js'
import { selectSites } from '../sites/site-selection.js'
import { runOnMachines } from '../sites/remote-sites.js'
import { RESTORE_INTENT } from '../sites/site.js'
import { ownerPurpose, usingTenantLease } from '../registry/leases.js'
import type { Registry, SiteRecord } from '../registry/registry.js'
import { migrateSite, planApps, type MigrationPlan, type SiteJob, type SiteResult } from './site-migrator.js'
import { INLINE_BELOW, SiteThreads, serversOnly } from './site-threads.js'

export interface MigrateOptions {
  /** Only these sites (each must exist); `['all']` or none: every site. */
  sites?: string[]
  /** Leave these sites out (`--skip-site`, each must exist). */
  skipSites?: string[]
  /** Include sites of pending tenants; default `pending.include_in_queries`. */
  withPending?: boolean
  concurrency?: number
  skipFailing?: boolean
  dryRun?: boolean
  /** Only this machine's sites (`--local`); otherwise other machines' go to their workers (SPEC §10). */
  local?: boolean
  signal?: AbortSignal
  onSite?: (result: SiteResult, done: number, total: number) => void
}

export interface MigrateResult {
  sites: SiteResult[]
  migrated: number
  failed: number
  up_to_date: number
  skipped: number
  /** Sites on a machine with no live worker (SPEC §10): not touched. */
  unreachable: number
  /** Whether Ctrl-C (or SIGTERM) stopped the run; the sites it did not start have status `interrupted`. */
  interrupted: boolean
  duration_ms: number
}

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
  // The fleet selection (`--site S`, `--site all`, `--skip-site`); with no --site, every site.
  const everything = !options.sites?.length || options.sites.includes('all')
  const selected = await selectSites(bench, {
    sites: everything ? ['all'] : options.sites,
    skipSites: options.skipSites,
    withPending: true,
  })
  const named = everything ? undefined : selected.map((s) => s.name)
  const skipped = new Set(options.skipSites ?? [])
  const all = (await registry.listSites()).filter((s) => !skipped.has(s.name))
  const pendingTenants = new Map(
    (
      await registry.db.selectFrom('tenants').select(['id', 'site']).where('pending_since', 'is not', null).execute()
    ).map((t) => [t.site, t.id]),
  )
  const withPending = options.withPending ?? bench.config.pending.include_in_queries
  const homedHere = (s: SiteRecord) => isHomedHere(bench, registry.kind, s)
  const picked = all.filter((s) =>
    named
      ? named.includes(s.name)
      : s.state === 'ready' && (withPending || !pendingTenants.has(s.name)) && (!options.local || homedHere(s)),
  )
  // Ready sites of other machines are migrated there, by their workers, in the same run.
  const remote = options.local ? [] : picked.filter((s) => s.state === 'ready' && !homedHere(s))
  const chosen = picked.filter((s) => !remote.includes(s))
  const apps = listBenchApps(bench)
  const plan = planApps(
    resolveInstallOrder(
      bench,
      apps.map((a) => a.name),
    ),
  )

  const results: SiteResult[] = []
  let stop = false
  const total = picked.length
  const record = (result: SiteResult) => {
    results.push(result)
    if (result.status === 'failed' && !options.skipFailing) stop = true
    options.onSite?.(result, results.length, total)
  }
  const sent = runOnMachines<SiteResult>(
    bench,
    remote,
    { command: 'migrate', payload: { dryRun: options.dryRun, skipFailing: options.skipFailing } },
    {
      signal: options.signal,
      onResult: record,
      blank: (site, status, error) => ({ site, status, applied: [], error, duration_ms: 0 }),
    },
  )
  const skip = (site: string, why: string) =>
    record({ site, status: 'skipped', applied: [], error: why, duration_ms: 0 })
  const queue = [...chosen]
  /** The next site to migrate; undefined when none is left or the run stops. Sites not to migrate here are skipped. */
  const nextSite = async (): Promise<SiteRecord | undefined> => {
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
        // Only a site named with --local comes here (the others went to their machine): not done, so failed.
        record({
          site: site.name,
          status: 'failed',
          applied: [],
          error: `the site lives on ${homeName(site)}, and --local keeps migrate to this machine; run it without --local, or there`,
          duration_ms: 0,
        })
        continue
      }
      if (existsSync(join(bench.sitePath(site.name), RESTORE_INTENT))) {
        skip(site.name, 'the site is being restored (the restore migrates it when done); see "tenancy doctor"')
        continue
      }
      return site
    }
    return undefined
  }
  const finish = async (result: SiteResult) => {
    if (result.apps) await registry.setSiteApps(result.site, result.apps)
    record(result)
  }
  // A pending tenant's site can be pulled (renamed) at any moment: its tenant's lease is held
  // while the site migrates, and the site is skipped if that is not possible.
  const migrateOne = async (site: SiteRecord, run: RunSite): Promise<void> => {
    const job: SiteJob = { site: site.name, path: bench.sitePath(site.name), dryRun: options.dryRun }
    const tenantId = pendingTenants.get(site.name)
    if (tenantId === undefined) return finish(await run(job))
    const leased = await underPendingLease(registry, tenantId, site.name, options.signal, () => run(job))
    if ('skipped' in leased) return skip(site.name, leased.skipped)
    await finish(leased)
  }
  // Server sites wait on the network, not the CPU: they run as async lanes on this thread,
  // more of them than there are cores. SQLite sites (or a mix) use worker threads.
  const onServers = await serversOnly(chosen)
  // `migrate.concurrency` when the config sets it; otherwise 8 connections for server sites, a
  // thread per core for SQLite ones (the resolved config fills in the core count either way).
  const configured = (bench.rawConfig.migrate as { concurrency?: unknown } | undefined)?.concurrency
  const wanted =
    options.concurrency ??
    (configured !== undefined ? bench.config.migrate.concurrency : onServers ? SERVER_LANES : availableParallelism())
  const concurrency = Math.max(1, Math.min(wanted, chosen.length))
  /** Migrates sites through `run` one after the other, as long as `usable` says `run` still works. */
  const lane = async (run: RunSite, usable = () => true) => {
    while (usable()) {
      const site = await nextSite()
      if (!site) return
      await migrateOne(site, run)
    }
  }
  const inline: RunSite = (job) => migrateSite(plan, job)

  if (onServers) {
    // Every lane finishes (and releases its leases) before an error is reported.
    const lanes = await Promise.allSettled(Array.from({ length: concurrency }, () => lane(inline)))
    const broken = lanes.find((l): l is PromiseRejectedResult => l.status === 'rejected')
    if (broken) throw broken.reason
  } else if (concurrency === 1 || chosen.length < INLINE_BELOW) {
    await lane(inline)
  } else {
    await runInThreads(plan, concurrency, lane)
  }
  await sent
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
  const order = new Map(picked.map((s, i) => [s.name, i]))
  results.sort((a, b) => (order.get(a.site) ?? 0) - (order.get(b.site) ?? 0))
  return {
    sites: results,
    migrated: count('migrated'),
    failed: count('failed'),
    up_to_date: count('up_to_date'),
    skipped: count('skipped'),
    unreachable: count('unreachable'),
    interrupted,
    duration_ms: Math.round(performance.now() - started),
  }
}

/**
 * Runs `fn` holding the lease of the pending tenant `tenantId` whose site is `site`, which
 * pulls and pending-clear respect, waiting while another migrate holds it. Gives why the
 * site is skipped instead when the lease cannot be had or the tenant was pulled meanwhile.
 */
async function underPendingLease(
  registry: Registry,
  tenantId: number,
  site: string,
  signal: AbortSignal | undefined,
  fn: () => Promise<SiteResult>,
): Promise<SiteResult | { skipped: string }> {
  let taken = false
  const leased = await usingTenantLease(
    registry,
    tenantId,
    {
      purpose: 'migrate',
      // Another migrate has the site: wait for it, then see the site as it left it (up to date).
      waitWhile: (held) => ownerPurpose(held.heldBy) === 'migrate' && !signal?.aborted,
    },
    async () => {
      taken = true
      const still = await registry.db
        .selectFrom('tenants')
        .select('site')
        .where('id', '=', tenantId)
        .where('pending_since', 'is not', null)
        .executeTakeFirst()
      return still?.site === site ? fn() : undefined
    },
  ).catch((error: unknown) => {
    // Taking the lease failed (its tenant went away meanwhile): skipped, as when it is held.
    if (taken) throw error
    return undefined
  })
  if (!leased?.taken)
    return {
      skipped: signal?.aborted
        ? 'interrupted while another migrate held it'
        : 'its pending tenant is being pulled, provisioned or cleared by another process; run migrate again',
    }
  return leased.value ?? { skipped: 'its tenant was pulled from the pool meanwhile; run migrate again' }
}

/** Migrates one site, here or in a worker thread, and gives its result (never throws). */
type RunSite = (job: SiteJob) => Promise<SiteResult>

/** A pool of `size` worker threads, each running a `lane` that takes the next site from the shared queue. */
async function runInThreads(
  plan: MigrationPlan,
  size: number,
  lane: (run: RunSite, usable: () => boolean) => Promise<void>,
): Promise<void> {
  const threads = new SiteThreads({ task: 'migrate', plan }, size, (job, error) => ({
    site: job.site,
    status: 'failed',
    applied: [],
    error: `migrate worker crashed: ${error.message}`,
    duration_ms: 0,
  }))
  try {
    await Promise.all(Array.from({ length: size }, () => lane(threads.run, () => threads.usable)))
  } finally {
    await threads.close()
  }
}
