import type { Bench } from '../bench.js'
import { now, type Registry } from '../registry/registry.js'
import { provisionTenant } from '../provisioning/runner.js'
import type { TenantRow } from '../registry/tenants.js'

/** Resumes the provisioning of a tenant; throws unless it ends completed (or was already active). */
export async function resume(bench: Bench, tenant: string): Promise<void> {
  const result = await provisionTenant(bench, tenant)
  if (result.status !== 'completed' && result.status !== 'already_active')
    throw new Error(result.error ?? `provisioning ended ${result.status}`)
}

/** Provisions a tenant again from its first step, as when it is new (its site is gone). */
export async function provisionAgain(bench: Bench, registry: Registry, tenant: TenantRow): Promise<void> {
  await registry.db
    .updateTable('steps')
    .set({ status: 'pending', error: null })
    .where('tenant_id', '=', tenant.id)
    .execute()
  await registry.db
    .updateTable('tenants')
    .set({ status: 'inactive', provisioning_status: 'failed', provisioned_at: null, updated_at: now() })
    .where('id', '=', tenant.id)
    .execute()
  await resume(bench, tenant.name)
}
