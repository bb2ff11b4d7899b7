import type { Readable, Writable } from 'node:stream'
import type { CompiledQuery, InsertQueryBuilder, Kysely, QueryResult } from 'kysely'
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
  /** The driver that opened it: what the database can do. */
  readonly driver: DatabaseDriver
  /**
   * Runs `fn` in one transaction that holds the database's write lock from the start, so two
   * processes migrating the same site take turns instead of deadlocking.
   */
  transaction<T>(fn: (tx: SiteTx) => Promise<T>): Promise<T>
  close(): Promise<void>
}

/** One open site transaction: what migrations, fixtures and installs are handed instead of its three parts. */
export interface SiteTx {
  /** The Kysely transaction. */
  readonly trx: Kysely<any>
  /** Runs a script of several SQL statements inside the transaction. */
  exec(script: string): Promise<void>
  /** The driver of the site's database: what it can do, and its dialect's upserts. */
  readonly driver: DatabaseDriver
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
  /**
   * Whether a schema statement failed because its change is in place already (the table exists,
   * the column is gone, …).
   */
  alreadyApplied(error: unknown): boolean
  /**
   * After a schema statement failed: commits what `write` writes, when the failed statement's
   * implicit commit left nothing else uncommitted (so nothing the rollback should undo is kept).
   */
  commitAlone(trx: Kysely<any>, write: () => Promise<void>): Promise<void>
  /** What a failed migration's message adds: what of it stayed in place, and where a rerun goes on. */
  readonly failureNote: string
}

/** Where a driver writes a snapshot of a site's database (`DatabaseDriver.dump`). */
export interface DumpTarget {
  /** Receives the dump's bytes, already compressed; the driver ends it when the dump is complete. */
  sink: Writable
  /** A private (0700) directory for scratch files, removed by the caller afterwards. */
  workDir: string
  /** The environment a dump program starts from; secrets are taken out of it (`childEnvironment`). */
  env: NodeJS.ProcessEnv
  signal?: AbortSignal
}

/** What a driver loads into a fresh database (`DatabaseDriver.restore`). */
export interface RestoreSource {
  /** The dump's bytes exactly as `dump` wrote them (compressed, already decrypted). */
  source: Readable
  /** A private (0700) directory for scratch files, removed by the caller afterwards. */
  workDir: string
  /** The environment a restore program starts from; secrets are taken out of it (`childEnvironment`). */
  env: NodeJS.ProcessEnv
  signal?: AbortSignal
}

/** What a driver whose databases live on a server knows of that server. */
export interface ServerKind {
  /** The port the server listens on unless the config or a flag says otherwise. */
  readonly defaultPort: number
  /** The admin user that creates and drops databases unless the config or a flag says otherwise. */
  readonly defaultAdminUser: string
  /** The seed-compatible config key that may hold the admin password (read with a warning). */
  readonly adminPasswordConfigKey?: string
}

/**
 * One kind of database behind one interface (like Kysely's `Dialect` and its adapter's
 * `supportsTransactionalDdl`): what it can do, its dialect's upserts, and how to make a
 * site's database and its own user, drop them, tell whether they exist and connect as the
 * site. Callers ask these, never which kind of database it is.
 */
export interface DatabaseDriver {
  readonly type: DbType
  /** How messages name this kind of database: "SQLite", "MariaDB", "PostgreSQL". */
  readonly label: string
  /**
   * The server the databases live on; undefined when a site's database is a file in its own
   * directory (SQLite). A server's database is shared ground: it takes the server's admin to
   * create and drop, outlives a lost site directory, and another site's row may name it.
   * Work on it waits on the network rather than the CPU.
   */
  readonly server?: ServerKind
  /** Whether DDL inside a transaction rolls back with it (SQLite, PostgreSQL: yes; MariaDB: no). */
  readonly transactionalDdl: boolean
  /** Without transactional DDL: what lets a migration run one statement at a time and resume after a crash. */
  readonly resumableDdl?: ResumableDdl
  /**
   * An insert that updates `updates` when a row with the same `key` exists (`ON CONFLICT … DO
   * UPDATE`, `ON DUPLICATE KEY UPDATE`). With no `updates`, an existing row is left as it is.
   */
  upsert(
    db: Kysely<any>,
    table: string,
    values: Record<string, unknown>,
    key: string[],
    updates?: Record<string, unknown>,
  ): InsertQueryBuilder<any, any, any>
  /**
   * An insert of `rows` (all with the same columns) that, where a row with the same `key`
   * exists, overwrites its `columns` with the inserted row's values (a row that holds them
   * already is not written again); with no `columns`, an existing row is left as it is. How
   * fixtures are written.
   */
  upsertRows(
    db: Kysely<any>,
    table: string,
    rows: Record<string, unknown>[],
    key: string[],
    columns: string[],
  ): InsertQueryBuilder<any, any, any>
  /** The primary key columns of `table`, in key order (none: it has no primary key). */
  primaryKey(db: Kysely<any>, table: string): Promise<string[]>
  /**
   * Fills in the settings for a new site: file name, or server, user and a new random password.
   * With `beside`, a second database of the same site next to its current one (a restore's):
   * SQLite gives it another file name in the directory.
   */
  plan(dbName: string, admin?: ServerAdmin, beside?: SiteDbSettings): SiteDbSettings
  /** Creates the database (and its user). Adopts nothing: an existing database is an error. */
  create(settings: SiteDbSettings, sitePath: string, admin?: ServerAdmin): Promise<void>
  /** Drops the database and its user; what is already gone is not an error. */
  drop(settings: SiteDbSettings, sitePath: string, admin?: ServerAdmin): Promise<void>
  /** Whether the database is there (for servers: the site's own user can reach it). */
  exists(settings: SiteDbSettings, sitePath: string): Promise<boolean>
  /** Connects as the site's own user: everything a site does goes through this. */
  connect(settings: SiteDbSettings, sitePath: string): Promise<SiteConnection>
  /**
   * The rows of one read-only query, on a connection opened and closed around it without a
   * query builder (SQLite: one prepared statement on the file), where that is cheaper than
   * `connect`; a fleet command that only looks at thousands of sites uses it. Absent: `connect`.
   */
  readOnce?(settings: SiteDbSettings, sitePath: string, query: CompiledQuery): Promise<unknown[]>
  /**
   * The file name of a dump in a backup set: `database.sqlite.gz`, `database.pgdump`,
   * `database.sql.gz`.
   */
  readonly dumpFile: string
  /**
   * Writes a consistent snapshot of the database, taken while the site is in use, into
   * `target.sink`, as the site's own user (SQLite: the online backup API, gzip; PostgreSQL:
   * `pg_dump -Fc`; MariaDB: `mariadb-dump --single-transaction`, gzip). A dump program gets
   * the password through a 0600 file, never its argv or environment.
   */
  dump(settings: SiteDbSettings, sitePath: string, target: DumpTarget): Promise<void>
  /**
   * Loads a dump `dump` wrote into the database `settings` names, which `create` has just made
   * empty, as the site's own user (SQLite: the file written whole and checked; PostgreSQL:
   * `pg_restore` in one transaction; MariaDB: the `mariadb` client). Throws if any of it fails;
   * the caller drops the database then.
   */
  restore(settings: SiteDbSettings, sitePath: string, from: RestoreSource): Promise<void>
  /** Connects with the server's admin (root) credentials, only to create and drop. */
  connectAdmin(settings: SiteDbSettings, sitePath: string, admin?: ServerAdmin): Promise<SiteConnection>
}
