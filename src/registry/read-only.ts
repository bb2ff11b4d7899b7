// Reading the registry without opening it as a command does: no schema migration, no file
// or WAL created, no recovery hook, a short timeout. For shell completion, which runs on
// every Tab press and must never change anything or keep the operator waiting.
import { existsSync } from 'node:fs'
import { isAbsolute, resolve } from 'node:path'
import { loadPg } from '../util/load-pg.js'
import { loadSqlite } from '../util/load-sqlite.js'

/** How long a read may wait for a lock or a server before it gives up (completion prints nothing then). */
const READ_TIMEOUT_MS = 1500

/**
 * The first column of every row `query` returns, read from the registry at `url` (relative
 * SQLite paths from `benchRoot`) read-only. A missing SQLite file is no rows, not created.
 * `query` must be plain SQL both SQLite and PostgreSQL accept, with no parameters.
 */
export async function readRegistryColumn(url: string, benchRoot: string, query: string): Promise<string[]> {
  if (url.startsWith('sqlite:')) {
    const file = url.slice('sqlite:'.length)
    const path = isAbsolute(file) ? file : resolve(benchRoot, file)
    if (!existsSync(path)) return []
    const Database = loadSqlite()
    const db = new Database(path, { readonly: true, fileMustExist: true, timeout: READ_TIMEOUT_MS })
    try {
      return db
        .prepare(query)
        .raw()
        .all()
        .map((row) => String((row as unknown[])[0]))
    } finally {
      db.close()
    }
  }
  const pg = await loadPg()
  const client = new pg.Client({
    connectionString: url,
    connectionTimeoutMillis: READ_TIMEOUT_MS,
    query_timeout: READ_TIMEOUT_MS,
    // Read-only on the server's side too, whatever the query.
    options: '-c default_transaction_read_only=on',
  })
  client.on('error', () => {})
  try {
    await client.connect()
    const result = await client.query({ text: query, rowMode: 'array' })
    return result.rows.map((row: unknown[]) => String(row[0]))
  } finally {
    await client.end().catch(() => {})
  }
}
