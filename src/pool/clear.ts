import type { Bench } from '../bench.js'
import { usageError } from '../errors.js'
import { adminToDropSite, dropSite } from '../sites/drop-site.js'
import { homeName, isHomedHere } from '../sites/site-home.js'
import { usingTenantLease } from '../registry/leases.js'
import { removeTenant } from '../provisioning/remove-tenant.js'

export interface ClearResult {
  cleared: string[]
  skipped: { tenant: string; reason: string }[]
}

/**
 * `tenancy pending-clear`: deletes pending tenants (all, or older than the bound) with their
 * sites. A tenant is deleted only if it is still pending at the moment of the delete and no
 * one holds it, so a tenant pulled (or being provisioned) meanwhile is never touched.
 */
export async function pendingClear(
  bench: Bench,
  options: { olderThanDays?: number; olderThanHours?: number } = {},
): Promise<ClearResult> {
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
  let query = registry.db.selectFrom('tenants').selectAll().where('pending_since', 'is not', null)
  if (hours !== undefined)
    query = query.where('pending_since', '<', new Date(Date.now() - hours * 3_600_000).toISOString())
  const candidates = await query.orderBy('pending_since').execute()
  const result: ClearResult = { cleared: [], skipped: [] }
  for (const tenant of candidates) {
    // Another machine's pool tenant: its site is out of reach from here.
    const site = tenant.site ? await registry.getSite(tenant.site) : undefined
    if (site && !isHomedHere(bench, registry.kind, site)) {
      result.skipped.push({ tenant: tenant.name, reason: `its site lives on ${homeName(site)}` })
      continue
    }
    // Before anything changes: a missing admin password must not leave a tenant half-deleted.
    const admin = tenant.site ? await adminToDropSite(bench, tenant.site, 'pending-clear') : undefined
    const outcome = await usingTenantLease(bench, tenant.id, {}, (lease) =>
      removeTenant(bench, tenant.id, { site: tenant.site, onlyPendingHeldBy: lease.owner }),
    )
    if (!outcome.taken) {
      result.skipped.push({ tenant: tenant.name, reason: `held by ${outcome.heldBy}` })
      continue
    }
    if (!outcome.value) {
      result.skipped.push({ tenant: tenant.name, reason: 'pulled meanwhile' })
      continue
    }
    if (tenant.site && (await registry.getSite(tenant.site)))
      await dropSite(bench, { site: tenant.site, archive: false, force: true, admin })
    result.cleared.push(tenant.name)
  }
  return result
}
