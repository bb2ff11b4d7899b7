import { createHash } from 'node:crypto'
import { lazyBuiltin } from '../util/lazy-builtin.js'
import {
  Kysely,
  MysqlAdapter,
  MysqlDialect,
  MysqlIntrospector,
  MysqlQueryCompiler,
  sql,
  type DatabaseConnection,
  type Driver,
} from 'kysely'
import { MARIADB, MARIADB_CODE, NODE, errnoOf } from '../error-codes.js'
import { TenancyError } from '../errors.js'
import { assertDbName } from '../names.js'
import { USER_HOST } from '../config/config.js'
import { generatePassword } from '../secrets/hashing.js'
import { faultPoint } from '../util/fault.js'
import { mysqlNativeHash } from '../secrets/server-verifiers.js'
import type { DatabaseDriver, ResumableDdl, SiteConnection, SiteDbSettings } from './driver.js'
import type { ServerAdmin } from './server-admin.js'
import { ADMIN_LOGIN_HINT, provenConnection, serverFailure } from './server-common.js'
import { ServerGoneError, guardDialect, type ServerLoss } from './server-gone.js'
import { runDumpProgram, type DumpProgram, type ProgramStreams } from './dump-program.js'
import { childEnvironment } from '../util/run-command.js'
import { withSecretFile } from '../util/secret-file.js'
import { zlibChunks } from '../util/stream-chunks.js'

const zlib = lazyBuiltin<typeof import('node:zlib')>('node:zlib')

/** mysql2's codes for a connection the server closed or that broke under a command. */
const SOCKET_CLOSED = new Set<string>([MARIADB_CODE.PROTOCOL_CONNECTION_LOST, NODE.ECONNRESET, NODE.EPIPE])
/** Nothing listens on the host and port, or the socket file is gone. */
const REFUSED = new Set<string>([NODE.ECONNREFUSED, NODE.ENOENT])

/** Whether a mysql2 error means the server closed the connection, refused a new one, or neither. */
function serverLoss(error: unknown): ServerLoss {
  const { code, errno, fatal } = (error ?? {}) as { code?: string; errno?: number; fatal?: boolean }
  if (
    (code !== undefined && SOCKET_CLOSED.has(code)) ||
    errno === MARIADB.SERVER_SHUTDOWN ||
    errno === MARIADB.CONNECTION_KILLED
  )
    return 'closed'
  // A fatal error without a code is mysql2's own "connection is in closed state".
  if (fatal === true && code === undefined) return 'closed'
  if (code !== undefined && REFUSED.has(code)) return 'refused'
  return undefined
}

/**
 * Errors of a schema statement whose change is already there: what the one statement whose
 * commit raced a crash says when a resumed migration runs it again.
 */
const MY_ALREADY_APPLIED: ReadonlySet<number> = new Set([
  MARIADB.TABLE_EXISTS,
  MARIADB.BAD_TABLE,
  MARIADB.BAD_FIELD,
  MARIADB.DUP_FIELDNAME,
  MARIADB.DUP_KEYNAME,
  MARIADB.CANT_DROP_FIELD_OR_KEY,
  MARIADB.NO_SUCH_TABLE,
  MARIADB.FK_DUP_NAME,
])

/**
 * Migration statements one at a time: a Kysely whose only connection hands each compiled
 * statement to `run`. Its transaction joins the site's open one (begin and commit do nothing
 * here), so a migration gets a transaction as on the other drivers.
 */
