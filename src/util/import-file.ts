import { pathToFileURL } from 'node:url'

/**
 * The CLI bundle's `import()`, handed in by `bin/tenancy.js`: the bundle is compiled as a
 * `vm.Script` (to use V8's code cache), where Node 20 has no `import()` of its own. Every
 * other build defines it as `undefined`, and so does an unbundled run (tests under vitest).
 */
declare const TENANCY_IMPORT: ((url: string) => Promise<Record<string, unknown>>) | undefined

/**
 * Imports the module at the absolute path `file` (an app's migration or hook, an `execute`
 * module) through Node's module loader, by its file URL.
 */
export function importFile(file: string): Promise<Record<string, unknown>> {
  const url = pathToFileURL(file).href
  if (typeof TENANCY_IMPORT === 'function') return TENANCY_IMPORT(url)
  return import(url) as Promise<Record<string, unknown>>
}
