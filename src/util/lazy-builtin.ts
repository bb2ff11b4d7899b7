import { createRequire } from 'node:module'

const requireBuiltin = createRequire(import.meta.url)

/**
 * A Node built-in module loaded the first time it is used instead of when the importing module
 * is: every command of the CLI runs the bundle's module initializers, and worker_threads and
 * zlib (six of Node's internal modules between them) cost a command that starts no thread and
 * compresses nothing (a listing) 1-2 ms to load. (child_process gains nothing so:
 * commander loads it on every command.)
 *
 * @example
 * const zlib = lazyBuiltin<typeof import('node:zlib')>('node:zlib')
 * const { createGzip } = zlib()
 */
export function lazyBuiltin<T>(id: `node:${string}`): () => T {
  let loaded: T | undefined
  return () => (loaded ??= requireBuiltin(id) as T)
}
