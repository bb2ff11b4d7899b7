import type { Bench } from '../bench.js'
import { usageError } from '../errors.js'
import { adminToDropSite, dropSite } from '../sites/drop-site.js'
import { homeName, isHomedHere, placementHost } from '../sites/site-home.js'
import { onMachine } from '../registry/placement.js'
import { usingTenantLease } from '../registry/leases.js'
import { removeTenant } from '../provisioning/remove-tenant.js'

export interface ClearResult {
  /** The machine whose pool was cleared. */
  host: string
  cleared: string[]
  skipped: { tenant: string; reason: string }[]
  /** With `host` another machine: its pending tenants whose sites exist there, which only it can drop. */
  refused: { tenant: string; reason: string }[]
}

/** What became of one pending tenant: `cleared`, or which list of `ClearResult` it went to and why. */
export type ClearedTenant =
  { tenant: string; status: 'cleared' } | { tenant: string; status: 'skipped' | 'refused'; reason: string }

export interface ClearOptions {
  olderThanDays?: number
  olderThanHours?: number
  host?: string
  /** Called as each tenant is dealt with: `done` of the `total` candidates. */
  onTenant?: (outcome: ClearedTenant, done: number, total: number) => void
}

/** A `ClearResult` being filled in, telling `onTenant` of each tenant as it goes in. */
function clearResult(host: string, total: number, options: ClearOptions) {
  const result: ClearResult = { host, cleared: [], skipped: [], refused: [] }
  let done = 0
  const tell = (outcome: ClearedTenant) => options.onTenant?.(outcome, ++done, total)
  return {
    result,
    cleared(tenant: string) {
      result.cleared.push(tenant)
      tell({ tenant, status: 'cleared' })
    },
    skipped(tenant: string, reason: string) {
      result.skipped.push({ tenant, reason })
      tell({ tenant, status: 'skipped', reason })
    },
    refused(tenant: string, reason: string) {
      result.refused.push({ tenant, reason })
      tell({ tenant, status: 'refused', reason })
    },
  }
}

/**
 * `tenancy pending-clear`: deletes this machine's pending tenants (all, or older than the
 * bound) with their sites. A tenant is deleted only if it is still pending at the moment of
 * the delete and no one holds it, so a tenant pulled (or being provisioned) meanwhile is
 * never touched. With `host` another machine (a shared registry), only its reservations whose
 * site is not made yet are deleted (nothing of them is on any disk); the others are `refused`.
 */
export async function pendingClear(bench: Bench, options: ClearOptions = {}): Promise<ClearResult> {
  if (options.olderThanDays !== undefined && options.olderThanHours !== undefined) {
    throw usageError('give either --older-than-days or --older-than-hours, not both')
  }
  for (const [flag, value] of [
    ['--older-than-days', options.olderThanDays],
    ['--older-than-hours', options.olderThanHours],
  ] as const) {
    if (value !== undefined && (!Number.isFinite(value) || value < 0))
      throw usageError(`invalid ${flag} "${value}": give a number of ${flag.slice(13)} of 0 or more`)
  }
  const hours = options.olderThanDays !== undefined ? options.olderThanDays * 24 : options.olderThanHours
  const registry = await bench.registry()
  const host = options.host === undefined ? bench.host : placementHost(bench, registry.kind, options.host)
  if (host !== bench.host) return clearElsewhere(bench, host, hours, options)
  let query = registry.db
    .selectFrom('tenants')
    .selectAll()
    .where('pending_since', 'is not', null)
    // Another machine's pool is its own (see `clearElsewhere`).
    .$if(registry.kind === 'postgres', (q) => q.where(onMachine(host, true)))
  if (hours !== undefined) query = query.where('pending_since', '<', pendingBefore(hours))
  const candidates = await query.orderBy('pending_since').execute()
  const result = clearResult(host, candidates.length, options)
  for (const tenant of candidates) {
    // A site row from before homes were recorded, whose directory is not here: out of reach.
    const site = tenant.site ? await registry.getSite(tenant.site) : undefined
    if (site && !isHomedHere(bench, registry.kind, site)) {
      result.skipped(tenant.name, `its site lives on ${homeName(site)}`)
      continue
    }
    // Before anything changes: a missing admin password must not leave a tenant half-deleted.
    let admin
    try {
      admin = tenant.site ? await adminToDropSite(bench, tenant.site, 'pending-clear') : undefined
    } catch (error) {
      // A pull may have taken the tenant (and renamed its site) since the list was read.
      const now = await registry.db
        .selectFrom('tenants')
        .select(['pending_since', 'site'])
        .where('id', '=', tenant.id)
        .executeTakeFirst()
      if (now?.pending_since != null && now.site === tenant.site) throw error
      result.skipped(tenant.name, 'pulled meanwhile')
      continue
    }
    const outcome = await usingTenantLease(bench, tenant.id, {}, (lease) =>
      removeTenant(bench, tenant.id, { site: tenant.site, onlyPendingHeldBy: lease.owner }),
    )
    if (!outcome.taken) {
      result.skipped(tenant.name, `held by ${outcome.heldBy}`)
      continue
    }
    if (!outcome.value) {
      result.skipped(tenant.name, 'pulled meanwhile')
      continue
    }
    if (tenant.site && (await registry.getSite(tenant.site)))
      await dropSite(bench, { site: tenant.site, archive: false, force: true, admin })
    result.cleared(tenant.name)
  }
  return result.result
}

const pendingBefore = (hours: number) => new Date(Date.now() - hours * 3_600_000).toISOString()

/**
 * `pending-clear --host H` for another machine: deletes H's reservations whose site does not
 * exist yet (checked again under the tenant's lease, which H's worker needs to make it), and
 * refuses the others: a site on H's disk is H's to drop.
 */
async function clearElsewhere(
  bench: Bench,
  host: string,
  hours: number | undefined,
  options: ClearOptions,
): Promise<ClearResult> {
  const registry = await bench.registry()
  const candidates = await registry.db
    .selectFrom('tenants')
    .selectAll()
    .where('pending_since', 'is not', null)
    .where(onMachine(host, false))
    .$if(hours !== undefined, (q) => q.where('pending_since', '<', pendingBefore(hours!)))
    .orderBy('pending_since')
    .execute()
  const result = clearResult(host, candidates.length, options)
  const refuse = (tenant: string) =>
    result.refused(tenant, `its site is on ${host}, which alone can drop it: run "tenancy pending-clear" on ${host}`)
  for (const tenant of candidates) {
    const made = async () => tenant.site !== null && (await registry.getSite(tenant.site)) !== undefined
    if (await made()) {
      refuse(tenant.name)
      continue
    }
    const outcome = await usingTenantLease(bench, tenant.id, {}, async (lease) =>
      (await made())
        ? ('made' as const)
        : removeTenant(bench, tenant.id, { site: null, onlyPendingHeldBy: lease.owner }),
    )
    if (!outcome.taken) result.skipped(tenant.name, `held by ${outcome.heldBy}`)
    else if (outcome.value === 'made') refuse(tenant.name)
    else if (!outcome.value) result.skipped(tenant.name, 'pulled meanwhile')
    else result.cleared(tenant.name)
  }
  return result.result
}
