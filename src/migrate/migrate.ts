import { existsSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { join } from 'node:path'
import type { Bench } from '../bench.js'
import { TenantNotFoundError } from '../errors.js'
import { listBenchApps, resolveInstallOrder } from '../apps/manifest.js'
import { homeName, isHomedHere } from '../sites/site-home.js'
import { notStartedReason, selectSites } from '../sites/site-selection.js'
import { runOnMachines } from '../sites/remote-sites.js'
import { RESTORE_INTENT } from '../sites/site.js'
import { ownerPurpose, usingTenantLease } from '../registry/leases.js'
import { now, type InstalledAppSummary, type Registry } from '../registry/registry.js'
import type { SitesTable } from '../registry/schema.js'
import {
  checkSite,
  migrateSite,
  planApps,
  type MigrationPlan,
  type SiteCheck,
  type SiteJob,
  type SiteOutcome,
  type SiteResult,
} from './site-migrator.js'
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

/** A site as migrate holds it: what it reads of the site's row (`apps` as the registry holds it, JSON). */
type FleetSite = Pick<SitesTable, 'name' | 'state' | 'host' | 'db_type' | 'apps'>

/** Server sites migrated at once by default: the work is round trips, not CPU. */
const SERVER_LANES = 8

/** How long sites run back to back before the event loop gets a turn (to see Ctrl-C). */
const YIELD_EVERY_MS = 15

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
  // Only the columns migrate reads: a fleet of 10,000 sites is held for the whole run.
  const listed: FleetSite[] = await registry.db
    .selectFrom('sites')
    .select(['name', 'state', 'host', 'db_type', 'apps'])
    .orderBy('name')
    .execute()
  const selected = await selectSites(
    bench,
    { sites: everything ? ['all'] : options.sites, skipSites: options.skipSites, withPending: true },
    listed,
  )
  const named = everything ? undefined : new Set(selected.map((s) => s.name))
  const skipped = new Set(options.skipSites ?? [])
  const all = listed.filter((s) => !skipped.has(s.name))
  const pendingTenants = new Map(
    (
      await registry.db.selectFrom('tenants').select(['id', 'site']).where('pending_since', 'is not', null).execute()
    ).map((t) => [t.site, t.id]),
  )
  const withPending = options.withPending ?? bench.config.pending.include_in_queries
  const homedHere = (s: FleetSite) => isHomedHere(bench, registry.kind, s)
  const picked = all.filter((s) =>
    named
      ? named.has(s.name)
      : s.state === 'ready' && (withPending || !pendingTenants.has(s.name)) && (!options.local || homedHere(s)),
  )
  // Ready sites of other machines are migrated there, by their workers, in the same run.
  const sendable = (s: FleetSite) => !options.local && s.state === 'ready' && !homedHere(s)
  const remote = picked.filter(sendable)
  const chosen = picked.filter((s) => !sendable(s))
  const apps = listBenchApps(bench)
  const plan = planApps(
    resolveInstallOrder(
      bench,
      apps.map((a) => a.name),
    ),
  )

  const results: SiteResult[] = []
  let stop = false
  // Up once the run stops (a failure without --skip-failing, or Ctrl-C): threads start no more sites.
  const halt = new Int32Array(new SharedArrayBuffer(4))
  const halted = () => Atomics.store(halt, 0, 1)
  const total = picked.length
  const shared = new SharedLists()
  const record = (result: SiteResult) => {
    results.push(shared.of(result))
    if (result.status === 'failed' && !options.skipFailing) {
      stop = true
      halted()
    }
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
  let lastYield = performance.now()
  /** The next site to migrate; undefined when none is left or the run stops. Sites not to migrate here are skipped. */
  const nextSite = async (): Promise<FleetSite | undefined> => {
    // better-sqlite3 answers synchronously, so a lane of SQLite sites is one long chain of
    // microtasks: yield to the event loop now and then, or Ctrl-C is not seen until the end.
    if (performance.now() - lastYield >= YIELD_EVERY_MS) {
      await new Promise((resolve) => setImmediate(resolve))
      lastYield = performance.now()
    }
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
  const summaries = new SummaryWrites(registry, options.dryRun === true)
  // A pending tenant's site can be pulled (renamed) at any moment: its tenant's lease is held
  // while the site migrates, and the site is skipped if that is not possible. A site `run`
  // did not start (the run stopped while it waited for a thread) goes back to the queue.
  const migrateOne = async (site: FleetSite, run: RunSite): Promise<void> => {
    const job: SiteJob = { site: site.name, path: bench.sitePath(site.name), dryRun: options.dryRun }
    const tenantId = pendingTenants.get(site.name)
    const done = async (outcome: LaneOutcome) => {
      if (!outcome.result) {
        queue.unshift(site)
        return
      }
      await summaries.note(site, outcome.apps)
      record(outcome.result)
    }
    if (tenantId === undefined) return done(await run(job))
    const leased = await underPendingLease(registry, tenantId, site.name, options.signal, () => run(job))
    if ('skipped' in leased) return skip(site.name, leased.skipped)
    await done(leased)
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

  options.signal?.addEventListener('abort', halted)
  try {
    if (onServers) {
      // Every lane finishes (and releases its leases) before an error is reported.
      const lanes = await Promise.allSettled(Array.from({ length: concurrency }, () => lane(inline)))
      const broken = lanes.find((l): l is PromiseRejectedResult => l.status === 'rejected')
      if (broken) throw broken.reason
    } else if (concurrency === 1 || chosen.length < INLINE_BELOW) {
      await lane(inline)
    } else {
      await runInThreads(plan, concurrency, halt, lane)
    }
    await summaries.flush()
  } finally {
    options.signal?.removeEventListener('abort', halted)
    await summaries.flush().catch(() => {})
  }
  await sent
  const interrupted = options.signal?.aborted === true
  for (const site of queue) {
    if (interrupted)
      record({
        site: site.name,
        status: 'interrupted',
        applied: [],
        error: notStartedReason('migrate', 'interrupted'),
        duration_ms: 0,
      })
    else skip(site.name, notStartedReason('migrate', 'skipped'))
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
async function underPendingLease<T extends object>(
  registry: Registry,
  tenantId: number,
  site: string,
  signal: AbortSignal | undefined,
  fn: () => Promise<T>,
): Promise<T | { skipped: string }> {
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
    // Its tenant went away before the lease was taken: skipped, as when it is held. Anything
    // else (the registry gone) is the run's failure, not a skip.
    if (taken || !(error instanceof TenantNotFoundError)) throw error
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

/** How one site went: its result (undefined: not started, the run stopped first) and its installed apps when read. */
type LaneOutcome = SiteOutcome | (SiteCheck & { result: undefined })

/** Migrates one site, here or in a worker thread, and gives its outcome (never throws). */
type RunSite = (job: SiteJob) => Promise<LaneOutcome>

/**
 * Sites each thread holds beyond the one it works on: it starts the next as soon as it has
 * finished one, without waiting for this thread (busy, or not scheduled on a loaded machine)
 * to answer. A site waiting in a thread when the run stops is not started (the halt flag).
 */
const AHEAD = 1

/** Lanes per worker thread: enough to keep every thread's sites handed to it. */
const LANES_PER_THREAD = 1 + AHEAD

/**
 * Sites go to a pool of `size` worker threads, started when the first site with work is found,
 * so a deploy that finds every site up to date starts no thread. While sites are found up to
 * date, each is read here first (`checkSite`: one read, no lock, no migration code) and only
 * those with work go to a thread; once one has work, the next go to the threads unread (a
 * thread reads each site anyway, on the connection it migrates it with) until a thread finds
 * one up to date. A thread goes straight into each site's transaction and reads the site
 * there. Migrations run only in the threads: one that ends its thread (`process.exit`) fails
 * its site and leaves this process running. `halt` up: no more sites start.
 */
async function runInThreads(
  plan: MigrationPlan,
  size: number,
  halt: Int32Array,
  lane: (run: RunSite, usable: () => boolean) => Promise<void>,
): Promise<void> {
  let threads: SiteThreads<{ task: 'migrate'; plan: MigrationPlan }> | undefined
  let readHere = true
  const run: RunSite = async (job) => {
    const checked = readHere
    if (checked) {
      const check = await checkSite(plan, job)
      if (check.result) return { ...check, result: check.result }
      readHere = false
    }
    threads ??= new SiteThreads(
      { task: 'migrate', plan },
      size,
      (crashed, error) => ({
        result: {
          site: crashed.site,
          status: 'failed',
          applied: [],
          error: `migrate worker crashed: ${error.message}`,
          duration_ms: 0,
        },
      }),
      { ahead: AHEAD, halt },
    )
    const outcome = await threads.runUnlessHalted({ ...job, skipFirstRead: true })
    if (!checked && outcome?.result.status === 'up_to_date') readHere = true
    // The thread reads the site in its transaction: its outcome says what the site has now.
    return outcome ?? { result: undefined }
  }
  try {
    await Promise.all(Array.from({ length: size * LANES_PER_THREAD }, () => lane(run, () => threads?.usable ?? true)))
  } finally {
    await threads?.close()
  }
}

/**
 * One copy of each list that site results repeat (`applied`, `fixtures_synced`, `apps`, …): a
 * deploy gives thousands of sites the same ones, and each result kept until the summary would
 * otherwise hold copies of its own (a thread's result arrives as a fresh copy).
 */
class SharedLists {
  readonly #known = new Map<string, unknown>()

  /** `result`, its lists replaced by the copies kept for equal ones. */
  of(result: SiteResult): SiteResult {
    for (const key of ['applied', 'pending', 'fixtures_synced', 'versions', 'apps'] as const) {
      const list = result[key]
      if (list === undefined) continue
      const text = JSON.stringify(list)
      const known = this.#known.get(text)
      if (known === undefined) this.#known.set(text, list)
      else (result as unknown as Record<string, unknown>)[key] = known
    }
    return result
  }
}

/** Summaries written in one registry transaction. */
const SUMMARY_BATCH = 100

/**
 * The registry's summary of each site's installed apps (`sites.apps`, what `list-sites` shows),
 * kept to what the sites say: written only where it differs, and many sites in one registry
 * transaction rather than one each. A run killed before a batch is written leaves those
 * summaries behind; the next migrate reads the sites and writes them (a dry run writes none).
 */
class SummaryWrites {
  readonly #registry: Registry
  readonly #readOnly: boolean
  #due: { site: string; apps: string }[] = []

  constructor(registry: Registry, readOnly: boolean) {
    this.#registry = registry
    this.#readOnly = readOnly
  }

  /** Notes what `site` has installed now (undefined: unknown), writing a batch when one is full. */
  async note(site: FleetSite, apps: InstalledAppSummary[] | undefined): Promise<void> {
    if (this.#readOnly || !apps) return
    const json = JSON.stringify(apps)
    if (json === site.apps) return
    this.#due.push({ site: site.name, apps: json })
    if (this.#due.length >= SUMMARY_BATCH) await this.flush()
  }

  async flush(): Promise<void> {
    const due = this.#due.splice(0)
    if (due.length === 0) return
    const at = now()
    await this.#registry.writeTransaction(async (trx) => {
      for (const { site, apps } of due)
        await trx.updateTable('sites').set({ apps, updated_at: at }).where('name', '=', site).execute()
    })
  }
}