const resumableDdl: ResumableDdl = {
  through(run, fn) {
    const connection: DatabaseConnection = {
      executeQuery: (query) => run(query) as never,
      async *streamQuery() {
        throw new TenancyError('a migration on MariaDB cannot stream a query; use execute()')
      },
    }
    const driver: Driver = {
      init: async () => {},
      acquireConnection: async () => connection,
      beginTransaction: async () => {},
      commitTransaction: async () => {},
      rollbackTransaction: async () => {},
      releaseConnection: async () => {},
      destroy: async () => {},
    }
    const db = new Kysely<any>({
      dialect: {
        createAdapter: () => new MysqlAdapter(),
        createDriver: () => driver,
        createQueryCompiler: () => new MysqlQueryCompiler(),
        createIntrospector: (k) => new MysqlIntrospector(k),
      },
    })
    return db.transaction().execute(fn)
  },
  alreadyApplied: (error) => MY_ALREADY_APPLIED.has(errnoOf(error) ?? 0),
  failureNote:
    'MariaDB commits DDL as it runs, so the statements of this migration before the failing one stay in place, ' +
    'and a rerun resumes at the failing one',
  async commitAlone(trx, write) {
    // A failed DDL statement committed what came before it, unless it failed before running
    // (a syntax error): then the transaction still holds work that the rollback must undo.
    const { rows } = await sql<{ open: number }>`select @@in_transaction as open`.execute(trx)
    if (Number(rows[0]?.open) !== 0) return
    await write()
    await sql`commit`.execute(trx)
  },
}

async function loadMysql() {
  return (await import('mysql2/promise')).default
}

// Names are validated ([a-z0-9_]) before they get here.
const ident = (name: string) => `\`${assertDbName(name)}\``
/**
 * The database in a GRANT: there `_` and `%` are wildcards, so `_abc` would also match `xabc`
 * (a database the user could then create, or another site's). Escaped, it names one database.
 */
const grantIdent = (name: string) => `\`${assertDbName(name).replace(/[_%]/g, '\\$&')}\``
/** Where MariaDB listens unless told otherwise. */
const DEFAULT_PORT = 3306
/**
 * A `[client]` options file holding the site's login (mariadb-dump's `--defaults-extra-file`),
 * so the password is in neither argv nor the environment. Values are double-quoted, with
 * backslashes escaped as the options file reader expects.
 */
