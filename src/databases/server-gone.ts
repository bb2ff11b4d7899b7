import type {
  CompiledQuery,
  DatabaseConnection,
  Dialect,
  Driver,
  QueryCompiler,
  QueryResult,
  TransactionSettings,
} from 'kysely'
import { TenancyError, messageOf } from '../errors.js'

/**
 * What a driver error says about the server: it `closed` a connection under a command, it
 * `refused` a new connection (not running, or starting up or shutting down), or neither.
 */
export type ServerLoss = 'closed' | 'refused' | undefined

/**
 * A database server that went away under a command: it closed the connection, or stopped
 * accepting connections after it had accepted ours. One line naming the server; the command
 * rolls back as after any other failure.
 */
export class ServerGoneError extends TenancyError {
  readonly server: string

  constructor(server: string, how: 'closed' | 'refused', error: unknown, what?: string) {
    const happened = how === 'closed' ? 'closed the connection' : 'stopped accepting connections'
    super(`${server} ${happened}${what ? ` while ${what}` : ''} (${messageOf(error)}); check that it is running`, {
      cause: error,
    })
    this.name = 'ServerGoneError'
    this.server = server
  }
}

/**
 * Wraps a Kysely dialect so that a server going away surfaces as one `ServerGoneError` naming
 * `server`, whichever query, transaction statement or pool checkout met it. `classify` tells a
 * driver's errors apart by code; a connection that has once been closed answers every later
 * call with the same kind of error (pg's "not queryable" carries no code). A refused connection
 * counts only after the server has accepted one: before that, it is the caller's to explain
 * (wrong host or port).
 */
export function guardDialect(dialect: Dialect, server: string, classify: (error: unknown) => ServerLoss): Dialect {
  return {
    createAdapter: () => dialect.createAdapter(),
    createQueryCompiler: () => dialect.createQueryCompiler(),
    createIntrospector: (db) => dialect.createIntrospector(db),
    createDriver: () => new GuardedDriver(dialect.createDriver(), server, classify),
  }
}

class GuardedConnection implements DatabaseConnection {
  closed = false

  constructor(
    readonly inner: DatabaseConnection,
    readonly guard: (error: unknown, connection: GuardedConnection) => unknown,
  ) {}

  async executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
    try {
      return await this.inner.executeQuery<R>(query)
    } catch (error) {
      throw this.guard(error, this)
    }
  }

  async *streamQuery<R>(query: CompiledQuery, chunkSize?: number): AsyncIterableIterator<QueryResult<R>> {
    try {
      yield* this.inner.streamQuery<R>(query, chunkSize)
    } catch (error) {
      throw this.guard(error, this)
    }
  }
}

type Compile = QueryCompiler['compileQuery']

class GuardedDriver implements Driver {
  readonly #inner: Driver
  readonly #server: string
  readonly #classify: (error: unknown) => ServerLoss
  readonly #connections = new WeakMap<DatabaseConnection, GuardedConnection>()
  #reached = false

  constructor(inner: Driver, server: string, classify: (error: unknown) => ServerLoss) {
    this.#inner = inner
    this.#server = server
    this.#classify = classify
  }

  #map(error: unknown, connection?: GuardedConnection): unknown {
    if (error instanceof ServerGoneError) return error
    const loss = this.#classify(error) ?? (connection?.closed ? 'closed' : undefined)
    if (loss === 'closed' && connection) connection.closed = true
    if (loss === 'closed' || (loss === 'refused' && this.#reached))
      return new ServerGoneError(this.#server, loss, error)
    return error
  }

  async #on<T>(connection: DatabaseConnection, fn: (inner: DatabaseConnection) => Promise<T>): Promise<T> {
    const guarded = connection as GuardedConnection
    try {
      return await fn(guarded.inner)
    } catch (error) {
      throw this.#map(error, guarded)
    }
  }

  init(): Promise<void> {
    return this.#inner.init()
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    let inner: DatabaseConnection
    try {
      inner = await this.#inner.acquireConnection()
    } catch (error) {
      throw this.#map(error)
    }
    this.#reached = true
    let guarded = this.#connections.get(inner)
    if (!guarded) {
      guarded = new GuardedConnection(inner, (error, connection) => this.#map(error, connection))
      this.#connections.set(inner, guarded)
    }
    return guarded
  }

  beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    return this.#on(connection, (inner) => this.#inner.beginTransaction(inner, settings))
  }

  commitTransaction(connection: DatabaseConnection): Promise<void> {
    return this.#on(connection, (inner) => this.#inner.commitTransaction(inner))
  }

  rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    // A server rolls back the transaction of a connection it closed; asking again would only
    // fail and hide the first error behind pg's "not queryable".
    if ((connection as GuardedConnection).closed) return Promise.resolve()
    return this.#on(connection, (inner) => this.#inner.rollbackTransaction(inner))
  }

  savepoint(connection: DatabaseConnection, name: string, compile: Compile): Promise<void> {
    return this.#on(connection, (inner) => this.#inner.savepoint!(inner, name, compile))
  }

  rollbackToSavepoint(connection: DatabaseConnection, name: string, compile: Compile): Promise<void> {
    return this.#on(connection, (inner) => this.#inner.rollbackToSavepoint!(inner, name, compile))
  }

  releaseSavepoint(connection: DatabaseConnection, name: string, compile: Compile): Promise<void> {
    return this.#on(connection, (inner) => this.#inner.releaseSavepoint!(inner, name, compile))
  }

  releaseConnection(connection: DatabaseConnection): Promise<void> {
    return this.#inner.releaseConnection((connection as GuardedConnection).inner)
  }

  destroy(): Promise<void> {
    return this.#inner.destroy()
  }
}
