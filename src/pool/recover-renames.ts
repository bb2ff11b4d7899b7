import type { Bench } from '../bench.js'
import { messageOf } from '../errors.js'
import { LEASE_MS, inFuture, leaseHolderGone, newOwner } from '../registry/leases.js'
import type { SiteRecord } from '../registry/registry.js'
import type { TenantRow } from '../registry/tenants.js'
import { resumeRename } from '../provisioning/rename-site.js'
import { isHomedHere } from '../sites/site-home.js'
import { ownerAlive } from '../util/process-owner.js'
import { finishPull } from './finish-pull.js'

/**
 * Takes a pull over from its dead holder (the tenant's lease, conditionally on exactly that
 * holder, so two commands never finish it both) and finishes it. False when another took it.
 */
export async function takeOverPull(bench: Bench, tenant: TenantRow): Promise<boolean> {
  const registry = await bench.registry()
  const owner = newOwner()
  const taken = await registry.db
    .updateTable('tenants')
    .set({ lease_owner: owner, lease_expires_at: inFuture(LEASE_MS) })
    .where('id', '=', tenant.id)
    .where('pull_from', 'is not', null)
    .where((eb) =>
      tenant.lease_owner === null ? eb('lease_owner', 'is', null) : eb('lease_owner', '=', tenant.lease_owner),
    )
    .executeTakeFirst()
  if (Number(taken.numUpdatedRows) !== 1) return false
  try {
    await finishPull(bench, { ...tenant, lease_owner: owner })
  } catch (error) {
    await registry.db
      .updateTable('tenants')
      .set({ lease_owner: null, lease_expires_at: null })
      .where('id', '=', tenant.id)
      .where('lease_owner', '=', owner)
      .execute()
    throw error
  }
  return true
}

/**
 * Finishes the renames (pool pulls included) that a killed process left half-done: rows in
 * state `renaming` on this machine whose process is gone. One probe of the `sites_renaming`
 * index when there is none. Never throws for one site: a failure is logged (`tenancy errors`)
 * and doctor reports the rename. Returns the sites finished.
 */
export async function recoverRenames(bench: Bench): Promise<string[]> {
  const registry = await bench.registry()
  const rows = await registry.db
    .selectFrom('sites')
    .selectAll()
    .where('rename_from', 'is not', null)
    .where('state', '=', 'renaming')
    .execute()
  const done: string[] = []
  for (const row of rows) {
    if (!isHomedHere(bench, registry.kind, row) || (row.owner !== null && ownerAlive(row.owner) !== false)) continue
    const tenant =
      row.tenant_id === null
        ? undefined
        : await registry.db.selectFrom('tenants').selectAll().where('id', '=', row.tenant_id).executeTakeFirst()
    try {
      if (tenant?.pull_from) {
        if (leaseHolderGone(tenant) && (await takeOverPull(bench, tenant))) done.push(row.name)
      } else {
        const record: SiteRecord = (await registry.getSite(row.name))!
        await resumeRename(bench, record)
        done.push(row.name)
      }
    } catch (error) {
      await registry.logError({
        tenant: tenant?.name,
        site: row.name,
        step: tenant?.pull_from ? 'pull' : 'rename',
        message: `finishing the rename of site "${row.rename_from}" to "${row.name}" failed: ${messageOf(error)}`,
      })
    }
  }
  return done
}
