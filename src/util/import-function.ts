import { importFile } from './import-file.js'
import { messageOf, usageError } from '../errors.js'

/** A function some module exports: what `execute` and module hooks call. */
export type ExportedFunction = (...args: never[]) => unknown

/** A name a module's export can be called by: an identifier (or `default`). */
export const EXPORT_NAME = /^[A-Za-z_$][\w$]*$/

const namespaces = new Map<string, Promise<Record<string, unknown>>>()

/**
 * Imports the ES module at the absolute path `file` once per process (by path, through
 * `pathToFileURL`) and returns its export `exportName`, which must be a function. Every way
 * that can go wrong is a usage error (exit 2) naming `what` (`module "count.mjs"`): an
 * import that throws (a syntax error, a missing package), no such export (listing the ones
 * it has, then `choose`, how to pick another), an export that is not a function.
 *
 * @example
 * const fn = await importFunction('/srv/bench/apps/crm/hooks/install.mjs', 'default', {
 *   what: 'module "hooks/install.mjs"',
 *   choose: 'set "export" in app.json',
 * })
 */
export async function importFunction(
  file: string,
  exportName: string,
  options: { what: string; choose: string },
): Promise<ExportedFunction> {
  const { what } = options
  let loading = namespaces.get(file)
  if (!loading) {
    loading = importFile(file)
    namespaces.set(file, loading)
  }
  let namespace: Record<string, unknown>
  try {
    namespace = await loading
  } catch (error) {
    throw usageError(`cannot import ${what}: ${messageOf(error)}`, error)
  }
  const names = Object.keys(namespace)
  if (!Object.hasOwn(namespace, exportName))
    throw usageError(
      `${what} has no export "${exportName}"; ` +
        (names.length ? `it exports ${names.join(', ')} (${options.choose})` : 'it exports nothing'),
    )
  const fn = namespace[exportName]
  if (typeof fn !== 'function') {
    const functions = names.filter((n) => typeof namespace[n] === 'function')
    throw usageError(
      `export "${exportName}" of ${what} is ${fn === null ? 'null' : `a ${typeof fn}`}, not a function; ` +
        (functions.length ? `its functions: ${functions.join(', ')}` : 'it exports no function'),
    )
  }
  return fn as ExportedFunction
}
