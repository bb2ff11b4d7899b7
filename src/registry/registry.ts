import { closeSync, existsSync, mkdirSync, openSync, statSync } from 'node:fs'
import { dirname, isAbsolute, relative, resolve } from 'node:path'
import { Kysely, PostgresDialect, SqliteDialect, sql, type SelectQueryBuilder, type Transaction } from 'kysely'
import { NODE, PG, SQLITE, codeOf } from '../error-codes.js'
import { EXIT_USAGE, TenancyError, messageOf, storageError, usageError } from '../errors.js'
import type { DbType } from '../config/config.js'
import { REGISTRY_MIGRATIONS, REGISTRY_VERSION, type RegistryKind } from './registry-migrations.js'
import type { RegistrySchema, SiteState, SitesTable } from './schema.js'
import { PROCESS_OWNER } from '../util/process-owner.js'
import { immediateTransaction } from '../databases/sqlite-transaction.js'
import { guardedDatabase, sqliteGuard } from '../databases/sqlite-guard.js'
import { LiteralLimitPlugin } from '../databases/literal-limit.js'
import { loadPg } from '../util/load-pg.js'
import { loadSqlite } from '../util/load-sqlite.js'
import { maskUrl } from '../util/mask-url.js'
import { guardDialect } from '../databases/server-gone.js'
import { pgServerLoss, watchPgPool } from '../databases/postgres-errors.js'

/** A site row as callers see it: `apps` parsed. */
export interface SiteRecord extends Omit<SitesTable, 'apps'> {
  apps: InstalledAppSummary[]
}

export interface InstalledAppSummary {
  name: string
  version: string
}

export const now = (): string => new Date().toISOString()

/**
 * Told, before anything is created or migrated, that the registry (named as `registry`) is
 * missing or holds nothing; it throws to refuse opening it. The bench refuses while site
 * directories exist, so a lost registry is never silently replaced by an empty one.
 */
export type EmptyRegistryGuard = (registry: string, state: 'missing' | 'empty') => void

/** A site row's `apps` column parsed (none when it is not JSON). */
export function siteApps(text: string): InstalledAppSummary[] {
  try {
    return JSON.parse(text) as InstalledAppSummary[]
  } catch {
    return []
  }
}

function toRecord(row: SitesTable): SiteRecord {
  return { ...row, apps: siteApps(row.apps) }
}

/**
 * The bench's own database: sites, tenants, steps, jobs and the error log, behind typed
 * queries. SQLite by default (WAL, busy timeout); the queries are plain Kysely so the same
 * class runs on PostgreSQL, with `writeTransaction` the one place that differs per kind.
 */
export class Registry {
  readonly db: Kysely<RegistrySchema>
  readonly kind: RegistryKind
  /** The PostgreSQL URL (for LISTEN's own connection); undefined on SQLite. */
  readonly #url: string | undefined

  private constructor(db: Kysely<RegistrySchema>, kind: RegistryKind, url?: string) {
    this.db = db
    this.kind = kind
    this.#url = url
  }

