import { sql, type Kysely } from 'kysely'
import { TenancyError, messageOf } from '../errors.js'
import { ServerGoneError, type ServerLoss } from './server-gone.js'

// What the MariaDB and PostgreSQL drivers share; each keeps its own error codes and hints.

/** The hint for an admin login the server refused. */
export const ADMIN_LOGIN_HINT = 'check the user and password (TENANCY_DB_ROOT_PASSWORD or --db-root-password-file)'

/**
 * One line for a failed server operation: what, where, the server's words, and what to check;
 * a server that closed the connection under it says so (`loss`, from the driver's codes).
 */
export function serverFailure(
  what: string,
  server: string,
  error: unknown,
  hint: string,
  loss?: ServerLoss,
): TenancyError {
  if (error instanceof ServerGoneError) return error
  if (loss === 'closed') return new ServerGoneError(server, 'closed', error, what)
  return new TenancyError(`${what} on ${server} failed: ${messageOf(error)}; ${hint}`, { cause: error })
}

/**
 * Proves a new site connection with one query before anyone uses it, so a refused login is
 * reported as such; on failure the pool is closed and `fail(error)` thrown.
 */
export async function provenConnection(db: Kysely<any>, fail: (error: unknown) => TenancyError): Promise<Kysely<any>> {
  try {
    await sql`select 1`.execute(db)
  } catch (error) {
    await db.destroy().catch(() => {})
    throw fail(error)
  }
  return db
}
