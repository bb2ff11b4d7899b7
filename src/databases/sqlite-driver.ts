import { closeSync, createReadStream, createWriteStream, fsyncSync, openSync, rmSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { lazyBuiltin } from '../util/lazy-builtin.js'
import { Kysely, SqliteAdapter, SqliteDialect, SqliteQueryCompiler, sql } from 'kysely'
import { TenancyError, storageError } from '../errors.js'
import type { DatabaseDriver, SiteConnection, SiteDbSettings } from './driver.js'
import { onConflictUpsert, onConflictUpsertRows } from './on-conflict-upsert.js'
import { immediateTransaction } from './sqlite-transaction.js'
import { guardedDatabase, sqliteGuard } from './sqlite-guard.js'
import { LiteralLimitPlugin } from './literal-limit.js'
import { loadSqlite } from '../util/load-sqlite.js'
import { fileChunks, zlibChunks } from '../util/stream-chunks.js'

const zlib = lazyBuiltin<typeof import('node:zlib')>('node:zlib')

const DB_FILE = 'db.sqlite'
/** Pages per step of the online backup: all of them (see `dump`). */
const ALL_PAGES = 2 ** 30

function fileOf(settings: SiteDbSettings, sitePath: string): string {
  // db_file is a bare file name inside the site directory, never a path from user input.
  const name = settings.db_file && /^[A-Za-z0-9_.-]+\.(sqlite|db)$/.test(settings.db_file) ? settings.db_file : DB_FILE
  return join(sitePath, name)
}

/** Opens a better-sqlite3 handle with the settings every site database uses. */
export async function openSqliteFile(
  file: string,
  options: { mustExist?: boolean } = {},
): Promise<import('better-sqlite3').Database> {
  const Database = loadSqlite()
  const raw = new Database(file, { timeout: 15_000, fileMustExist: options.mustExist ?? true })
  raw.pragma('foreign_keys = ON')
  return raw
}

/** A site's database file opened, with the guard that names it in storage errors. */
async function openSite(settings: SiteDbSettings, sitePath: string) {
  const file = fileOf(settings, sitePath)
  let raw
  try {
    raw = await openSqliteFile(file)
  } catch (error) {
    throw new TenancyError(`cannot open the site database ${file}: ${(error as Error).message}; run "tenancy doctor"`, {
      cause: error,
    })
  }
  return { raw, guard: sqliteGuard(file, 'the site database') }
}

let sharedCompiler: SqliteQueryCompiler | undefined
const LITERAL_LIMIT = new LiteralLimitPlugin()
let sharedAdapter: SqliteAdapter | undefined

/**
 * Kysely's SQLite dialect with one query compiler and adapter for every site connection: a
 * compiler is ~150 bound visitor functions built per instance, which `tenancy execute` would
 * otherwise build again for each of a thousand sites. Sharing is safe: compiling is synchronous
 * and keeps no state between queries (one Kysely already shares it among all its queries).
 */
class SiteDialect extends SqliteDialect {
  override createQueryCompiler(): SqliteQueryCompiler {
    return (sharedCompiler ??= new SqliteQueryCompiler())
  }

  override createAdapter(): SqliteAdapter {
    return (sharedAdapter ??= new SqliteAdapter())
  }
}

/** SQLite: one file per site, created with mode 0600; the file's permissions are its "user". */
export const sqliteDriver: DatabaseDriver = {
  type: 'sqlite',
  label: 'SQLite',
  transactionalDdl: true,
  upsert: onConflictUpsert,
  upsertRows: onConflictUpsertRows,

  async primaryKey(db, table) {
    const { rows } = await sql<{
      name: string
    }>`select name from pragma_table_info(${table}) where pk > 0 order by pk`.execute(db)
    return rows.map((r) => r.name)
  },

  plan(dbName, _admin, beside) {
    // Generated names are `_` and hex: `db_0123abcd.sqlite` matches what `fileOf` accepts.
    return { db_type: 'sqlite', db_name: dbName, db_file: beside ? `db${dbName}.sqlite` : DB_FILE }
  },

  async create(settings, sitePath) {
    const file = fileOf(settings, sitePath)
    try {
      closeSync(openSync(file, 'wx', 0o600))
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
        throw new TenancyError(`database file ${file} exists already; remove it or use --force`)
      }
      throw error
    }
  },

  async drop(settings, sitePath) {
    const file = fileOf(settings, sitePath)
    for (const suffix of ['', '-journal', '-wal', '-shm']) rmSync(`${file}${suffix}`, { force: true })
  },

  async exists(settings, sitePath) {
    try {
      return statSync(fileOf(settings, sitePath)).isFile()
    } catch {
      return false
    }
  },

  dumpFile: 'database.sqlite.gz',

  async dump(settings, sitePath, target) {
    const file = fileOf(settings, sitePath)
    const copy = join(target.workDir, 'snapshot.sqlite')
    let raw
    try {
      raw = await openSqliteFile(file)
    } catch (error) {
      throw new TenancyError(`cannot open the site database ${file}: ${(error as Error).message}`, { cause: error })
    }
    try {
      // The online backup API copies the pages of one read transaction. Handing it every page
      // in one step keeps the copy a single point in time: in smaller steps, a write by another
      // process between two steps would restart the copy, and a busy site would never finish.
      await raw.backup(copy, { progress: () => ALL_PAGES })
    } catch (error) {
      throw storageError(error, copy, "the database's snapshot") ?? error
    } finally {
      raw.close()
    }
    try {
      const { createGzip } = zlib()
      await pipeline(createReadStream(copy, fileChunks), createGzip(zlibChunks), target.sink, { signal: target.signal })
    } finally {
      rmSync(copy, { force: true })
    }
  },

  async restore(settings, sitePath, from) {
    const file = fileOf(settings, sitePath)
    // `create` made the file empty with mode 0600; it is written in place, keeping that mode.
    try {
      const { createGunzip } = zlib()
      await pipeline(from.source, createGunzip(zlibChunks), createWriteStream(file, { ...fileChunks, flags: 'r+' }), {
        signal: from.signal,
      })
      const fd = openSync(file, 'r')
      try {
        fsyncSync(fd)
      } finally {
        closeSync(fd)
      }
    } catch (error) {
      throw storageError(error, file, 'the restored database') ?? error
    }
    const raw = await openSqliteFile(file)
    try {
      const [check] = raw.pragma('quick_check(1)') as { quick_check: string }[]
      if (check?.quick_check !== 'ok')
        throw new TenancyError(`the restored database ${file} fails its check: ${check?.quick_check ?? 'no answer'}`)
    } catch (error) {
      if (error instanceof TenancyError) throw error
      throw new TenancyError(`the restored database ${file} cannot be read: ${(error as Error).message}`, {
        cause: error,
      })
    } finally {
      raw.close()
    }
  },

  // A SQLite file has no users: the file's 0600 mode is its access control, so the admin
  // connection is the site connection.
  connectAdmin(settings, sitePath) {
    return sqliteDriver.connect(settings, sitePath)
  },

  async readOnce(settings, sitePath, query) {
    const { raw, guard } = await openSite(settings, sitePath)
    try {
      return guard(() => raw.prepare(query.sql).all(...query.parameters))
    } finally {
      raw.close()
    }
  },

  async connect(settings, sitePath): Promise<SiteConnection> {
    const { raw, guard } = await openSite(settings, sitePath)
    const db = new Kysely<any>({
      dialect: new SiteDialect({ database: guardedDatabase(raw, guard) }),
      plugins: [LITERAL_LIMIT],
    })
    return {
      db,
      driver: sqliteDriver,
      // better-sqlite3's exec runs a multi-statement script on the same connection, so it
      // joins the transaction Kysely opened.
      transaction: (fn) =>
        immediateTransaction(db, (trx) =>
          fn({ trx, exec: async (script) => void guard(() => raw.exec(script)), driver: sqliteDriver }),
        ),
      close: async () => {
        await db.destroy()
        // Kysely destroys only a driver it has started: a connection that ran no query would keep its file open.
        if (raw.open) raw.close()
      },
    }
  },
}
