import type { Selectable } from 'kysely'
import type { Bench } from '../bench.js'
import { assertTenantName } from '../names.js'
import type { ErrorLogTable } from '../registry/schema.js'
import { pageByKey } from '../registry/paged-rows.js'
import { checkPage, collect, type Listing, type PageOptions } from '../util/listing.js'
import { requireTenant } from './tenant-record.js'

/** One entry of the error log. */
export type ErrorEntry = Selectable<ErrorLogTable>

export interface ListErrorsOptions extends PageOptions {
  /** Only this tenant's errors. */
  tenant?: string
}

/**
 * `tenancy errors`: how many entries of the error log match, and one page of them (`limit`,
 * `offset`), newest first, with full messages, read in batches as they are iterated.
 */
export async function errorListing(bench: Bench, options: ListErrorsOptions = {}): Promise<Listing<ErrorEntry>> {
  const page = checkPage(options)
  const registry = await bench.registry()
  const tenant = options.tenant === undefined ? undefined : assertTenantName(options.tenant)
  const matching = registry.db.selectFrom('error_log').$if(tenant !== undefined, (q) => q.where('tenant', '=', tenant!))
  const counted = await matching.select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()
  // No errors for a name no tenant has: a typo is said so (exit 2), as every tenant command
  // does; a deleted tenant's errors, kept in the log, are still listed.
  if (tenant !== undefined && Number(counted.n) === 0) await requireTenant(bench, tenant)
  const rows = pageByKey(matching.selectAll(), { column: 'id', order: 'desc' }, page)
  return { total: Number(counted.n), offset: page.offset, rows }
}

/** `tenancy errors` as an array: the page `errorListing` reads (every entry without `limit`). */
export async function listErrors(bench: Bench, options: ListErrorsOptions = {}): Promise<ErrorEntry[]> {
  return collect((await errorListing(bench, options)).rows)
}
