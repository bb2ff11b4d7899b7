import { recordEvent } from '../../events/outbox.js'
import { now } from '../../registry/registry.js'
import { planByName, type StepKind } from './step-kind.js'

/** `activate`: marks the tenant active and provisioned (the last step of every pipeline). */
export const activate: StepKind<{ kind: 'activate' }> = {
  usage: ['activate'],
  plan: planByName('activate'),
  once: true,
  async run({ bench, tenant }) {
    const registry = await bench.registry()
    // The tenant and its event commit together: a crash cannot lose the event.
    await registry.writeTransaction(async (trx) => {
      const at = now()
      await trx
        .updateTable('tenants')
        .set({ status: 'active', provisioning_status: 'completed', provisioned_at: at, error: null, updated_at: at })
        .where('id', '=', tenant.id)
        .execute()
      const row = await trx.selectFrom('tenants').selectAll().where('id', '=', tenant.id).executeTakeFirstOrThrow()
      // A pending tenant is nobody's yet: the pool has one more ready, and it is announced
      // as active when a sign-up pulls it.
      await recordEvent(bench, trx, row.pending_since === null ? 'tenant.active' : 'pending.created', row)
    })
    return { output: 'tenant is active' }
  },
}
