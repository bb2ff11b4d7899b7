import { faultActive } from './fault.js'
import { checkIntegerOption, type IntegerRange } from './integer-range.js'

// The listings (`tenant list`, `list-sites`, `list-backups`, `errors`, `events`, SPEC §11): a
// count of every matching row and one page of them, read in batches so that 100,000 rows
// never sit in memory at once.

/** Which rows of a listing: skip `offset`, then at most `limit` (absent: all the rest). */
export interface PageOptions {
  limit?: number
  offset?: number
}

/** What `--limit` accepts: 0 is refused rather than read as "none" or "all" (SPEC §11, README). */
export const LIMIT_RANGE: IntegerRange = { min: 1, max: 1_000_000_000 }
/** What `--offset` accepts. */
export const OFFSET_RANGE: IntegerRange = { min: 0, max: 1_000_000_000 }

/** A listing's page: how many rows match in all (before limit and offset), and the page's rows, read as iterated. */
export interface Listing<T> {
  total: number
  /** How many matching rows come before the page. */
  offset: number
  /** Iterate once: each pass reads the page from its source again. */
  rows: AsyncIterable<T>
}

/** A page's bounds, checked as the flags are (`limit: 0` is refused like `--limit 0`). */
export function checkPage(page: PageOptions): { limit: number | undefined; offset: number } {
  return {
    limit: page.limit === undefined ? undefined : checkIntegerOption('--limit', page.limit, LIMIT_RANGE),
    offset: checkIntegerOption('--offset', page.offset ?? 0, OFFSET_RANGE),
  }
}

/** Every row of an iterable, in order. */
export async function collect<T>(rows: AsyncIterable<T>): Promise<T[]> {
  const all: T[] = []
  for await (const row of rows) all.push(row)
  return all
}

/** `fn` over each row as it is read. */
export async function* mapRows<T, R>(rows: AsyncIterable<T>, fn: (row: T) => R): AsyncGenerator<R> {
  for await (const row of rows) yield fn(row)
}

/** A listing of rows already in memory (backup sets on disk): the page's rows made by `fn`, only those. */
export function arrayListing<T, R>(all: readonly T[], page: PageOptions, fn: (row: T) => R): Listing<R> {
  const { limit, offset } = checkPage(page)
  const shown = all.slice(offset, limit === undefined ? undefined : offset + limit)
  return { total: all.length, offset, rows: mapRows(iterate(shown), fn) }
}

async function* iterate<T>(rows: readonly T[]): AsyncGenerator<T> {
  yield* rows
}

/** Rows a listing reads at once: enough to keep round trips few, few enough to keep memory flat. */
const BATCH = 1000

/**
 * One page of a query's rows, read `BATCH` at a time: the first read skips `offset` rows, each
 * later one starts after the last row's key (`after`, keyset paging: no read walks again over
 * the rows before it, however deep the page). `read` must order by that key, which is unique.
 *
 * @example
 * batchedRows(page, ({ after, offset, limit }) =>
 *   query.$if(after !== undefined, (q) => q.where('id', '>', after!)).orderBy('id').limit(limit).offset(offset).execute(),
 *   (row) => row.id)
 */
export async function* batchedRows<R, K>(
  page: PageOptions,
  read: (batch: { after: K | undefined; offset: number; limit: number }) => Promise<R[]>,
  keyOf: (row: R) => K,
): AsyncGenerator<R> {
  const checked = checkPage(page)
  let left = checked.limit ?? Number.POSITIVE_INFINITY
  let after: K | undefined
  let offset = checked.offset
  while (left > 0) {
    const limit = Math.min(BATCH, left)
    // A read that fails once rows were printed (the registry gone mid-listing), for the tests.
    if (after !== undefined && faultActive('listing-read')) throw new Error('TENANCY_FAULT=listing-read: a read failed')
    const rows = await read({ after, offset, limit })
    yield* rows
    if (rows.length < limit) return
    left -= rows.length
    after = keyOf(rows[rows.length - 1]!)
    offset = 0
  }
}
