import { notAFile } from '../util/not-a-file.js'
import { isAbsolute, join, relative, resolve } from 'node:path'
import { EXIT_USAGE, TenancyError } from '../errors.js'
import { EXPORT_NAME } from '../util/import-function.js'
import { closest } from '../util/suggest.js'

/** The hooks an app may declare in `app.json`, in the order of a site's life. */
export const HOOK_NAMES = ['after_install', 'after_rename', 'before_uninstall'] as const

export type HookName = (typeof HOOK_NAMES)[number]

/**
 * One hook as `app.json` gives it: a shell command run through `/bin/sh` in the app's folder
 * (`"node hooks/x.mjs"`), or a function of one of the app's modules called in-process
 * (`{"module": "hooks/x.mjs", "export": "name"}`, the export `default` unless named).
 */
export type HookSpec =
  | { kind: 'command'; command: string }
  | {
      kind: 'module'
      /** As `app.json` gives it, relative to the app's folder: for messages. */
      module: string
      /** Its absolute path. */
      file: string
      exportName: string
    }

/** An app's hooks, by name; a hook the app does not declare is absent. */
export type AppHooks = Partial<Record<HookName, HookSpec>>

const SHAPE = 'a shell command such as "node hooks/HOOK.mjs" or {"module": "hooks/HOOK.mjs", "export": "name"}'

/**
 * Reads the `hooks` of an app's `app.json` (`raw`, undefined when it has none). Every bad
 * shape is a usage error (exit 2) in one line naming the app, the hook and the fix: an
 * unknown hook name (with the nearest known one), a value that is neither a command nor a
 * module object, an empty command, an unknown key, a module path outside the app's folder or
 * naming no file, an export that is not an identifier.
 *
 * @example
 * parseHooks({ after_install: { module: 'hooks/after_install.mjs' } }, 'crm', '/srv/bench/apps/crm', file)
 * // { after_install: { kind: 'module', module: 'hooks/after_install.mjs', file: '/srv/…/hooks/after_install.mjs', exportName: 'default' } }
 */
export function parseHooks(raw: unknown, app: string, appPath: string, manifestFile: string): AppHooks {
  const bad = (what: string) =>
    new TenancyError(`app "${app}": ${what} (in ${manifestFile})`, { exitCode: EXIT_USAGE, namedApp: app })
  if (raw === undefined) return {}
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw bad(`"hooks" must be an object of hooks, each ${SHAPE.replaceAll('HOOK', 'after_install')}`)
  const hooks: AppHooks = {}
  for (const [name, value] of Object.entries(raw)) {
    if (!(HOOK_NAMES as readonly string[]).includes(name)) {
      const near = closest(name, HOOK_NAMES)
      throw bad(
        `unknown hook "${name}"; ${near ? `did you mean "${near}"? ` : ''}the hooks are ${HOOK_NAMES.join(', ')}`,
      )
    }
    const hook = name as HookName
    const shape = SHAPE.replaceAll('HOOK', hook)
    const wrong = (what: string) => bad(`hook "${hook}" ${what}`)
    if (typeof value === 'string') {
      if (value.trim() === '') throw wrong(`is an empty command; give ${shape}, or remove it`)
      hooks[hook] = { kind: 'command', command: value }
      continue
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value))
      throw wrong(`must be ${shape}; got ${JSON.stringify(value)}`)
    const fields = value as Record<string, unknown>
    const unknown = Object.keys(fields).find((key) => key !== 'module' && key !== 'export')
    if (unknown !== undefined) throw wrong(`has an unknown key "${unknown}"; it takes "module" and "export"`)
    const module = fields.module
    if (typeof module !== 'string' || module.trim() === '')
      throw wrong(`needs "module": the path of an ES module in the app's folder, such as "hooks/${hook}.mjs"`)
    const file = resolve(appPath, module)
    const inside = relative(appPath, file)
    if (isAbsolute(module) || inside === '' || inside.startsWith('..') || isAbsolute(inside))
      throw wrong(
        `names module "${module}" outside the app's folder; give a path inside it, such as "hooks/${hook}.mjs"`,
      )
    const why = notAFile(file)
    if (why) throw wrong(`names module "${module}", which ${why} (${join(appPath, inside)})`)
    const exportName = fields.export ?? 'default'
    if (typeof exportName !== 'string' || !EXPORT_NAME.test(exportName))
      throw wrong(
        `has "export" ${JSON.stringify(exportName)}; give the name of the function the module exports ` +
          `(a JavaScript identifier; without "export", "default")`,
      )
    hooks[hook] = { kind: 'module', module, file, exportName }
  }
  return hooks
}
