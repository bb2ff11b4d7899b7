import Database from 'better-sqlite3'
import { Kysely, SqliteDialect } from 'kysely'
import { describe, expect, it } from 'vitest'
import { LiteralLimitPlugin } from '../src/databases/literal-limit.js'
import { guardedDatabase, sqliteGuard } from '../src/databases/sqlite-guard.js'

// The SQLite handle under every Kysely of ours (registry and sites): prepared statements kept
// per connection, and a select's LIMIT written into the SQL.

function open() {
  const raw = new Database(':memory:')
  raw.exec("create table t (id integer primary key, name text); insert into t (name) values ('a'), ('b'), ('c')")
  let prepared = 0
  const prepare = raw.prepare.bind(raw)
  raw.prepare = ((sql: string) => {
    prepared++
    return prepare(sql)
  }) as typeof raw.prepare
  const db = new Kysely<any>({
    dialect: new SqliteDialect({ database: guardedDatabase(raw, sqliteGuard(':memory:', 'the test database')) }),
    plugins: [new LiteralLimitPlugin()],
  })
  return { raw, db, prepared: () => prepared }
}

describe('SQLite statements', () => {
  it('a query run again reuses its statement; the same SQL while one is being iterated gets its own', async () => {
    const { db, prepared } = open()
    const byId = (id: number) => db.selectFrom('t').select('name').where('id', '=', id).executeTakeFirstOrThrow()
    expect((await byId(1)).name).toBe('a')
    const after = prepared()
    expect((await byId(2)).name).toBe('b')
    expect((await byId(3)).name).toBe('c')
    expect(prepared()).toBe(after)
    await db.destroy()
  })

  it('the same SQL while its kept statement is still being iterated gets a statement of its own', () => {
    const raw = new Database(':memory:')
    raw.exec("create table t (id integer primary key, name text); insert into t (name) values ('a'), ('b'), ('c')")
    // As a driver sees it (Kysely's holds its one connection while it streams, so this is the handle's own promise).
    const handle = guardedDatabase(raw, sqliteGuard(':memory:', 'the test database'))
    const sql = 'select name from t order by id'
    const names: string[] = []
    for (const row of handle.prepare(sql).iterate([]) as Iterable<{ name: string }>) {
      expect((handle.prepare(sql).all([]) as { name: string }[]).map((r) => r.name)).toEqual(['a', 'b', 'c'])
      names.push(row.name)
    }
    expect(names).toEqual(['a', 'b', 'c'])
    handle.close()
  })

  it('a kept statement sees the schema as it is now', async () => {
    const { db } = open()
    const all = () => db.selectFrom('t').selectAll().where('id', '=', 1).executeTakeFirstOrThrow()
    expect(await all()).toEqual({ id: 1, name: 'a' })
    await db.schema
      .alterTable('t')
      .addColumn('note', 'text', (c) => c.defaultTo('n'))
      .execute()
    expect(await all()).toEqual({ id: 1, name: 'a', note: 'n' })
    await db.destroy()
  })

  it("a select's limit is written into the SQL, its offset and values stay bound", async () => {
    const { db } = open()
    const query = db.selectFrom('t').select('name').where('name', '!=', 'x').orderBy('id').limit(2).offset(1)
    const compiled = query.compile()
    expect(compiled.sql).toBe('select "name" from "t" where "name" != ? order by "id" limit 2 offset ?')
    expect(compiled.parameters).toEqual(['x', 1])
    expect((await query.execute()).map((r) => r.name)).toEqual(['b', 'c'])
    // Inside a subquery it stays bound (only the outermost select's is rewritten).
    const sub = db
      .selectFrom('t')
      .select('name')
      .where('id', 'in', (eb: any) => eb.selectFrom('t').select('id').orderBy('id').limit(2))
      .compile()
    expect(sub.sql).toContain('limit ?')
    await db.destroy()
  })
})
