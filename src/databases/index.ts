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
      throw usageError(`database type "${type}" is not supported by this version of tenancy yet; use sqlite or postgres (--db-type, or "db.type" in tenancy.config.json)`)
    default:
      throw usageError(`unknown database type "${type satisfies never}"; use sqlite, mariadb or postgres`)
  }
}
