import type { AliasableExpression, Expression, ExpressionBuilder, Kysely, SqlBool } from 'kysely'
import type { RegistrySchema } from './schema.js'

/**
 * Which machine a tenant belongs to on a shared registry (SPEC §10): the one its site lives on
 * (`sites.host`); before its site exists, the one its provisioning job is placed on
 * (`jobs.host`: `tenant create --host H`, a pool reservation); else none yet, and the first
 * worker to claim its job homes it.
 */
export function tenantMachine(eb: ExpressionBuilder<RegistrySchema, 'tenants'>): AliasableExpression<string | null> {
  return eb.fn.coalesce(
    eb.selectFrom('sites').select('sites.host').whereRef('sites.name', '=', 'tenants.site'),
    eb
      .selectFrom('jobs')
      .select('jobs.host')
      .whereRef('jobs.tenant_id', '=', 'tenants.id')
      .where('jobs.host', 'is not', null)
      .orderBy('jobs.id', 'desc')
      .limit(1),
  )
}

/**
 * A condition over `tenants`: the tenant belongs to `host`, or (with `orNone`, for this
 * machine's own queries) to no machine yet, which counts as here as a site row without a home does.
 */
export function onMachine(
  host: string,
  orNone: boolean,
): (eb: ExpressionBuilder<RegistrySchema, 'tenants'>) => Expression<SqlBool> {
  return (eb) => {
    const machine = tenantMachine(eb)
    return orNone ? eb.or([eb(machine, 'is', null), eb(machine, '=', host)]) : eb(machine, '=', host)
  }
}

/** The machine tenant `tenantId` belongs to (see `tenantMachine`), or null. */
export async function machineOfTenant(db: Kysely<RegistrySchema>, tenantId: number): Promise<string | null> {
  const row = await db
    .selectFrom('tenants')
    .select((eb) => tenantMachine(eb).as('host'))
    .where('id', '=', tenantId)
    .executeTakeFirst()
  return row?.host ?? null
}
