import type { InsertQueryBuilder, Kysely } from 'kysely'
import type { DbType } from '../config/config.js'

/**
 * An insert that updates `updates` when a row with the same `key` exists: `ON CONFLICT … DO
 * UPDATE` on SQLite and PostgreSQL, `ON DUPLICATE KEY UPDATE` on MariaDB. With no
 * `updates`, an existing row is left as it is (`DO NOTHING` / `INSERT IGNORE`).
 */
export function upsert(
  db: Kysely<any>,
  dbType: DbType,
  table: string,
  values: Record<string, unknown>,
  key: string[],
  updates: Record<string, unknown> = {},
): InsertQueryBuilder<any, any, any> {
  const insert = db.insertInto(table).values(values)
  const hasUpdates = Object.keys(updates).length > 0
  if (dbType === 'mariadb') return hasUpdates ? insert.onDuplicateKeyUpdate(updates) : insert.ignore()
  return insert.onConflict((oc) =>
    hasUpdates ? oc.columns(key as never[]).doUpdateSet(updates) : oc.columns(key as never[]).doNothing(),
  )
}