function clientOptionFile(settings: SiteDbSettings, user: string): string {
  const quoted = (value: string) => {
    if (/["\r\n]/.test(value))
      throw new TenancyError(
        `the site's db_user or db_password holds a quote or line break; mariadb-dump cannot read it`,
      )
    return `"${value.replace(/\\/g, '\\\\')}"`
  }
  const lines = ['[client]', `user=${quoted(user)}`, `password=${quoted(settings.db_password ?? '')}`]
  if (settings.db_socket) lines.push(`socket=${quoted(settings.db_socket)}`)
  else lines.push(`host=${quoted(settings.db_host ?? '127.0.0.1')}`, `port=${settings.db_port ?? DEFAULT_PORT}`)
  return `${lines.join('\n')}\n`
}

/** Runs `mariadb-dump` or `mariadb` logged in as the site's user through a 0600 options file. */
function runAsSite(
  settings: SiteDbSettings,
  program: DumpProgram,
  args: string[],
  streams: ProgramStreams,
  workDir: string,
) {
  const user = settings.db_user ?? settings.db_name
  return withSecretFile(
    'client.cnf',
    clientOptionFile(settings, user),
    (file) =>
      // The options file must come first: the program reads it before anything else.
      runDumpProgram(program, [`--defaults-extra-file=${file}`, ...args], streams),
    workDir,
  )
}

/** Site users are created for any host ('%') unless `db.user_host` narrows it. */
const ANY_HOST = '%'
const hostOf = (settings: SiteDbSettings) => {
  const host = settings.db_user_host ?? ANY_HOST
  if (!USER_HOST.test(host))
    throw new TenancyError(`invalid db_user_host "${host}"; use a host pattern such as "%" or "10.0.%"`)
  return host
}

function where(settings: { db_host?: string; db_port?: number; db_socket?: string }): string {
  return settings.db_socket
    ? `MariaDB at ${settings.db_socket}`
    : `MariaDB at ${settings.db_host ?? '127.0.0.1'}:${settings.db_port ?? DEFAULT_PORT}`
}

function serverError(what: string, server: string, error: unknown, asSite = false): TenancyError {
  const code = (error as { code?: string }).code
  const loss = serverLoss(error)
  const hint =
    loss === 'refused'
      ? 'is it running, and are the host and port ' +
        '(--db-host, --db-port, or db.host, db.port, db.socket in the config) right?'
      : code === MARIADB_CODE.ACCESS_DENIED && asSite
        ? "the site's own user was refused: check db_user and db_password in its site_config.json, " +
          'and that db.user_host admits this machine'
        : code === MARIADB_CODE.ACCESS_DENIED
          ? ADMIN_LOGIN_HINT
          : code === MARIADB_CODE.DBACCESS_DENIED || code === MARIADB_CODE.SPECIFIC_ACCESS_DENIED
            ? 'the user lacks the privilege; use root or a user with CREATE, CREATE USER and GRANT OPTION'
            : 'check the server'
  return serverFailure(what, server, error, hint, loss)
}

async function withAdmin<T>(
  admin: ServerAdmin,
  fn: (conn: import('mysql2/promise').Connection) => Promise<T>,
): Promise<T> {
  const mysql = await loadMysql()
  let conn
  try {
    conn = await mysql.createConnection({
      host: admin.host,
      port: admin.port,
      socketPath: admin.socket,
      user: admin.user,
      password: admin.password,
    })
  } catch (error) {
    throw serverError(
      'connecting as the admin user',
      where({ db_host: admin.host, db_port: admin.port, db_socket: admin.socket }),
      error,
    )
  }
  // A connection that breaks while idle emits `error`; unheard, that would end the process.
  conn.on('error', () => {})
  try {
    return await fn(conn)
  } finally {
    // Not awaited: the goodbye round trip is not worth waiting for.
    void conn.end().catch(() => {})
  }
}

/** Kysely's MysqlDialect drives mysql2's callback pool (the promise pool would never answer it). */
async function loadMysqlCallbacks() {
  return (await import('mysql2')).default
}

function kyselyFor(
  settings: SiteDbSettings,
  user: string,
  password: string,
  mysql: Awaited<ReturnType<typeof loadMysqlCallbacks>>,
): Kysely<any> {
  const pool = mysql.createPool({
    host: settings.db_host,
    port: settings.db_port,
    socketPath: settings.db_socket,
    user,
    password,
    database: settings.db_name,
    connectionLimit: 2,
    // .sql migrations are scripts of several statements.
    multipleStatements: true,
  })
  // mysql2 emits `error` on a pooled connection each time it breaks but listens only once
  // itself: a second one, unheard, would end the process.
  pool.on('connection', (conn) => conn.on('error', () => {}))
  return new Kysely<any>({ dialect: guardDialect(new MysqlDialect({ pool }), where(settings), serverLoss) })
}

/** How long a second migrator of the same database waits for the first, in seconds. */
const SITE_LOCK_WAIT_S = 600

/** The name of a database's own lock: GET_LOCK names are server-wide, so each database gets its own. */
function siteLockName(dbName: string): string {
  const name = `tenancy:${dbName}`
  return name.length <= 64 ? name : `tenancy:${createHash('sha1').update(dbName).digest('hex')}`
}

function connection(db: Kysely<any>, dbName: string): SiteConnection {
  const lock = siteLockName(dbName)
  return {
    db,
    driver: mariadbDriver,
    // A row lock would not survive the implicit commits of DDL, so the lock is a named lock
    // of this database's own, held by the connection around the transaction.
    transaction: (fn) =>
      db.connection().execute(async (conn) => {
        const { rows } = await sql<{
          got: number | null
        }>`select get_lock(${lock}, ${SITE_LOCK_WAIT_S}) as got`.execute(conn)
        if (Number(rows[0]?.got) !== 1)
          throw new TenancyError(
            `another process held the lock on database "${dbName}" for ${SITE_LOCK_WAIT_S} s; ` +
              `check "tenancy migrate" or installs still running on it`,
          )
        // autocommit off: after each implicit commit of a DDL statement the statements that
        // follow form a new transaction again (with it on, each would commit on its own), so
        // data and the migration's recorded position commit together.
        await sql`set autocommit = 0`.execute(conn)
        try {
          return await conn
            .transaction()
            .execute((trx) =>
              fn({ trx, exec: async (script) => void (await sql.raw(script).execute(trx)), driver: mariadbDriver }),
            )
        } finally {
          await sql`set autocommit = 1`.execute(conn).catch(() => {})
          await sql`select release_lock(${lock})`.execute(conn).catch(() => {})
        }
      }),
    close: () => db.destroy(),
  }
}

/**
 * MariaDB / MySQL: a database and a user of its own granted rights on that database only
 * (`GRANT ALL ON db.* TO user@'%'`). The admin connection only creates and drops.
 */
export const mariadbDriver: DatabaseDriver = {
  type: 'mariadb',
  label: 'MariaDB',
  server: {
    defaultPort: DEFAULT_PORT,
    defaultAdminUser: 'root',
    adminPasswordConfigKey: 'provision_mariadb_root_password',
  },
  // DDL commits implicitly on MariaDB: migrations record their position statement by
  // statement (see resumableDdl), so a rerun resumes where a crash or failure stopped.
  transactionalDdl: false,
  resumableDdl,

  upsert(db, table, values, _key, updates = {}) {
    const insert = db.insertInto(table).values(values)
    return Object.keys(updates).length > 0 ? insert.onDuplicateKeyUpdate(updates) : insert.ignore()
  },

  upsertRows(db, table, rows, key, columns) {
    // With nothing to update, the key is set to itself: the row stays as it is.
    const set = columns.length > 0 ? columns : key
    return db
      .insertInto(table)
      .values(rows)
      .onDuplicateKeyUpdate(Object.fromEntries(set.map((c) => [c, sql`values(${sql.ref(c)})`])))
  },

  async primaryKey(db, table) {
    const { rows } = await sql<{ name: string }>`
      select column_name as name from information_schema.key_column_usage
      where table_schema = database() and table_name = ${table} and constraint_name = 'PRIMARY'
      order by ordinal_position`.execute(db)
    return rows.map((r) => r.name)
  },

  dumpFile: 'database.sql.gz',

  async dump(settings, _sitePath, target) {
    await runAsSite(
      settings,
      { command: 'mariadb-dump', debianPackage: 'mariadb-client' },
      [
        // One REPEATABLE READ snapshot, no table locks: the site keeps writing meanwhile.
        '--single-transaction',
        // Listing tablespaces needs the PROCESS privilege, which a site's own user lacks.
        '--no-tablespaces',
        '--hex-blob',
        '--triggers',
        assertDbName(settings.db_name),
      ],
      {
        env: childEnvironment(target.env, {}),
        sink: target.sink,
        through: zlib().createGzip(zlibChunks),
        what: `dumping the database "${settings.db_name}" on ${where(settings)}`,
        signal: target.signal,
      },
      target.workDir,
    )
  },

  async restore(settings, _sitePath, from) {
    await runAsSite(
      settings,
      { command: 'mariadb', debianPackage: 'mariadb-client' },
      // Not a terminal: the client stops at the first failing statement and exits non-zero.
      // --sandbox: a dump is data; a client command in it (\! shell, system, source, tee) is refused.
      ['--batch', '--sandbox', `--database=${assertDbName(settings.db_name)}`],
      {
        env: childEnvironment(from.env, {}),
        input: [from.source, zlib().createGunzip(zlibChunks)],
        what: `restoring into the database "${settings.db_name}" on ${where(settings)}`,
        signal: from.signal,
      },
      from.workDir,
    )
  },

  plan(dbName, admin) {
    return {
      db_type: 'mariadb',
      db_name: dbName,
      db_user: dbName,
      db_password: generatePassword(),
      db_host: admin?.host ?? '127.0.0.1',
      db_port: admin?.port ?? DEFAULT_PORT,
      ...(admin?.socket ? { db_socket: admin.socket } : {}),
      ...(admin?.userHost && admin.userHost !== ANY_HOST ? { db_user_host: admin.userHost } : {}),
    }
  },

  async create(settings, _sitePath, admin) {
    if (!admin) throw new TenancyError('creating a MariaDB database needs the admin connection')
    const user = assertDbName(settings.db_user ?? settings.db_name)
    await withAdmin(admin, async (conn) => {
      try {
        await conn.query(`CREATE DATABASE ${ident(settings.db_name)} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`)
      } catch (error) {
        if (errnoOf(error) === MARIADB.DB_CREATE_EXISTS)
          throw new TenancyError(
            `database "${settings.db_name}" exists already on ${where(settings)}; pick another --db-name`,
            { cause: error },
          )
        throw serverError(`creating the database "${settings.db_name}"`, where(settings), error)
      }
      faultPoint('between-database-and-user')
      let userMade = false
      try {
        // MariaDB is given the password's hash, not the password (the general log shows a hash).
        // MySQL 8 dropped that syntax and may not have the plugin: it gets the password, which
        // is a generated base64url string (no quote can appear in it).
        const mariadb = /mariadb/i.test(
          String(((await conn.query('SELECT VERSION() AS v')) as [{ v: string }[], unknown])[0][0]?.v),
        )
        const identified = mariadb
          ? `IDENTIFIED BY PASSWORD '${mysqlNativeHash(settings.db_password ?? '')}'`
          : `IDENTIFIED BY '${settings.db_password}'`
        await conn.query(`CREATE USER '${user}'@'${hostOf(settings)}' ${identified}`)
        userMade = true
        await conn.query(`GRANT ALL PRIVILEGES ON ${grantIdent(settings.db_name)}.* TO '${user}'@'${hostOf(settings)}'`)
      } catch (error) {
        // Undo what this call made, so a failed grant leaves neither database nor user.
        if (userMade) await conn.query(`DROP USER IF EXISTS '${user}'@'${hostOf(settings)}'`).catch(() => {})
        await conn.query(`DROP DATABASE IF EXISTS ${ident(settings.db_name)}`).catch(() => {})
        if (errnoOf(error) === MARIADB.CANNOT_USER)
          throw new TenancyError(
            `database user "${user}" exists already on ${where(settings)}; pick another --db-name or drop it`,
            { cause: error },
          )
        throw serverError(`creating the database user "${user}"`, where(settings), error)
      }
    })
  },

  async drop(settings, _sitePath, admin) {
    if (!admin) throw new TenancyError('dropping a MariaDB database needs the admin connection')
    const user = assertDbName(settings.db_user ?? settings.db_name)
    await withAdmin(admin, async (conn) => {
      try {
        await conn.query(`DROP DATABASE IF EXISTS ${ident(settings.db_name)}`)
        await conn.query(`DROP USER IF EXISTS '${user}'@'${hostOf(settings)}'`)
      } catch (error) {
        throw serverError(`dropping the database "${settings.db_name}"`, where(settings), error)
      }
    })
  },

  async exists(settings) {
    const mysql = await loadMysql()
    try {
      const conn = await mysql.createConnection({
        host: settings.db_host,
        port: settings.db_port,
        socketPath: settings.db_socket,
        user: settings.db_user,
        password: settings.db_password,
        database: settings.db_name,
      })
      await conn.end()
      return true
    } catch (error) {
      // A server that is not there says nothing of the database: not "missing".
      if (serverLoss(error) === 'refused')
        throw new ServerGoneError(where(settings), 'refused', error, 'looking for the site database')
      return false
    }
  },

  async connectAdmin(settings, _sitePath, admin) {
    if (!admin) throw new TenancyError('the admin connection needs the admin credentials')
    return connection(kyselyFor(settings, admin.user, admin.password, await loadMysqlCallbacks()), settings.db_name)
  },

  async connect(settings) {
    const db = kyselyFor(
      settings,
      settings.db_user ?? settings.db_name,
      settings.db_password ?? '',
      await loadMysqlCallbacks(),
    )
    return connection(
      await provenConnection(db, (error) =>
        serverError(`connecting to the site database "${settings.db_name}"`, where(settings), error, true),
      ),
      settings.db_name,
    )
  },
}
