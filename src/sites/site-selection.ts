import type { Bench } from '../bench.js'
import { TenancyError, messageOf, usageError } from '../errors.js'
import { usingTenantLease } from '../registry/leases.js'
import { assertSiteName } from '../names.js'
import type { SiteRecord } from '../registry/registry.js'
import type { SitesTable } from '../registry/schema.js'
import { assertHomedHere, isHomedHere } from './site-home.js'
import { requireSite } from './site.js'
import { runOnMachines, type RemoteCommand } from './remote-sites.js'

/**
 * The sites a fleet command acts on (SPEC §8 "Site selection", shared by `backup`, `migrate`,
 * `run`, `execute`, `rollback`): `--site S` (repeatable) or `--site all`, `--skip-site S`,
 * `--with-pending[=bool]`.
 */
export interface SiteSelection {
  /** Sites named with `--site`; `['all']` means every ready site of this machine. */
  sites?: string[]
  /** Sites named with `--skip-site`, left out. */
  skipSites?: string[]
  /** With `all`: include sites of pending tenants; default `pending.include_in_queries`. */
  withPending?: boolean
  /** Only this machine's sites (`--local`): `all` leaves other machines' out, and none is sent to them. */
  local?: boolean
}

/** What of a site's row the selection reads. */
export type SelectableSite = Pick<SitesTable, 'name' | 'state' | 'host'>

/** How a fleet command goes over its sites: `--concurrency N`, `--skip-failing`, Ctrl-C. */
export interface SiteRunOptions {
  concurrency?: number
  skipFailing?: boolean
  signal?: AbortSignal
}

/** What every per-site result of a fleet command has. */
export interface SiteOutcome {
  site: string
  status: string
  error: string | null
}

/** Why a site was not started: an earlier one failed (`skipped`) or the run was interrupted. */
export type NotStarted = 'skipped' | 'interrupted'

/** Why a site got no work: not started, failed by throwing, or on a machine with no live worker. */
export type BlankStatus = 'failed' | NotStarted | 'unreachable'

/** The `error` of a site a fleet command (`backup`, `rollback`, …) did not start. */
export function notStartedReason(command: string, why: NotStarted): string {
  return why === 'interrupted'
    ? `not started: ${command} was interrupted`
    : 'an earlier site failed, so it was not started (use --skip-failing to try every site)'
}

/**
 * The sites a selection names, in the registry's order. With no `--site` the command acts on the
 * default site (`TENANCY_SITE`, `tenancy use`), and with none of those either it is exit 2. Named sites
 * must exist (exit 2 naming the first that does not) and are kept whatever their state, so their
 * command reports why it cannot act on them; `all` is every ready site, on every machine of a shared
 * registry (with `local`, of this machine only). `listed`: every site's row (or the columns the
 * selection reads), when the caller has listed them already: a fleet of thousands is read once.
 */
export async function selectSites(bench: Bench, selection: SiteSelection): Promise<SiteRecord[]>
export async function selectSites<S extends SelectableSite>(
  bench: Bench,
  selection: SiteSelection,
  listed: readonly S[],
): Promise<S[]>
export async function selectSites(
  bench: Bench,
  selection: SiteSelection,
  listed?: readonly SelectableSite[],
): Promise<SelectableSite[]> {
  const fallback = bench.defaultSite
  const given = selection.sites?.length ? selection.sites : fallback ? [fallback] : []
  if (given.length === 0)
    throw usageError('no site given and no default site: give --site S or --site all (or set one with "tenancy use S")')
  const everything = given.includes('all')
  if (everything && given.length > 1) throw usageError('give --site all alone, or name sites with --site S')
  const named = everything ? [] : given.map(assertSiteName)
  const skipped = new Set((selection.skipSites ?? []).map(assertSiteName))
  const registry = await bench.registry()
  const all = listed ?? (await registry.listSites())
  const known = new Set(all.map((s) => s.name))
  const missing = [...named, ...skipped].find((s) => !known.has(s))
  if (missing) throw usageError(`site "${missing}" does not exist; run "tenancy list-sites"`)
  if (!everything) {
    const wanted = new Set(named)
    return all.filter((s) => wanted.has(s.name) && !skipped.has(s.name))
  }
  const withPending = selection.withPending ?? bench.config.pending.include_in_queries
  const pending = withPending ? new Set<string>() : await pendingSites(bench)
  return all.filter(
    (s) =>
      s.state === 'ready' &&
      !skipped.has(s.name) &&
      !pending.has(s.name) &&
      (!selection.local || isHomedHere(bench, registry.kind, s)),
  )
}

