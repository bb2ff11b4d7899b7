import type { Bench } from '../bench.js'
import { TenancyError, usageError } from '../errors.js'
import { usingTenantLease } from '../registry/leases.js'
import { assertSiteName } from '../names.js'
import type { SiteRecord } from '../registry/registry.js'
import { isHomedHere } from './site-home.js'

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
}

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
 * command reports why it cannot act on them; `all` is every ready site homed on this machine.
 */
export async function selectSites(bench: Bench, selection: SiteSelection): Promise<SiteRecord[]> {
  const fallback = bench.defaultSite
  const given = selection.sites?.length ? selection.sites : fallback ? [fallback] : []
  if (given.length === 0)
    throw usageError('no site given and no default site: give --site S or --site all (or set one with "tenancy use S")')
  const everything = given.includes('all')
  if (everything && given.length > 1) throw usageError('give --site all alone, or name sites with --site S')
  const named = everything ? [] : given.map(assertSiteName)
  const skipped = new Set((selection.skipSites ?? []).map(assertSiteName))
  const registry = await bench.registry()
  const all = await registry.listSites()
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
    (s) => s.state === 'ready' && !skipped.has(s.name) && !pending.has(s.name) && isHomedHere(bench, registry.kind, s),
  )
}

async function pendingSites(bench: Bench): Promise<Set<string>> {
  const tenants = await (await bench.registry()).tenantsBySite()
  return new Set([...tenants].filter(([, t]) => t.pending_since !== null).map(([site]) => site))
}

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
  const lane = async () => {
    for (let site = queue.shift(); site !== undefined; site = queue.shift()) {
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
  const outcome = await usingTenantLease(bench, tenantId, { waitWhile: () => performance.now() < deadline }, fn)
  if (!outcome.taken)
    throw new TenancyError(`site "${site}" is held by ${outcome.heldBy} (a pull or a migrate); try it again later`)
  return outcome.value
}
