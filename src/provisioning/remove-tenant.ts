import type { Bench } from '../bench.js'
import { recordEvent } from '../events/outbox.js'
import { now } from '../registry/registry.js'
import { PROCESS_OWNER } from '../util/process-owner.js'

export interface RemoveTenantOptions {
  /** The tenant's site, when it owns one: marked `dropping` for the caller to drop next (or freed with `keepSite`). */
  site: string | null
  /** Keep the site: it stays, belonging to no tenant (`tenant delete --keep-site`). */
  keepSite?: boolean
  /**
   * Remove the tenant only if it is still pending and held by this lease owner
   * (`pending-clear`): a tenant pulled meanwhile is left as it is.
   */
  onlyPendingHeldBy?: string
}

/**
 * Removes a tenant, its steps and its jobs in one registry write transaction that also marks
 * its site `dropping` (or frees it with `keepSite`) and records `tenant.deleted` (not for a
 * pool tenant, which was nobody's): a crash before the caller drops the site leaves a row
 * doctor knows how to finish. Returns false, having changed nothing, only when
 * `onlyPendingHeldBy` is given and the tenant is no longer pending or held by that owner.
 */
export async function removeTenant(bench: Bench, tenantId: number, options: RemoveTenantOptions): Promise<boolean> {
  const registry = await bench.registry()
  return registry.writeTransaction(async (trx) => {
    const row = await trx.selectFrom('tenants').selectAll().where('id', '=', tenantId).executeTakeFirst()
    let gone = trx.deleteFrom('tenants').where('id', '=', tenantId)
    if (options.onlyPendingHeldBy !== undefined)
      gone = gone.where('pending_since', 'is not', null).where('lease_owner', '=', options.onlyPendingHeldBy)
    const deleted = await gone.executeTakeFirst()
    if (options.onlyPendingHeldBy !== undefined && Number(deleted.numDeletedRows) !== 1) return false
    if (row && Number(deleted.numDeletedRows) === 1 && row.pending_since === null)
      await recordEvent(bench, trx, 'tenant.deleted', row)
    await trx.deleteFrom('steps').where('tenant_id', '=', tenantId).execute()
    await trx.deleteFrom('jobs').where('tenant_id', '=', tenantId).execute()
    if (options.site)
      await trx
        .updateTable('sites')
        .set(
          options.keepSite
            ? { tenant_id: null, updated_at: now() }
            : { state: 'dropping', owner: PROCESS_OWNER, updated_at: now() },
        )
        .where('name', '=', options.site)
        .where('tenant_id', '=', tenantId)
        .execute()
    return true
  })
}