async function pendingSites(bench: Bench): Promise<Set<string>> {
  const tenants = await (await bench.registry()).tenantsBySite()
  return new Set([...tenants].filter(([, t]) => t.pending_since !== null).map(([site]) => site))
}

/** How long sites run back to back before the event loop gets a turn (to see Ctrl-C). */
const YIELD_EVERY_MS = 15

/**
 * Runs `run` for each site, `concurrency` at a time (default 1), and gives every site's
 * result in the order of `sites`. `run` must not throw: it returns a failed result instead.
 * Without `skipFailing`, the first failure stops new sites from starting; those get
 * `notStarted(site, 'skipped')`. After an abort, sites not started get `'interrupted'`.
 */
export async function forEachSite<R extends SiteOutcome>(
  sites: readonly string[],
  options: SiteRunOptions,
  run: (site: string) => Promise<R>,
  notStarted: (site: string, why: NotStarted) => R,
): Promise<{ results: R[]; interrupted: boolean }> {
  const results = new Map<string, R>()
  const queue = [...sites]
  let stop = false
  let lastYield = performance.now()
  const lane = async () => {
    for (let site = queue.shift(); site !== undefined; site = queue.shift()) {
      // better-sqlite3 answers synchronously, so a lane of SQLite sites would be one chain of
      // microtasks: yield to the event loop now and then, or Ctrl-C is not seen until the end.
      if (performance.now() - lastYield >= YIELD_EVERY_MS) {
        await new Promise((resolve) => setImmediate(resolve))
        lastYield = performance.now()
      }
      if (stop || options.signal?.aborted) {
        queue.unshift(site)
        return
      }
      const result = await run(site)
      results.set(site, result)
      if (result.status === 'failed' && !options.skipFailing) stop = true
    }
  }
  const lanes = Math.max(1, Math.min(options.concurrency ?? 1, sites.length))
  await Promise.all(Array.from({ length: lanes }, lane))
  const interrupted = options.signal?.aborted === true
  for (const site of queue) results.set(site, notStarted(site, interrupted ? 'interrupted' : 'skipped'))
  return { results: sites.map((s) => results.get(s)!), interrupted }
}

/** The selected sites that belong to a pending tenant, with its id. */
export async function pendingTenants(bench: Bench, sites: SiteRecord[]): Promise<Map<string, number>> {
  const owners = await (await bench.registry()).tenantsBySite()
  return new Map(
    sites
      .filter((s) => s.tenant_id !== null && owners.get(s.name)?.pending_since != null)
      .map((s) => [s.name, s.tenant_id!]),
  )
}

/** How long a fleet command waits for a pending tenant's lease held by a live process (a pull, a migrate). */
const PENDING_LEASE_WAIT_MS = 30_000

/**
 * Runs `fn` holding a pending tenant's lease, so a pull (which renames the site) cannot take
 * the tenant while a fleet command works on its site: the pull takes another one, or none.
 */
export async function holdingPendingTenant<T>(bench: Bench, site: string, tenantId: number, fn: () => Promise<T>) {
  const deadline = performance.now() + PENDING_LEASE_WAIT_MS
  const outcome = await usingTenantLease(bench, tenantId, { waitWhile: () => performance.now() < deadline, site }, fn)
  if (!outcome.taken)
    throw new TenancyError(`site "${site}" is held by ${outcome.heldBy} (a pull or a migrate); try it again later`)
  return outcome.value
}

/** One fleet command's work on a site, and the result of a site it did no work on. */
export interface FleetCommand<R extends SiteOutcome> {
  /** The command's name, for messages: `backup`, `run`, … */
  name: string
  /** The sites, when the command selected them itself (to size its work first); else `selectSites`. */
  sites?: SiteRecord[]
  /** The work on one site (ready and homed here); a throw is that site's failure. */
  run: (site: SiteRecord) => Promise<R>
  /** The result of a site that failed by throwing (`error` its message), was not started or is unreachable. */
  blank: (site: string, status: BlankStatus, error: string, durationMs: number) => R
  /**
   * What the machine a site lives on runs for it (SPEC §10): sites homed elsewhere go to their
   * machines' workers as this, unless the selection is `local`. Without it they fail here.
   */
  remote?: RemoteCommand
}

