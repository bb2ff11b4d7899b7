import { sql, type InsertQueryBuilder, type Kysely } from 'kysely'

// The upserts of the dialects that have `ON CONFLICT` (SQLite, PostgreSQL); their drivers' `upsert` and `upsertRows`.

/**
 * An insert that updates `updates` when a row with the same `key` exists: `ON CONFLICT … DO
 * UPDATE`. With no `updates`, an existing row is left as it is (`DO NOTHING`).
 */
export function onConflictUpsert(
  db: Kysely<any>,
  table: string,
  values: Record<string, unknown>,
  key: string[],
  updates: Record<string, unknown> = {},
): InsertQueryBuilder<any, any, any> {
  const hasUpdates = Object.keys(updates).length > 0
  return db
    .insertInto(table)
    .values(values)
    .onConflict((oc) =>
      hasUpdates ? oc.columns(key as never[]).doUpdateSet(updates) : oc.columns(key as never[]).doNothing(),
    )
}

/**
 * `rows` inserted, overwriting the `columns` of a row with the same `key` from `excluded` (or
 * `DO NOTHING`). A row that holds those values already is not written again: fixtures are
 * synced on every site at each migrate with new migrations, and rewriting rows that did not
 * change would journal and fsync their pages on every site for nothing.
 */
export function onConflictUpsertRows(
  db: Kysely<any>,
  table: string,
  rows: Record<string, unknown>[],
  key: string[],
  columns: string[],
): InsertQueryBuilder<any, any, any> {
  return db
    .insertInto(table)
    .values(rows)
    .onConflict((oc) => {
      const target = oc.columns(key as never[])
      return columns.length === 0
        ? target.doNothing()
        : target
            .doUpdateSet(Object.fromEntries(columns.map((c) => [c, sql.ref(`excluded.${c}`)])))
            .where((eb) =>
              eb.or(columns.map((c) => eb(sql.ref(`${table}.${c}`), 'is distinct from', sql.ref(`excluded.${c}`)))),
            )
    })
}
