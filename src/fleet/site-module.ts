import { notAFile } from '../util/not-a-file.js'
import { resolve } from 'node:path'
import { usageError } from '../errors.js'
import { EXPORT_NAME, importFunction, type ExportedFunction } from '../util/import-function.js'

/** What `tenancy execute` runs: one function of one module, imported once. */
export interface SiteModuleFunction {
  /** The module as it was given (`scripts/count.mjs`), for messages. */
  module: string
  /** The export called: `default` unless `#name` chose another. */
  exportName: string
  fn: ExportedFunction
  /** The module's absolute path. */
  file: string
}

/**
 * Splits `module.mjs#name` into the module's path and the export (default `default`). The last
 * `#` separates them, so a file whose name holds one is given with its export: `a#b.mjs#default`.
 */
export function parseModuleSpec(spec: string): { module: string; exportName: string } {
  const hash = spec.lastIndexOf('#')
  const module = hash < 0 ? spec : spec.slice(0, hash)
  const exportName = hash < 0 ? 'default' : spec.slice(hash + 1)
  if (module.trim() === '') throw usageError(`invalid module "${spec}": give the path of an ES module, like count.mjs`)
  if (!EXPORT_NAME.test(exportName))
    throw usageError(
      `invalid export "${exportName}" in "${spec}": give module.mjs#name with name a JavaScript identifier`,
    )
  return { module, exportName }
}

/**
 * Imports the module `spec` names (`path[#export]`, the path relative to `cwd`) and takes its
 * export, which must be a function. Every way that can go wrong is a usage error (exit 2) that
 * names the module: no such file, an import that throws (a syntax error, a missing package),
 * no such export (listing the ones it has), an export that is not a function.
 */
export async function loadSiteFunction(spec: string, cwd: string): Promise<SiteModuleFunction> {
  const { module, exportName } = parseModuleSpec(spec)
  const file = resolve(cwd, module)
  const why = notAFile(file)
  if (why) throw usageError(`module "${module}" ${why} (${file}); give the path of an ES module`)
  const fn = await importFunction(file, exportName, {
    what: `module "${module}"`,
    choose: `choose one with ${module}#name`,
  })
  return { module, exportName, fn, file }
}
