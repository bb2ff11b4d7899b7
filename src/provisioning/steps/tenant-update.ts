import type { Bench } from '../../bench.js'
import { now } from '../../registry/registry.js'
import type { TenantRow } from '../../registry/tenants.js'

/** Writes some columns of a tenant row (and its `updated_at`). */
export async function updateTenant(bench: Bench, id: number, values: Partial<Omit<TenantRow, 'id'>>): Promise<void> {
  const registry = await bench.registry()
  await registry.db
    .updateTable('tenants')
    .set({ ...values, updated_at: now() })
    .where('id', '=', id)
    .execute()
}
