import type { Bench } from '../bench.js'
import { usageError } from '../errors.js'
import { assertTenantName } from '../names.js'

export interface ErrorEntry {
  id: number
  at: string
  tenant: string | null
  site: string | null
  step: string | null
  job_id: number | null
  message: string
}

/** `tenancy errors`: the error log, newest first, with full messages. */
export async function listErrors(bench: Bench, options: { tenant?: string; limit?: number } = {}): Promise<ErrorEntry[]> {
  const limit = options.limit ?? 50
  if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) throw usageError(`invalid --limit "${options.limit}": give a whole number from 1 to 10000`)
  const registry = await bench.registry()
  let query = registry.db.selectFrom('error_log').selectAll().orderBy('id', 'desc').limit(limit)
  if (options.tenant) query = query.where('tenant', '=', assertTenantName(options.tenant))
  return (await query.execute()) as ErrorEntry[]
}
