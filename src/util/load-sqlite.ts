import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'

type Sqlite = typeof import('better-sqlite3')

/**
 * In the CLI bundle only: the version of better-sqlite3 whose JavaScript the bundle holds
 * (scripts/build.mjs), so that V8's code cache covers it too; undefined everywhere else.
 */
declare const TENANCY_BUNDLED_SQLITE: string | undefined

let loaded: Sqlite | undefined

/**
 * better-sqlite3, loaded on first use and kept. It is CommonJS, so it is required rather than
 * imported: an `import()` of it costs every process that opens a database some 20 ms more (the
 * ESM loader scans it with cjs-module-lexer for named exports, and reads its files through the
 * thread pool, where a password's scrypt hash may be running meanwhile).
 */
export function loadSqlite(): Sqlite {
  return (loaded ??= (typeof TENANCY_BUNDLED_SQLITE === 'string' && bundledSqlite()) || installedSqlite())
}

function installedSqlite(): Sqlite {
  return createRequire(import.meta.url)('better-sqlite3') as Sqlite
}

/**
 * The CLI's own copy of better-sqlite3's JavaScript, bound to the installed native addon:
 * requiring the package's dozen files costs a command some 10 ms that the bundle's code cache
 * takes off. Only when the installed package is the very version the copy came from and its
 * addon is where its build puts it; else undefined, and the installed package is used.
 */
function bundledSqlite(): Sqlite | undefined {
  const installed = createRequire(import.meta.url)
  let manifest: string
  try {
    manifest = installed.resolve('better-sqlite3/package.json')
  } catch {
    return undefined
  }
  const { version } = installed(manifest) as { version?: string }
  const addon = join(dirname(manifest), 'build', 'Release', 'better_sqlite3.node')
  if (version !== TENANCY_BUNDLED_SQLITE || !existsSync(addon)) return undefined
  // The bundle's require, which esbuild resolves at build time: the package's JavaScript is in the bundle.
  const Database = require('better-sqlite3') as Sqlite
  return class extends (Database as unknown as new (file: string, options?: object) => object) {
    constructor(file: string, options: object = {}) {
      super(file, { ...options, nativeBinding: addon })
    }
  } as unknown as Sqlite
}
