import type { Database, Statement } from 'better-sqlite3'
import type { SqliteDatabase } from 'kysely'
import { storageError } from '../errors.js'

/** Runs SQLite calls with their storage failures named after the file. */
export type SqliteGuard = <T>(fn: () => T) => T

/**
 * A guard for the SQLite file `file` (`what` names it: "the registry", "the site database"):
 * SQLITE_FULL, SQLITE_CORRUPT and SQLITE_NOTADB from any call become one `StorageError`
 * naming the file and what to do; every other error passes through unchanged.
 */
export function sqliteGuard(file: string, what: string, options: { corruptExitCode?: number } = {}): SqliteGuard {
  return (fn) => {
    try {
      return fn()
    } catch (error) {
      throw storageError(error, file, what, options) ?? error
    }
  }
}

/** How many prepared statements one connection keeps for reuse (the least recently used go first). */
const STATEMENT_CACHE = 128

/**
 * The better-sqlite3 handle as Kysely's SqliteDialect sees it, every statement run under `guard`.
 *
 * Kysely prepares each query anew; here a connection keeps its last `STATEMENT_CACHE`
 * statements by SQL text, so a query run again on it (the registry's, which lives as long as the
 * command; a site's while it is open) skips SQLite's parse and plan. SQLite re-prepares a kept statement itself when the schema
 * changed under it. A statement still being iterated is busy: a second use of that SQL then
 * gets one of its own.
 */
export function guardedDatabase(raw: Database, guard: SqliteGuard): SqliteDatabase {
  const cache = new Map<string, Statement>()
  const statementFor = (sql: string): Statement => {
    const kept = cache.get(sql)
    if (kept && !kept.busy) {
      // Most recently used last: the first key is the one to drop.
      cache.delete(sql)
      cache.set(sql, kept)
      return kept
    }
    const statement = guard(() => raw.prepare(sql))
    if (!kept) {
      cache.set(sql, statement)
      if (cache.size > STATEMENT_CACHE) cache.delete(cache.keys().next().value!)
    }
    return statement
  }
  return {
    close: () => {
      cache.clear()
      raw.close()
    },
    prepare: (sql) => {
      const statement = statementFor(sql)
      return {
        reader: statement.reader,
        // As Kysely's own driver calls them: the parameter array is one argument.
        all: (parameters) => guard(() => statement.all(parameters)),
        run: (parameters) => guard(() => statement.run(parameters)),
        iterate: (parameters) => guard(() => statement.iterate(parameters)),
      }
    },
  }
}