  /**
   * Wakes `onNotify` when another process calls `notify` on one of `channels` (PostgreSQL
   * LISTEN on a connection of its own). On SQLite, or when the connection fails, it never
   * wakes: callers poll as well, so a notification only saves them the wait. Returns the stop.
   */
  async listen(channels: string[], onNotify: (channel: string) => void): Promise<() => Promise<void>> {
    if (this.kind !== 'postgres' || channels.length === 0) return async () => {}
    const pg = await loadPg()
    const client = new pg.Client({ connectionString: this.#url, connectionTimeoutMillis: 10_000 })
    // A lost LISTEN connection only means waking on the next poll instead.
    client.on('error', () => {})
    client.on('notification', (message) => onNotify(message.channel))
    try {
      await client.connect()
      for (const channel of channels) await client.query(`LISTEN "${channel.replace(/"/g, '')}"`)
    } catch {
      await client.end().catch(() => {})
      return async () => {}
    }
    return async () => {
      await client.end().catch(() => {})
    }
  }

  /** Wakes the listeners of `channel` (PostgreSQL NOTIFY, sent when the transaction commits); nothing on SQLite. */
  async notify(channel: string, db: Kysely<RegistrySchema> = this.db): Promise<void> {
    if (this.kind === 'postgres') await sql`select pg_notify(${channel}, '')`.execute(db)
  }

  /**
   * Opens the registry named by `url` (relative paths from `benchRoot`) and brings its schema
   * up to date. `onEmpty` is asked first when the registry is missing or holds nothing.
   */
  static async open(url: string, benchRoot: string, options: { onEmpty?: EmptyRegistryGuard } = {}): Promise<Registry> {
    if (url.startsWith('sqlite:')) {
      const file = url.slice('sqlite:'.length)
      const path = isAbsolute(file) ? file : resolve(benchRoot, file)
      const shown = relative(benchRoot, path).startsWith('..') ? path : relative(benchRoot, path)
      // Asked before the file (or its directory, or a WAL file) is created.
      if (!existsSync(path))
        await askGuard(
          () => options.onEmpty?.(shown, 'missing'),
          () => !existsSync(path),
        )
      else if (statSync(path).size === 0)
        await askGuard(
          () => options.onEmpty?.(shown, 'empty'),
          () => statSync(path).size === 0,
        )
      const registry = new Registry(await openSqlite(path), 'sqlite')
      try {
        await registry.#migrate(() => options.onEmpty?.(shown, 'empty'))
      } catch (error) {
        await registry.close().catch(() => {})
        throw error
      }
      return registry
    }
    if (/^postgres(ql)?:\/\//.test(url)) {
      const registry = new Registry(await openPostgres(url), 'postgres', url)
      try {
        await registry.#migrate(() => options.onEmpty?.(maskUrl(url), 'empty'))
      } catch (error) {
        await registry.close().catch(() => {})
        throw registryError(url, error)
      }
      return registry
    }
    throw usageError(`registry "${maskUrl(url)}" is not supported; use "sqlite:PATH" or a "postgres://" URL`)
  }

  async close(): Promise<void> {
    await this.db.destroy()
  }

  /**
   * Runs `fn` in a transaction that holds the registry's write lock from its first
   * statement (SQLite `BEGIN IMMEDIATE`), so check-then-write sequences cannot interleave
   * with another process. `fn` must use the transaction it is given.
   */
  async writeTransaction<T>(fn: (trx: Kysely<RegistrySchema>) => Promise<T>): Promise<T> {
    if (this.kind === 'sqlite') return immediateTransaction(this.db, fn)
    // PostgreSQL: one advisory lock held to the end of the transaction plays the part of
    // SQLite's write lock, for every machine that shares the registry.
    return this.db.transaction().execute(async (trx) => {
      await sql`select pg_advisory_xact_lock(${WRITE_LOCK_KEY})`.execute(trx)
      return fn(trx)
    })
  }

  /**
   * Runs a claim (a job, an event, a pooled tenant): on SQLite under the write lock; on
   * PostgreSQL in a plain transaction whose candidate rows are locked one at a time with
   * `lockCandidates`, so concurrent claimers on any machine each take a different row instead
   * of queueing on one lock. `claimOneRow` (claim-row.ts) is the usual way in.
   */
  async claimTransaction<T>(fn: (trx: Kysely<RegistrySchema>) => Promise<T>): Promise<T> {
    if (this.kind === 'sqlite') return immediateTransaction(this.db, fn)
    return this.db.transaction().execute(fn)
  }

  /** `FOR UPDATE SKIP LOCKED` on PostgreSQL (of `table` only); SQLite's write lock already serializes claims. */
  lockCandidates<DB, TB extends keyof DB & string, O>(
    query: SelectQueryBuilder<DB, TB, O>,
    table: TB,
  ): SelectQueryBuilder<DB, TB, O> {
    return this.kind === 'postgres' ? query.forUpdate([table] as never).skipLocked() : query
  }

  async #schemaVersion(db: Kysely<RegistrySchema>): Promise<number> {
    // No ledger yet is version 0. SQLite names a missing table only in its message (its code is
    // the generic SQLITE_ERROR), so it is asked first; PostgreSQL says so by code.
    if (this.kind === 'sqlite') {
      const ledger =
        await sql`select 1 from sqlite_master where type = 'table' and name = 'registry_migrations'`.execute(db)
      if (ledger.rows.length === 0) return 0
    }
    try {
      const row = await db
        .selectFrom('registry_migrations')
        .select((eb) => eb.fn.max('version').as('v'))
        .executeTakeFirst()
      return Number(row?.v ?? 0)
    } catch (error) {
      if (codeOf(error) === PG.UNDEFINED_TABLE) return 0
      throw error
    }
  }

  /** Whether the registry has no sites and no tenants (a schema, but nothing in it). */
  async #holdsNothing(): Promise<boolean> {
    const site = await this.db.selectFrom('sites').select('name').limit(1).executeTakeFirst()
    if (site) return false
    return !(await this.db.selectFrom('tenants').select('id').limit(1).executeTakeFirst())
  }

