import { Kysely, PostgresDialect, sql } from 'kysely'
import { TenancyError } from '../errors.js'
import { assertDbName } from '../names.js'
import { generatePassword } from '../secrets/hashing.js'
import { faultPoint } from '../util/fault.js'
import { loadPg } from '../util/load-pg.js'
import { scramSha256Verifier } from '../secrets/server-verifiers.js'
import type { DatabaseDriver, SiteConnection, SiteDbSettings } from './driver.js'
import { onConflictUpsert, onConflictUpsertRows } from './on-conflict-upsert.js'
import type { ServerAdmin } from './server-admin.js'
import { ADMIN_LOGIN_HINT, provenConnection, serverFailure } from './server-common.js'
import { ServerGoneError, guardDialect } from './server-gone.js'
import { PG, codeOf } from '../error-codes.js'
import { pgServerLoss, watchPgClient, watchPgPool } from './postgres-errors.js'
import { runDumpProgram } from './dump-program.js'
import { childEnvironment } from '../util/run-command.js'
import { withSecretFile } from '../util/secret-file.js'

/** The key of a site database's own migration lock (advisory locks are per database). */
const SITE_LOCK_KEY = 0x7465_6e61_6e74
/** A field of a .pgpass line: `:` and `\\` are escaped with a backslash. */
const pgpassField = (value: string) => value.replace(/[\\:]/g, '\\$&')

/** Where PostgreSQL listens unless told otherwise. */
const DEFAULT_PORT = 5432

// Names are validated ([a-z0-9_]) before they get here; the quotes keep the leading "_".
const ident = (name: string) => `"${assertDbName(name)}"`

function where(settings: { db_host?: string; db_port?: number }): string {
  return `PostgreSQL at ${settings.db_host ?? '127.0.0.1'}:${settings.db_port ?? DEFAULT_PORT}`
}

/**
 * A one-line error for a server that is down, went away, refuses the login or lacks a
 * privilege; `client` is the admin client the error came from, if any.
 */
function serverError(what: string, server: string, error: unknown, asSite = false, client?: object): TenancyError {
  const code = (error as { code?: string }).code
  const loss = pgServerLoss(error, client)
  const hint =
    loss === 'refused'
      ? 'is it running, and are the host and port (--db-host, --db-port, or db.host, db.port in the config) right?'
      : (code === PG.INVALID_PASSWORD || code === PG.INVALID_AUTHORIZATION) && asSite
        ? "the site's own role was refused: check db_user and db_password in its site_config.json, and pg_hba.conf"
        : code === PG.INVALID_PASSWORD || code === PG.INVALID_AUTHORIZATION
          ? ADMIN_LOGIN_HINT
          : code === PG.INSUFFICIENT_PRIVILEGE
            ? 'the user lacks the privilege; use a superuser or one with CREATEDB and CREATEROLE'
            : 'check the server'
  return serverFailure(what, server, error, hint, loss)
}

/** A watched, not yet connected client (errors on it become the command's, not a crash). */
async function newClient(login: {
  host?: string
  port?: number
  user?: string
  password?: string
  database?: string
}): Promise<import('pg').Client> {
  const pg = await loadPg()
  const client = new pg.Client(login)
  watchPgClient(client)
  return client
}

async function withAdmin<T>(admin: ServerAdmin, fn: (client: import('pg').Client) => Promise<T>): Promise<T> {
  const { host, port, user, password } = admin
  const client = await newClient({ host, port, user, password, database: 'postgres' })
  try {
    await client.connect()
  } catch (error) {
    throw serverError('connecting as the admin user', `PostgreSQL at ${admin.host}:${admin.port}`, error)
  }
  try {
    return await fn(client)
  } finally {
    // Not awaited: the goodbye round trip is not worth waiting for.
    void client.end().catch(() => {})
  }
}

function kyselyFor(
  settings: SiteDbSettings,
  user: string,
  password: string,
  pg: typeof import('pg').default,
): Kysely<any> {
  const pool = new pg.Pool({
    host: settings.db_host,
    port: settings.db_port,
    user,
    password,
    database: settings.db_name,
    max: 2,
    connectionTimeoutMillis: 10_000,
  })
  watchPgPool(pool)
  return new Kysely<any>({ dialect: guardDialect(new PostgresDialect({ pool }), where(settings), pgServerLoss) })
}

