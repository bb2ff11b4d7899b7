import type { Kysely } from 'kysely'
import { sql } from 'kysely'

/**
 * A transaction on a single-connection SQLite Kysely that takes the write lock up front
 * (`BEGIN IMMEDIATE`), so two processes doing read-then-write queue on the busy timeout
 * instead of one failing with SQLITE_BUSY at the lock upgrade. `fn` must use the connection
 * it is given: the Kysely instance itself is locked until the transaction ends.
 */
export async function immediateTransaction<DB, T>(db: Kysely<DB>, fn: (conn: Kysely<DB>) => Promise<T>): Promise<T> {
  return db.connection().execute(async (conn) => {
    await sql`begin immediate`.execute(conn)
    try {
      const result = await fn(conn)
      await sql`commit`.execute(conn)
      return result
    } catch (error) {
      await sql`rollback`.execute(conn).catch(() => {})
      throw error
    }
  })
}