  // Concurrent first runs are safe: the version is read again under the write lock and
  // only the process that still sees it old applies the migrations.
  async #migrate(onEmpty: () => void): Promise<void> {
    const version = await this.#schemaVersion(this.db)
    // No schema, or a schema with nothing in it (as an earlier tenancy left after recreating a
    // deleted registry): the guard decides before any table is made.
    if (version === 0 || (await this.#holdsNothing()))
      await askGuard(onEmpty, async () => (await this.#schemaVersion(this.db)) === 0 || (await this.#holdsNothing()))
    if (version >= REGISTRY_VERSION) return
    await this.writeTransaction(async (trx) => {
      await trx.schema
        .createTable('registry_migrations')
        .ifNotExists()
        .addColumn('version', 'integer', (c) => c.primaryKey())
        .addColumn('applied_at', 'varchar(32)', (c) => c.notNull())
        .execute()
      const current = await this.#schemaVersion(trx)
      if (current > REGISTRY_VERSION) {
        throw new TenancyError(`the registry was written by a newer tenancy (schema ${current}); upgrade tenancy`)
      }
      for (const migration of REGISTRY_MIGRATIONS) {
        if (migration.version <= current) continue
        await migration.up(trx, this.kind)
        await trx.insertInto('registry_migrations').values({ version: migration.version, applied_at: now() }).execute()
      }
    })
  }

  // ---- sites ---------------------------------------------------------------------------

  /**
   * Records the intent to create a site before anything exists on disk or on a server (or,
   * with `state: 'ready'` and its `apps`, a site doctor adopts). Returns false when a row
   * with that name exists already (another process won).
   */
  async insertSiteIntent(site: {
    name: string
    db_type: DbType
    db_name: string
    db_host?: string | null
    db_port?: number | null
    db_user?: string | null
    tenant_id?: number | null
    host: string
    state?: SiteState
    apps?: InstalledAppSummary[]
  }): Promise<boolean> {
    const at = now()
    const insert = this.db
      .insertInto('sites')
      .values({
        name: site.name,
        state: site.state ?? 'creating',
        db_type: site.db_type,
        db_name: site.db_name,
        db_host: site.db_host ?? null,
        db_port: site.db_port ?? null,
        db_user: site.db_user ?? null,
        apps: JSON.stringify(site.apps ?? []),
        tenant_id: site.tenant_id ?? null,
        owner: PROCESS_OWNER,
        host: site.host,
        created_at: at,
        updated_at: at,
      })
      .onConflict((oc) => oc.column('name').doNothing())
    let result
    try {
      result = await insert.executeTakeFirst()
    } catch (error) {
      // A name clash is "do nothing" above; any other unique violation is the database's.
      if (!isUniqueViolation(error)) throw error
      let others = this.db
        .selectFrom('sites')
        .select('name')
        .where('db_type', '=', site.db_type)
        .where('db_name', '=', site.db_name)
      if (site.db_host != null) others = others.where('db_host', '=', site.db_host)
      if (site.db_port != null) others = others.where('db_port', '=', site.db_port)
      const other = await others.executeTakeFirst()
      throw usageError(
        `database "${site.db_name}" on ${site.db_host}:${site.db_port} ` +
          `belongs to site "${other?.name ?? '?'}"; pick another --db-name`,
      )
    }
    return Number(result.numInsertedOrUpdatedRows ?? 0) === 1
  }

  async getSite(name: string): Promise<SiteRecord | undefined> {
    const row = await this.db.selectFrom('sites').selectAll().where('name', '=', name).executeTakeFirst()
    return row ? toRecord(row) : undefined
  }

  async listSites(): Promise<SiteRecord[]> {
    const rows = await this.db.selectFrom('sites').selectAll().orderBy('name').execute()
    return rows.map(toRecord)
  }

  async setSiteState(name: string, state: SiteState, from?: SiteState): Promise<boolean> {
    let query = this.db
      .updateTable('sites')
      .set({ state, updated_at: now(), owner: PROCESS_OWNER })
      .where('name', '=', name)
    if (from) query = query.where('state', '=', from)
    const result = await query.executeTakeFirst()
    return Number(result.numUpdatedRows) === 1
  }

  /** `creating` → `ready` with the installed apps summary, only if the row is still ours to finish. */
  async markSiteReady(name: string, apps: InstalledAppSummary[]): Promise<boolean> {
    const result = await this.db
      .updateTable('sites')
      .set({ state: 'ready', apps: JSON.stringify(apps), updated_at: now() })
      .where('name', '=', name)
      .where('state', '=', 'creating')
      .executeTakeFirst()
    return Number(result.numUpdatedRows) === 1
  }

  async setSiteApps(name: string, apps: InstalledAppSummary[]): Promise<void> {
    await this.db
      .updateTable('sites')
      .set({ apps: JSON.stringify(apps), updated_at: now() })
      .where('name', '=', name)
      .execute()
  }

  /**
   * Points a site's row at another database (a restore's switch), only while it still names
   * `fromDbName`: one statement, so the row names the old database or the new, never a mix.
   * Returns false, having changed nothing, when the row names another database now. With `home`,
   * the site also moves from machine `home.from` (and only while it is still there) to `home.to`.
   */
  async switchSiteDatabase(
    name: string,
    fromDbName: string,
    to: { db_name: string; db_user?: string; db_host?: string; db_port?: number },
    renameFrom?: string,
    home?: { from: string; to: string },
  ): Promise<boolean> {
    const result = await this.db
      .updateTable('sites')
      .set({
        db_name: to.db_name,
        db_user: to.db_user ?? null,
        db_host: to.db_host ?? null,
        db_port: to.db_port ?? null,
        // Data taken under another name: the rename's data steps are still to do (resumeRename).
        ...(renameFrom !== undefined && { rename_from: renameFrom }),
        // `restore --rehome`: the site moves to this machine in the same statement.
        ...(home !== undefined && { host: home.to }),
        updated_at: now(),
      })
      .where('name', '=', name)
      .where('db_name', '=', fromDbName)
      .$call((q) => (home === undefined ? q : q.where('host', '=', home.from)))
      .executeTakeFirst()
    return Number(result.numUpdatedRows) === 1
  }

  async deleteSite(name: string): Promise<void> {
    await this.db.deleteFrom('sites').where('name', '=', name).execute()
  }

  /** Tenant names owning the given sites, for listings. */
  /** The tenant owning `site` (one indexed row), or undefined: for one site, not `tenantsBySite`'s whole map. */
  async tenantOfSite(site: string): Promise<{ name: string; pending_since: string | null } | undefined> {
    return this.db.selectFrom('tenants').select(['name', 'pending_since']).where('site', '=', site).executeTakeFirst()
  }

  async tenantsBySite(): Promise<Map<string, { name: string; pending_since: string | null }>> {
    const rows = await this.db
      .selectFrom('tenants')
      .select(['name', 'site', 'pending_since'])
      .where('site', 'is not', null)
      .execute()
    return new Map(rows.map((r) => [r.site!, { name: r.name, pending_since: r.pending_since }]))
  }

  // ---- error log -----------------------------------------------------------------------

  async logError(entry: {
    tenant?: string | null
    site?: string | null
    step?: string | null
    job_id?: number | null
    message: string
  }): Promise<void> {
    await this.db
      .insertInto('error_log')
      .values({
        at: now(),
        tenant: entry.tenant ?? null,
        site: entry.site ?? null,
        step: entry.step ?? null,
        job_id: entry.job_id ?? null,
        message: entry.message,
      })
      .execute()
  }
}

export type RegistryTransaction = Transaction<RegistrySchema>

/**
 * Asks the empty-registry guard; a refusal stands only if the registry is still empty. A
 * site's row is written before its directory, so a site the guard saw being made by another
 * process on a fresh bench has its row by now, and that registry is not empty after all.
 */
async function askGuard(ask: () => void, stillEmpty: () => boolean | Promise<boolean>): Promise<void> {
  try {
    ask()
  } catch (error) {
    if (await stillEmpty()) throw error
  }
}

/** The key of the advisory lock that serializes registry writers on PostgreSQL ("tena" in ASCII). */
const WRITE_LOCK_KEY = 0x74656e61

/** Whether a registry write failed on a unique index or primary key, on SQLite or PostgreSQL. */
export function isUniqueViolation(error: unknown): boolean {
  const code = codeOf(error)
  return code === PG.UNIQUE_VIOLATION || code === SQLITE.CONSTRAINT_UNIQUE || code === SQLITE.CONSTRAINT_PRIMARYKEY
}

function registryError(url: string, error: unknown): TenancyError {
  if (error instanceof TenancyError) return error
  const code = codeOf(error)
  const hint =
    code === NODE.ECONNREFUSED
      ? 'is the server running, and are host and port right?'
      : code === PG.INVALID_PASSWORD || code === PG.INVALID_AUTHORIZATION
        ? 'check the user and password in the URL'
        : code === PG.INVALID_CATALOG_NAME
          ? 'create the database first (createdb), or name an existing one'
          : 'check the server and the URL'
  // A URL naming a database that is not there is a configuration error (exit 2).
  return new TenancyError(`cannot open the registry ${maskUrl(url)}: ${messageOf(error)}; ${hint}`, {
    cause: error,
    exitCode: code === PG.INVALID_CATALOG_NAME ? 2 : undefined,
  })
}

async function openPostgres(url: string): Promise<Kysely<RegistrySchema>> {
  const pg = await loadPg()
  const pool = new pg.Pool({
    connectionString: url,
    max: 4,
    connectionTimeoutMillis: 10_000,
    // Ids and counts are far below 2^53: read int8 as numbers, as SQLite gives them.
    types: {
      getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
        oid === 20 ? Number : pg.types.getTypeParser(oid, format as never)) as never,
    },
  })
  watchPgPool(pool)
  return new Kysely<RegistrySchema>({
    dialect: guardDialect(new PostgresDialect({ pool }), `the registry ${maskUrl(url)}`, pgServerLoss),
  })
}

async function openSqlite(path: string): Promise<Kysely<RegistrySchema>> {
  const Database = loadSqlite()
  // A damaged registry is the bench's configuration broken (exit 2), like a malformed config file.
  const guard = sqliteGuard(path, 'the registry', { corruptExitCode: EXIT_USAGE })
  let raw
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 })
    closeSync(openSync(path, 'a', 0o600))
    raw = new Database(path, { timeout: 15_000 })
  } catch (error) {
    throw (
      storageError(error, path, 'the registry') ??
      new TenancyError(`cannot open the registry ${path}: ${(error as Error).message}`, { cause: error })
    )
  }
  // Switching to WAL needs a moment of exclusive access; a concurrent first open may see
  // SQLITE_BUSY without the busy handler, so retry briefly.
  for (let attempt = 0; ; attempt++) {
    try {
      guard(() => raw.pragma('journal_mode = WAL'))
      break
    } catch (error) {
      if (codeOf(error) !== SQLITE.BUSY || attempt > 200) throw error
      await new Promise((r) => setTimeout(r, 10 + Math.random() * 20))
    }
  }
  guard(() => raw.pragma('synchronous = NORMAL'))
  guard(() => raw.pragma('foreign_keys = ON'))
  return new Kysely<RegistrySchema>({
    dialect: new SqliteDialect({ database: guardedDatabase(raw, guard) }),
    plugins: [new LiteralLimitPlugin()],
  })
}