function connection(db: Kysely<any>): SiteConnection {
  return {
    db,
    driver: postgresDriver,
    // A script without parameters goes through pg's simple protocol, which runs several
    // statements in one call, inside the transaction.
    // Advisory lock keys are scoped to the current database: this one is the site's own
    // migration lock, held to the end of the transaction.
    transaction: (fn) =>
      db.transaction().execute(async (trx) => {
        await sql`select pg_advisory_xact_lock(${SITE_LOCK_KEY})`.execute(trx)
        return fn({ trx, exec: async (script) => void (await sql.raw(script).execute(trx)), driver: postgresDriver })
      }),
    close: () => db.destroy(),
  }
}

/**
 * PostgreSQL: a database owned by a login role of its own (`CONNECT` revoked from PUBLIC),
 * so one site's credentials cannot reach another's data. The admin connection only creates
 * and drops; everything a site does runs as its own role.
 */
const PG_DUMP = { command: 'pg_dump', debianPackage: 'postgresql-client' }
const PG_RESTORE = { command: 'pg_restore', debianPackage: 'postgresql-client' }

/**
 * Runs `fn` with the arguments and environment that log `pg_dump` / `pg_restore` in as the
 * site's user: the password in a 0600 pgpass file (`PGPASSFILE`), never argv or environment.
 */
async function withPgLogin<T>(
  settings: SiteDbSettings,
  workDir: string,
  fn: (login: { args: string[]; env: Record<string, string> }) => Promise<T>,
): Promise<T> {
  const user = settings.db_user ?? settings.db_name
  const line = `*:*:*:${pgpassField(user)}:${pgpassField(settings.db_password ?? '')}\n`
  return withSecretFile(
    'pgpass',
    line,
    (file) =>
      fn({
        args: [
          '--no-password',
          `--host=${settings.db_host ?? '127.0.0.1'}`,
          `--port=${settings.db_port ?? DEFAULT_PORT}`,
          `--username=${user}`,
        ],
        env: { PGPASSFILE: file },
      }),
    workDir,
  )
}

