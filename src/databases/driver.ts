import type { CompiledQuery, Kysely, QueryResult } from 'kysely'
import type { DbType } from '../config/config.js'
import type { ServerAdmin } from './server-admin.js'

/** How a site reaches its database: the `db_*` keys of `site_config.json`. */
export interface SiteDbSettings {
  db_type: DbType
  db_name: string
  db_file?: string
  db_user?: string
  db_password?: string
  db_host?: string
  db_port?: number
  db_socket?: string
  /** MariaDB: the host part of the site's user, when not `%`. */
  db_user_host?: string
}

/** An open connection to one site's database, as the site's own user. */
export interface SiteConnection {
  readonly db: Kysely<any>
  readonly dbType: DbType
  /** Whether DDL inside a transaction rolls back with it (SQLite, PostgreSQL: yes; MariaDB: no). */
  readonly transactionalDdl: boolean
  /**
   * Runs `fn` in one transaction that holds the database's write lock from the start, so two
   * processes migrating the same site take turns instead of deadlocking.
   */
  transaction<T>(fn: (trx: Kysely<any>, exec: (script: string) => Promise<void>) => Promise<T>): Promise<T>
  /** Without transactional DDL: what lets a migration run one statement at a time and resume after a crash. */
  readonly resumableDdl?: ResumableDdl
  close(): Promise<void>
}

/**
 * How migrations resume on a database whose DDL commits as it runs (MariaDB): each
 * statement goes through `run`, which records the migration's position before it, and the
 * one statement whose commit raced a crash is recognised by its error when run again.
 */
export interface ResumableDdl {
  /** Calls `fn` with a transaction in this SQL dialect that sends every statement through `run` (which executes it). */
  through<T>(
    run: (query: CompiledQuery) => Promise<QueryResult<unknown>>,
    fn: (db: Kysely<any>) => Promise<T>,
  ): Promise<T>
  /** Whether a schema statement failed because its change is in place already (the table exists, the column is gone, …). */
  alreadyApplied(error: unknown): boolean
  /**
   * After a schema statement failed: commits what `write` writes, when the failed statement's
   * implicit commit left nothing else uncommitted (so nothing the rollback should undo is kept).
   */
  commitAlone(trx: Kysely<any>, write: () => Promise<void>): Promise<void>
}

/**
 * One kind of database server behind one interface (like Kysely's `Dialect`): make a site's
 * database and its own user, drop them, tell whether they exist, connect as the site.
 */
export interface DatabaseDriver {
  readonly type: DbType
  /** Fills in the settings for a new site: file name, or server, user and a new random password. */
  plan(dbName: string, admin?: ServerAdmin): SiteDbSettings
  /** Creates the database (and its user). Adopts nothing: an existing database is an error. */
  create(settings: SiteDbSettings, sitePath: string, admin?: ServerAdmin): Promise<void>
  /** Drops the database and its user; what is already gone is not an error. */
  drop(settings: SiteDbSettings, sitePath: string, admin?: ServerAdmin): Promise<void>
  /** Whether the database is there (for servers: the site's own user can reach it). */
  exists(settings: SiteDbSettings, sitePath: string): Promise<boolean>
  /** Connects as the site's own user: everything a site does goes through this. */
  connect(settings: SiteDbSettings, sitePath: string): Promise<SiteConnection>
  /** Connects with the server's admin (root) credentials, only to create and drop. */
  connectAdmin(settings: SiteDbSettings, sitePath: string, admin?: ServerAdmin): Promise<SiteConnection>
}
