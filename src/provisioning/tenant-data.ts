import { isDeepStrictEqual } from 'node:util'
import type { Bench } from '../bench.js'
import { TenancyError, usageError } from '../errors.js'
import { now } from '../registry/registry.js'
import { parseData, tenantJson, type TenantJson } from '../registry/tenants.js'
import { requireTenant } from './tenant-record.js'
import { assertDataKey } from './tenants.js'

export interface UpdateTenantOptions {
  /** Attributes to set (`--data k=v`, parsed by `parseDataPairs`), merged over the tenant's. */
  set?: Record<string, unknown>
  /** Attributes to remove (`--unset k`); one the tenant does not have is no error. */
  unset?: readonly string[]
}

export interface UpdateTenantResult extends TenantJson {
  /** false when the attributes were already as asked. */
  changed: boolean
}

/** How often an update is tried again when another process changed the attributes meanwhile. */
const TRIES = 20

/**
 * `tenancy tenant update <name> --data k=v… --unset k…`: merges attributes into the tenant's
 * `data` and removes the unset ones. A compare-and-set on the stored JSON, retried when another
 * process (a pull, another update) changed it in between, so no concurrent change is lost.
 *
 * @example
 * await updateTenantData(bench, 'acme', { set: { plan: 'pro' }, unset: ['trial'] })
 */
export async function updateTenantData(
  bench: Bench,
  name: string,
  options: UpdateTenantOptions,
): Promise<UpdateTenantResult> {
  const set = options.set ?? {}
  const unset = (options.unset ?? []).map((key) => assertDataKey(key, '--unset', key, 'a key'))
  if (Object.keys(set).length === 0 && unset.length === 0)
    throw usageError(
      `tenant update needs --data key=value or --unset key; e.g. "tenancy tenant update ${name} --data plan=pro"`,
    )
  const both = unset.find((key) => Object.hasOwn(set, key))
  if (both !== undefined) throw usageError(`--data and --unset both name "${both}"; give each key once`)
  const registry = await bench.registry()
  for (let attempt = 0; attempt < TRIES; attempt++) {
    const row = await requireTenant(bench, name)
    const data = { ...parseData(row.data), ...set }
    for (const key of unset) delete data[key]
    if (isDeepStrictEqual(data, parseData(row.data))) return { ...tenantJson(row), changed: false }
    const updated = await registry.db
      .updateTable('tenants')
      .set({ data: JSON.stringify(data), updated_at: now() })
      .where('id', '=', row.id)
      .where('data', '=', row.data)
      .executeTakeFirst()
    if (Number(updated.numUpdatedRows) === 1) return { ...tenantJson(await requireTenant(bench, name)), changed: true }
  }
  throw new TenancyError(`the attributes of tenant "${name}" kept changing while they were updated; run it again`)
}