export const postgresDriver: DatabaseDriver = {
  type: 'postgres',
  label: 'PostgreSQL',
  server: { defaultPort: DEFAULT_PORT, defaultAdminUser: 'postgres' },
  transactionalDdl: true,
  upsert: onConflictUpsert,
  upsertRows: onConflictUpsertRows,

  async primaryKey(db, table) {
    const { rows } = await sql<{ name: string }>`
      select a.attname as name from pg_index i
      join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey)
      where i.indrelid = to_regclass(${table}) and i.indisprimary
      order by array_position(i.indkey, a.attnum)`.execute(db)
    return rows.map((r) => r.name)
  },

  plan(dbName, admin) {
    return {
      db_type: 'postgres',
      db_name: dbName,
      db_user: dbName,
      db_password: generatePassword(),
      db_host: admin?.host ?? '127.0.0.1',
      db_port: admin?.port ?? DEFAULT_PORT,
    }
  },

  async create(settings, _sitePath, admin) {
    if (!admin) throw new TenancyError('creating a PostgreSQL database needs the admin connection')
    const user = settings.db_user ?? settings.db_name
    await withAdmin(admin, async (client) => {
      try {
        // A SCRAM verifier, not the password: a failing statement in the server log shows a hash.
        await client.query(
          `CREATE ROLE ${ident(user)} LOGIN PASSWORD '${await scramSha256Verifier(settings.db_password ?? '')}'`,
        )
      } catch (error) {
        if (codeOf(error) === PG.DUPLICATE_OBJECT)
          throw new TenancyError(
            `database user "${user}" exists already on ${where(settings)}; pick another --db-name or drop it`,
            { cause: error },
          )
        throw serverError(`creating the database user "${user}"`, where(settings), error, false, client)
      }
      faultPoint('between-database-and-user')
      let databaseMade = false
      try {
        await client.query(`CREATE DATABASE ${ident(settings.db_name)} OWNER ${ident(user)}`)
        databaseMade = true
        await client.query(`REVOKE ALL ON DATABASE ${ident(settings.db_name)} FROM PUBLIC`)
      } catch (error) {
        // Undo what this call made: the database first, or the role (its owner) cannot go.
        if (databaseMade)
          await client.query(`DROP DATABASE IF EXISTS ${ident(settings.db_name)} WITH (FORCE)`).catch(() => {})
        await client.query(`DROP ROLE IF EXISTS ${ident(user)}`).catch(() => {})
        if (codeOf(error) === PG.DUPLICATE_DATABASE)
          throw new TenancyError(
            `database "${settings.db_name}" exists already on ${where(settings)}; pick another --db-name`,
            { cause: error },
          )
        throw serverError(`creating the database "${settings.db_name}"`, where(settings), error, false, client)
      }
    })
  },

  async drop(settings, _sitePath, admin) {
    if (!admin) throw new TenancyError('dropping a PostgreSQL database needs the admin connection')
    const user = settings.db_user ?? settings.db_name
    await withAdmin(admin, async (client) => {
      try {
        // A killed client's CREATE DATABASE can still be finishing on the server when the drop
        // comes: the role then owns a database made after the DROP DATABASE (2BP01). Its sessions
        // are ended and the database dropped again, a few times, before that is an error.
        for (let attempt = 1; ; attempt++) {
          await client.query(`DROP DATABASE IF EXISTS ${ident(settings.db_name)} WITH (FORCE)`)
          try {
            await client.query(`DROP ROLE IF EXISTS ${ident(user)}`)
            break
          } catch (error) {
            if (codeOf(error) !== PG.DEPENDENT_OBJECTS_STILL_EXIST || attempt >= 10) throw error
            await client.query('select pg_terminate_backend(pid) from pg_stat_activity where usename = $1', [user])
            await new Promise((resolve) => setTimeout(resolve, 200))
          }
        }
      } catch (error) {
        throw serverError(`dropping the database "${settings.db_name}"`, where(settings), error, false, client)
      }
    })
  },

  async exists(settings) {
    const client = await newClient({
      host: settings.db_host,
      port: settings.db_port,
      user: settings.db_user,
      password: settings.db_password,
      database: settings.db_name,
    })
    try {
      await client.connect()
      return true
    } catch (error) {
      // A server that is not there says nothing of the database: not "missing".
      if (pgServerLoss(error, client) === 'refused')
        throw new ServerGoneError(where(settings), 'refused', error, 'looking for the site database')
      return false
    } finally {
      await client.end().catch(() => {})
    }
  },

  dumpFile: 'database.pgdump',

  async dump(settings, _sitePath, target) {
    await withPgLogin(settings, target.workDir, (login) =>
      runDumpProgram(PG_DUMP, ['--format=custom', ...login.args, `--dbname=${assertDbName(settings.db_name)}`], {
        env: childEnvironment(target.env, login.env),
        sink: target.sink,
        what: `dumping the database "${settings.db_name}" on ${where(settings)}`,
        signal: target.signal,
      }),
    )
  },

  async restore(settings, _sitePath, from) {
    await withPgLogin(settings, from.workDir, (login) =>
      runDumpProgram(
        PG_RESTORE,
        [
          ...login.args,
          `--dbname=${assertDbName(settings.db_name)}`,
          // Everything or nothing, and owned by the site's user, whoever owned it when dumped.
          '--single-transaction',
          '--exit-on-error',
          '--no-owner',
          '--no-acl',
        ],
        {
          env: childEnvironment(from.env, login.env),
          input: [from.source],
          what: `restoring into the database "${settings.db_name}" on ${where(settings)}`,
          signal: from.signal,
        },
      ),
    )
  },

  async connectAdmin(settings, _sitePath, admin) {
    if (!admin) throw new TenancyError('the admin connection needs the admin credentials')
    return connection(kyselyFor(settings, admin.user, admin.password, await loadPg()))
  },

  async connect(settings) {
    const db = kyselyFor(settings, settings.db_user ?? settings.db_name, settings.db_password ?? '', await loadPg())
    return connection(
      await provenConnection(db, (error) =>
        serverError(`connecting to the site database "${settings.db_name}"`, where(settings), error, true),
      ),
    )
  },
}
