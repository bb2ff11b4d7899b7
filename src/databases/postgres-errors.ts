import { NODE, PG } from '../error-codes.js'
import type { ServerLoss } from './server-gone.js'

/** The socket was reset or broke under a command. */
const SOCKET_CLOSED = new Set<string>([NODE.ECONNRESET, NODE.EPIPE, PG.ADMIN_SHUTDOWN, PG.CRASH_SHUTDOWN])
/** Nothing listens on the host and port (or the socket file is gone). */
const REFUSED = new Set<string>([NODE.ECONNREFUSED, NODE.ENOENT, PG.CANNOT_CONNECT_NOW])

/** Errors pg emitted as `error` events of a client: the connection's, not a statement's. */
const connectionErrors = new WeakSet<object>()
/** Clients whose connection failed: whatever they are asked next fails for that reason. */
const brokenClients = new WeakSet<object>()

interface Emitter {
  on(event: 'error', listener: (error: Error) => void): unknown
}

/**
 * Listens for a pg client's `error` events. pg emits one when the connection drops, also on a
 * client checked out of a pool (where the pool no longer listens); unheard, it ends the
 * process with "Unhandled 'error' event". The same error rejects the query that was running.
 */
export function watchPgClient(client: Emitter): void {
  client.on('error', (error) => {
    connectionErrors.add(error)
    brokenClients.add(client)
  })
}

/** `watchPgClient` for every client a pool opens, and for the pool's own idle-client errors. */
export function watchPgPool(
  pool: Emitter & { on(event: 'connect', listener: (client: Emitter) => void): unknown },
): void {
  pool.on('error', (error) => connectionErrors.add(error))
  pool.on('connect', watchPgClient)
}

/**
 * Whether a pg error means the server closed the connection, refused a new one, or neither;
 * `client`, when known, is the one that failed (any error of a broken client is the connection's).
 */
export function pgServerLoss(error: unknown, client?: object): ServerLoss {
  if (client && brokenClients.has(client)) return 'closed'
  const code = (error as { code?: string } | undefined)?.code
  if (code !== undefined && SOCKET_CLOSED.has(code)) return 'closed'
  if (code !== undefined && REFUSED.has(code)) return 'refused'
  // "Connection terminated unexpectedly" has no code: it is known by having been an error event.
  if (typeof error === 'object' && error !== null && connectionErrors.has(error)) return 'closed'
  return undefined
}
