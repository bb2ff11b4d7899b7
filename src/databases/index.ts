import { DB_TYPES_TEXT, type DbType } from '../config/config.js'
import { usageError } from '../errors.js'
import type { DatabaseDriver } from './driver.js'
import { sqliteDriver } from './sqlite-driver.js'

/**
 * Every kind of database, by its `db_type` in `DB_TYPES` (config/), and how its driver loads:
 * the server drivers only when a site of their kind is touched. A new kind is its driver's
 * file, its name in `DB_TYPES`, and one line here (this table does not compile without a line for each name).
 */
const DRIVERS: Readonly<Record<DbType, () => Promise<DatabaseDriver>>> = {
  sqlite: async () => sqliteDriver,
  mariadb: async () => (await import('./mariadb-driver.js')).mariadbDriver,
  postgres: async () => (await import('./postgres-driver.js')).postgresDriver,
}

/** The driver for a kind of database, loaded only when a site of that kind is touched. */
export async function getDriver(type: DbType): Promise<DatabaseDriver> {
  if (!Object.hasOwn(DRIVERS, type)) throw usageError(`unknown database type "${type}"; use ${DB_TYPES_TEXT}`)
  return DRIVERS[type]()
}
