// Sign-up lives with the pool, not in provisioning/ beside createTenant: it pulls from the
// pool first, and the layer order puts the pool above provisioning (pool code may use
// provisioning, never the other way round).
import type { Bench } from '../bench.js'
import { assertHostName } from '../names.js'
import { machineOfTenant } from '../registry/placement.js'
import { requireTenant, tenantSteps } from '../provisioning/tenant-record.js'
import { stepJson, type StepJson } from '../registry/tenants.js'
import {
  assertUserTenantName,
  createTenant,
  type CreateTenantOptions,
  type CreateTenantResult,
} from '../provisioning/tenants.js'
import { pullPendingFromPool, type PullResult } from './pull.js'

export interface SignUpOptions extends CreateTenantOptions {
  /** false (`--no-pool`): never take a tenant from the pool. */
  pool?: boolean
}

/**
 * `tenancy tenant create`: takes a ready pending tenant from the pool when there is one
 * (instant), else records and provisions a new tenant (now, or queued with `background`).
 * Placed on another machine (`host`), it never takes a pool tenant: a pull renames the site's
 * directory, which only the machine it lives on can do.
 */
export async function createOrPullTenant(
  bench: Bench,
  options: SignUpOptions,
): Promise<CreateTenantResult | (PullResult & { mode: 'pulled'; steps: StepJson[]; host: string | null })> {
  const name = assertUserTenantName(options.name)
  const remote = options.host !== undefined && assertHostName(options.host, '--host') !== bench.host
  // As the SPEC orders it: a ready pending tenant is pulled whether or not auto-provisioning is on.
  if (options.pool !== false && !remote) {
    const pulled = await pullPendingFromPool(bench, false, {
      name,
      site: options.site,
      siteUrl: options.siteUrl,
      data: options.data,
    })
    if (pulled) {
      const row = await requireTenant(bench, name)
      const registry = await bench.registry()
      return {
        ...pulled,
        mode: 'pulled',
        steps: (await tenantSteps(bench, row.id)).map(stepJson),
        host: await machineOfTenant(registry.db, row.id),
      }
    }
  }
  return createTenant(bench, options)
}
