import type { Bench } from '../bench.js'
import { TenantNotFoundError } from '../errors.js'
import { assertTenantName } from '../names.js'
import { listSteps } from '../registry/steps.js'
import type { StepRow, TenantRow } from '../registry/tenants.js'
import { closest } from '../util/suggest.js'

/** The tenant's registry row, or a usage error that says what to run. */
export async function requireTenant(bench: Bench, name: string): Promise<TenantRow> {
  assertTenantName(name)
  const registry = await bench.registry()
  const row = await registry.db.selectFrom('tenants').selectAll().where('name', '=', name).executeTakeFirst()
  if (!row) {
    const names = await registry.db.selectFrom('tenants').select('name').execute()
    const suggestion = closest(
      name,
      names.map((t) => t.name),
    )
    throw new TenantNotFoundError(
      name,
      `tenant "${name}" does not exist; ${suggestion ? `did you mean "${suggestion}"? ` : ''}run "tenancy tenant list"`,
    )
  }
  return row
}

/** The tenant's steps in pipeline order. */
export async function tenantSteps(bench: Bench, tenantId: number): Promise<StepRow[]> {
  return listSteps((await bench.registry()).db, tenantId)
}
