import { createRequire } from 'node:module'

type Sqlite = typeof import('better-sqlite3')

let loaded: Sqlite | undefined

/**
 * better-sqlite3, loaded on first use and kept. It is CommonJS, so it is required rather than
 * imported: an `import()` of it costs every process that opens a database some 20 ms more (the
 * ESM loader scans it with cjs-module-lexer for named exports, and reads its files through the
 * thread pool, where a password's scrypt hash may be running meanwhile).
 */
export function loadSqlite(): Sqlite {
  return (loaded ??= createRequire(import.meta.url)('better-sqlite3') as Sqlite)
}
