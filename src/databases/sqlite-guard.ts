import type { Database } from 'better-sqlite3'
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

/** The better-sqlite3 handle as Kysely's SqliteDialect sees it, every statement run under `guard`. */
export function guardedDatabase(raw: Database, guard: SqliteGuard): SqliteDatabase {
  return {
    close: () => raw.close(),
    prepare: (sql) => {
      const statement = guard(() => raw.prepare(sql))
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
