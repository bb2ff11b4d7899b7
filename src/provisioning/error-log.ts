import type { Selectable } from 'kysely'
import type { Bench } from '../bench.js'
import { checkIntegerOption } from '../util/integer-range.js'
import { assertTenantName } from '../names.js'
import type { ErrorLogTable } from '../registry/schema.js'

/** One entry of the error log. */
export type ErrorEntry = Selectable<ErrorLogTable>

/** `tenancy errors`: the error log, newest first, with full messages. */
export async function listErrors(
  bench: Bench,
  options: { tenant?: string; limit?: number } = {},
): Promise<ErrorEntry[]> {
  const limit = checkIntegerOption('--limit', options.limit ?? 50, { min: 1, max: 10_000 })
  const registry = await bench.registry()
  let query = registry.db.selectFrom('error_log').selectAll().orderBy('id', 'desc').limit(limit)
  if (options.tenant) query = query.where('tenant', '=', assertTenantName(options.tenant))
  return query.execute()
}
