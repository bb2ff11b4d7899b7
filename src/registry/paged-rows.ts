import type { SelectQueryBuilder } from 'kysely'
import { batchedRows, type PageOptions } from '../util/listing.js'

/**
 * One page of a listing's rows ordered by a unique `column` (`id`, `sites.name`), read in
 * batches, each after the last row's key (see `batchedRows`); `field` is that key's name in the
 * rows when it differs from the column's.
 *
 * @example
 * pageByKey(registry.db.selectFrom('error_log').selectAll(), { column: 'id', order: 'desc' }, { limit: 100 })
 */
export function pageByKey<O>(
  query: SelectQueryBuilder<any, any, O>,
  key: { column: string; field?: keyof O & string; order: 'asc' | 'desc' },
  page: PageOptions,
): AsyncGenerator<O> {
  const field = (key.field ?? key.column) as keyof O
  return batchedRows<O, O[keyof O]>(
    page,
    ({ after, offset, limit }) =>
      query
        .$if(after !== undefined, (q) => q.where(key.column, key.order === 'asc' ? '>' : '<', after))
        .orderBy(key.column, key.order)
        .limit(limit)
        .offset(offset)
        .execute(),
    (row) => row[field],
  )
}
