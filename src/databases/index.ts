import type { DbType } from '../config/config.js'
import { usageError } from '../errors.js'
import type { DatabaseDriver } from './driver.js'
import { sqliteDriver } from './sqlite-driver.js'

/** The driver for a kind of database, loaded only when a site of that kind is touched. */
export async function getDriver(type: DbType): Promise<DatabaseDriver> {
  switch (type) {
    case 'sqlite':
      return sqliteDriver
    case 'postgres':
      return (await import('./postgres-driver.js')).postgresDriver
    case 'mariadb':
      return (await import('./mariadb-driver.js')).mariadbDriver
    default:
      throw usageError(`unknown database type "${type satisfies never}"; use sqlite, mariadb or postgres`)
  }
}
