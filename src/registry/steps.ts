import type { Insertable, Kysely, Updateable } from 'kysely'
import type { Registry } from './registry.js'
import type { RegistrySchema, StepsTable } from './schema.js'
import type { StepRow, StepStatus } from './tenants.js'

/** A tenant's steps in pipeline order. */
export async function listSteps(db: Kysely<RegistrySchema>, tenantId: number): Promise<StepRow[]> {
  return db.selectFrom('steps').selectAll().where('tenant_id', '=', tenantId).orderBy('idx').execute()
}

/** What a step's row changes to: its status, and the attempts, timings, output, error or spec that go with it. */
/** A step row not yet run, for a step of the planned pipeline (`idx` is given where it is inserted). */
export function pendingStepRow(
  tenantId: number,
  step: { name: string; spec: unknown },
): Omit<Insertable<StepsTable>, 'idx'> {
  return {
    tenant_id: tenantId,
    name: step.name,
    status: 'pending',
    attempts: 0,
    started_at: null,
    finished_at: null,
    error: null,
    output: null,
    spec: JSON.stringify(step.spec),
  }
}

export type StepMark = { status: StepStatus } & Omit<Updateable<StepsTable>, 'tenant_id' | 'idx' | 'name' | 'status'>

/**
 * Records a step's new status on its row, the one at `idx` in the tenant's pipeline.
 *
 * @example
 * await markStep(registry.db, tenant.id, row.idx, { status: 'done', finished_at: now(), output })
 */
export async function markStep(
  db: Kysely<RegistrySchema>,
  tenantId: number,
  idx: number,
  mark: StepMark,
): Promise<void> {
  await db.updateTable('steps').set(mark).where('tenant_id', '=', tenantId).where('idx', '=', idx).execute()
}

/** Replaces a tenant's steps with `steps`, numbered by their place, in one transaction. */
export async function replaceSteps(
  registry: Registry,
  tenantId: number,
  steps: Omit<Insertable<StepsTable>, 'tenant_id' | 'idx'>[],
): Promise<void> {
  await registry.writeTransaction(async (trx) => {
    await trx.deleteFrom('steps').where('tenant_id', '=', tenantId).execute()
    await trx
      .insertInto('steps')
      .values(steps.map((step, idx) => ({ ...step, tenant_id: tenantId, idx })))
      .execute()
  })
}
