import type { Selectable } from 'kysely'
import type { Bench } from '../bench.js'
import { usageError } from '../errors.js'
import { assertTenantName } from '../names.js'
import type { ErrorLogTable } from '../registry/schema.js'

/** One entry of the error log. */
export type ErrorEntry = Selectable<ErrorLogTable>

/** `tenancy errors`: the error log, newest first, with full messages. */
export async function listErrors(
  bench: Bench,
  options: { tenant?: string; limit?: number } = {},
): Promise<ErrorEntry[]> {
  const limit = options.limit ?? 50
  if (!Number.isInteger(limit) || limit < 1 || limit > 10_000)
    throw usageError(`invalid --limit "${options.limit}": give a whole number from 1 to 10000`)
  const registry = await bench.registry()
  let query = registry.db.selectFrom('error_log').selectAll().orderBy('id', 'desc').limit(limit)
  if (options.tenant) query = query.where('tenant', '=', assertTenantName(options.tenant))
  return query.execute()
}
