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

/**
 * The tenant's row read again under its lease, which must still be the tenant `name` that a
 * command read before it took the lease: a pull can rename a pending tenant (and its site) in
 * between, and acting on the row by id would then act on the customer who just signed up.
 */
export async function rereadTenant(bench: Bench, id: number, name: string): Promise<TenantRow> {
  const registry = await bench.registry()
  const row = await registry.db.selectFrom('tenants').selectAll().where('id', '=', id).executeTakeFirst()
  if (row?.name === name) return row
  throw renamedMeanwhile(name, row)
}

/** The error for a tenant read as `name` whose row (by id) is now `row`: pulled under another name, or gone. */
export function renamedMeanwhile(name: string, row: Pick<TenantRow, 'name'> | undefined): TenantNotFoundError {
  return new TenantNotFoundError(
    name,
    row
      ? `tenant "${name}" was just taken from the pool as "${row.name}"; nothing was changed, run "tenancy tenant list"`
      : `tenant "${name}" was deleted just now; run "tenancy tenant list"`,
  )
}

/** The tenant's steps in pipeline order. */
export async function tenantSteps(bench: Bench, tenantId: number): Promise<StepRow[]> {
  return listSteps((await bench.registry()).db, tenantId)
}