/** What a fleet command's options add to the selection: how to go over the sites, and progress. */
export interface FleetOptions<R extends SiteOutcome> extends SiteSelection, SiteRunOptions {
  /** Called once the sites are chosen, before any starts, with how many there are. */
  onStart?: (total: number) => void
  /**
   * Called as each site finishes, with what it threw when it failed by throwing (for `--verbose`);
   * also for each site not started (skipped after a failure, or interrupted), once the run ends.
   */
  onSite?: (result: R, done: number, total: number, thrown?: unknown) => void
}

/** Migrate's summary shape: every site's result, a count per status, whether Ctrl-C stopped it, the time. */
export type FleetSummary<R extends SiteOutcome, Counted extends string> = {
  sites: R[]
  interrupted: boolean
  duration_ms: number
} & Record<Counted, number>

/**
 * A fleet command over its selection (SPEC §8): the sites `selectSites` picks, each checked
 * ready (a named site that is not says why) and homed on this machine, then `command.run`
 * for each through `forEachSite` — a pending tenant's site holding the tenant's lease, so a
 * pull cannot rename it meanwhile — and the summary with a count of each status in
 * `counted`. Per-site failures are results, never exceptions.
 *
 * @example
 * const summary = await overSites(bench, options, { name: 'backup', run, blank }, ['backed_up', 'failed', 'skipped'])
 */
export async function overSites<R extends SiteOutcome, Counted extends R['status']>(
  bench: Bench,
  options: FleetOptions<R>,
  command: FleetCommand<R>,
  counted: readonly Counted[],
): Promise<FleetSummary<R, Counted>> {
  const started = performance.now()
  const chosen = command.sites ?? (await selectSites(bench, options))
  const registryKind = (await bench.registry()).kind
  // Ready sites homed on other machines go to their workers; the rest are this machine's to do
  // (or to say why not).
  const sendable = (s: SiteRecord) =>
    command.remote !== undefined && !options.local && s.state === 'ready' && !isHomedHere(bench, registryKind, s)
  const remote = chosen.filter(sendable)
  const selected = chosen.filter((s) => !sendable(s))
  const records = new Map(selected.map((s) => [s.name, s]))
  const pendingTenantOf = await pendingTenants(bench, selected)
  const total = chosen.length
  options.onStart?.(total)
  let done = 0
  const remoteResults = new Map<string, R>()
  const sent = runOnMachines<R>(bench, remote, command.remote!, {
    signal: options.signal,
    onResult: (result) => {
      remoteResults.set(result.site, result)
      options.onSite?.(result, ++done, total)
    },
    blank: (site, status, error) => command.blank(site, status, error, 0),
  })
  const work = async (record: SiteRecord): Promise<R> => {
    // A named site is kept whatever its state: requireSite reads it again and says why (or finds it ready now).
    if (record.state !== 'ready') await requireSite(bench, record.name)
    assertHomedHere(bench, registryKind, record, command.name)
    return command.run(record)
  }
  const { results, interrupted: stopped } = await forEachSite<R>(
    selected.map((s) => s.name),
    options,
    async (site) => {
      const siteStarted = performance.now()
      let result: R
      let thrown: unknown
      try {
        const record = records.get(site)!
        const tenantId = pendingTenantOf.get(site)
        result =
          tenantId === undefined
            ? await work(record)
            : await holdingPendingTenant(bench, site, tenantId, () => work(record))
      } catch (error) {
        thrown = error
        result = command.blank(site, 'failed', messageOf(error), Math.round(performance.now() - siteStarted))
      }
      options.onSite?.(result, ++done, total, thrown)
      return result
    },
    (site, why) => {
      // Said like any other site's result: a worker running this for another machine records it
      // (the sender would otherwise find the site without a result), a terminal shows its line.
      const result = command.blank(site, why, notStartedReason(command.name, why), 0)
      options.onSite?.(result, ++done, total)
      return result
    },
  )
  await sent
  // Every site in the selection's order, wherever it ran.
  const here = new Map(results.map((r) => [r.site, r]))
  const all = chosen.map((s) => here.get(s.name) ?? remoteResults.get(s.name)!)
  const counts = Object.fromEntries(counted.map((c) => [c, all.filter((r) => r.status === c).length]))
  return {
    sites: all,
    ...(counts as Record<Counted, number>),
    interrupted: stopped || options.signal?.aborted === true,
    duration_ms: Math.round(performance.now() - started),
  }
}
