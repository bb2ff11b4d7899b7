// Sign-up lives with the pool, not in provisioning/ beside createTenant: it pulls from the
// pool first, and the layer order puts the pool above provisioning (pool code may use
// provisioning, never the other way round).
import type { Bench } from '../bench.js'
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
 */
export async function createOrPullTenant(
  bench: Bench,
  options: SignUpOptions,
): Promise<CreateTenantResult | (PullResult & { mode: 'pulled'; steps: StepJson[] })> {
  const name = assertUserTenantName(options.name)
  // As the SPEC orders it: a ready pending tenant is pulled whether or not auto-provisioning is on.
  if (options.pool !== false) {
    const pulled = await pullPendingFromPool(bench, false, {
      name,
      site: options.site,
      siteUrl: options.siteUrl,
      data: options.data,
    })
    if (pulled) {
      const row = await requireTenant(bench, name)
      return { ...pulled, mode: 'pulled', steps: (await tenantSteps(bench, row.id)).map(stepJson) }
    }
  }
  return createTenant(bench, options)
}
