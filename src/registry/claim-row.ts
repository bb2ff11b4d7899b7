import type { Kysely, SelectQueryBuilder } from 'kysely'
import { now, type Registry } from './registry.js'
import type { RegistrySchema } from './schema.js'

/** How to claim one row of a table; see `claimOneRow`. */
export interface RowClaim<DB, TB extends keyof DB & string, Row, T> {
  /** The candidates, best first: a query ordered and limited to a batch. */
  candidates: (trx: Kysely<RegistrySchema>, at: string) => SelectQueryBuilder<DB, TB, Row>
  /** The table whose row is claimed: the one `FOR UPDATE` locks. */
  table: TB
  /** Narrows the candidates to the one row given (by its key), to lock it. */
  only: (candidates: SelectQueryBuilder<DB, TB, Row>, row: Row) => SelectQueryBuilder<DB, TB, Row>
  /** Whether a row is free to take (its lease holder is gone: `leaseHolderGone`). */
  free: (row: Row, at: string) => boolean
  /** Takes the row in the claim's transaction; undefined when it could not after all. */
  take: (trx: Kysely<RegistrySchema>, row: Row, at: string) => Promise<T | undefined>
}

/**
 * Claims one row in a claim transaction (`Registry.claimTransaction`): reads the candidates
 * in order, and takes the first that is `free`. On PostgreSQL each free candidate is then
 * locked on its own (`FOR UPDATE SKIP LOCKED`) and tested again: a row another claimer
 * holds is passed over, and a claimer holds one row, never the whole batch, so concurrent
 * claimers on any machine each take a different row. On SQLite the transaction holds the
 * write lock, which keeps other claimers out until this one is done. Returns what `take`
 * returned, or undefined when no row was free.
 */
export async function claimOneRow<DB, TB extends keyof DB & string, Row, T>(
  registry: Registry,
  claim: RowClaim<DB, TB, Row, T>,
): Promise<T | undefined> {
  return registry.claimTransaction(async (trx) => {
    const at = now()
    const candidates = claim.candidates(trx, at)
    for (const candidate of await candidates.execute()) {
      if (!claim.free(candidate, at)) continue
      const row =
        registry.kind === 'sqlite'
          ? candidate
          : await registry.lockCandidates(claim.only(candidates, candidate), claim.table).executeTakeFirst()
      if (row === undefined || !claim.free(row, at)) continue
      return claim.take(trx, row, at)
    }
    return undefined
  })
}
