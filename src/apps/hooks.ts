import { join } from 'node:path'
import { sql, type Kysely } from 'kysely'
import type { Bench } from '../bench.js'
import type { DbType } from '../config/config.js'
import type { SiteConnection } from '../databases/driver.js'
import { TenancyError } from '../errors.js'
import { libraryPath } from '../util/library-path.js'
import { childEnvironment, runCommand, type CommandResult } from '../util/run-command.js'
import type { HookName, HookSpec } from './hook-spec.js'
import { installedApps } from './installed-apps.js'
import { resolveInstallOrder, type AppManifest } from './manifest.js'
import { BLOCKED_HOOKS } from './blocked-hooks.js'
import { callModuleHook } from './module-hook.js'

/** The site a hook runs for. */
export interface HookSite {
  /** Its name (for `after_rename`, the new one). */
  name: string
  /** Its directory. */
  path: string
  dbType: DbType
  /** `after_rename` only: the name it had. */
  previousName?: string
}

/** What a hook printed (a command: its output's last 64 KiB; a module: the string it returned). */
export type HookResult = CommandResult

/** How messages name a hook: `the after_install hook of app "crm" on site "acme.localhost"`. */
const describe = (app: AppManifest, hook: HookName, site: HookSite) =>
  `the ${hook} hook of app "${app.name}" on site "${site.name}"`

/**
 * Calls an app's module hook in-process with `db`, the handle the caller's step uses (its
 * transaction, so that a throw rolls the step back where the database allows). Undefined
 * when the app has no such hook; an error when it is a command, which must not run while
 * the caller holds the site's transaction (its own connection would wait on that lock).
 */
export async function callHookIn(
  bench: Bench,
  app: AppManifest,
  hook: HookName,
  site: HookSite,
  db: Kysely<any>,
  signal?: AbortSignal,
): Promise<HookResult | undefined> {
  const spec = app.hooks[hook]
  if (!spec) return undefined
  if (spec.kind !== 'module')
    throw new TenancyError(`${describe(app, hook, site)} is a command: it cannot run inside the site's transaction`)
  return callModuleHook({
    app: app.name,
    hook,
    spec,
    what: describe(app, hook, site),
    context: {
      db,
      site: site.name,
      ...(site.previousName === undefined ? {} : { previousSite: site.previousName }),
      sitePath: site.path,
      app: app.name,
      dbType: site.dbType,
    },
    timeoutSeconds: bench.config.provision.step_timeout,
    signal,
    blocked: { record: join(bench.stateDir, BLOCKED_HOOKS), key: `${app.name}/${hook}`, file: spec.file },
  })
}

/**
 * Runs a command hook through `/bin/sh` in the app's folder, with the names it needs in its
 * environment (never a secret), stopped with everything it started at `provision.step_timeout`.
 */
async function commandHook(
  bench: Bench,
  app: AppManifest,
  hook: HookName,
  spec: Extract<HookSpec, { kind: 'command' }>,
  site: HookSite,
  signal?: AbortSignal,
): Promise<HookResult> {
  try {
    return await runCommand(spec.command, {
      cwd: app.path,
      what: describe(app, hook, site),
      timeoutSeconds: bench.config.provision.step_timeout,
      signal,
      env: childEnvironment(bench.env, {
        TENANCY_BENCH_PATH: bench.root,
        TENANCY_SITE: site.name,
        ...(site.previousName === undefined ? {} : { TENANCY_PREVIOUS_SITE: site.previousName }),
        TENANCY_SITE_PATH: site.path,
        TENANCY_APP: app.name,
        TENANCY_APP_PATH: app.path,
        TENANCY_DB_TYPE: site.dbType,
        TENANCY_LIB: libraryPath(bench.env),
      }),
    })
  } catch (error) {
    // Its message names the app ("the after_install hook of app …"): not to be wrapped again.
    if (error instanceof TenancyError) error.namedApp = app.name
    throw error
  }
}

/**
 * Runs an app's hook for a site: a command through `/bin/sh` (no transaction of ours open, so
 * it may connect to the site itself), a module in-process in one transaction of `conn`, so
 * that a throw leaves nothing of what it did (where the database allows). Either is failed
 * past `provision.step_timeout` seconds, and on an abort of `signal`; the error names the hook,
 * app and site. Undefined when the app has no such hook.
 *
 * @example
 * // After a rename, with the site's connection open under its new name:
 * await runAppHook(bench, loadApp(bench, 'tenant_ops'), 'after_rename',
 *   { name: 'acme.localhost', previousName: 'pending-1a2b.localhost', path, dbType: conn.driver.type }, conn)
 */
export async function runAppHook(
  bench: Bench,
  app: AppManifest,
  hook: HookName,
  site: HookSite,
  conn: SiteConnection,
  signal?: AbortSignal,
): Promise<HookResult | undefined> {
  const spec = app.hooks[hook]
  if (!spec) return undefined
  if (spec.kind === 'command') return commandHook(bench, app, hook, spec, site, signal)
  return conn.transaction((tx) => callHookIn(bench, app, hook, site, tx.trx, signal))
}

/**
 * Runs `hook` of every app installed on the site (its `installed_apps`), requirements first,
 * each as `runAppHook` does; the first failure stops the rest. Returns the output of each app
 * that has the hook. What a rename runs (`after_rename`, with `site.previousName`).
 */
export async function runInstalledAppsHook(
  bench: Bench,
  hook: HookName,
  site: HookSite,
  conn: SiteConnection,
  signal?: AbortSignal,
): Promise<{ app: string; output: string }[]> {
  const outputs: { app: string; output: string }[] = []
  for (const app of await installedWithHook(bench, hook, conn.db)) {
    signal?.throwIfAborted()
    const result = await runAppHook(bench, app, hook, site, conn, signal)
    if (result) outputs.push({ app: app.name, output: result.output })
  }
  return outputs
}

/**
 * The apps installed on the site (its `installed_apps`, read through `db` unless the caller read
 * their names already: `installed`) that have `hook`, requirements first.
 */
export async function installedWithHook(
  bench: Bench,
  hook: HookName,
  db: Kysely<any>,
  installed?: string[],
): Promise<AppManifest[]> {
  const names = installed ?? (await installedApps(db)).map((a) => a.name)
  return resolveInstallOrder(bench, names).filter((app) => names.includes(app.name) && app.hooks[hook] !== undefined)
}

/** How `runModuleHooksIn` went: the output of each hook that ran, and the error of the one that failed. */
export interface HooksInTransaction {
  outputs: { app: string; output: string }[]
  failed?: unknown
}

/**
 * Runs the module `hook` of each of `apps` (in their order; `installedWithHook`) inside the
 * caller's open site transaction `trx`, each under a savepoint: a hook that throws is rolled back
 * to its savepoint, as its own transaction would be, and the rest are not run, while what the
 * caller and the hooks before it wrote stays in the transaction for the caller to commit. That is
 * one commit (and its fsyncs) where a transaction per hook took one each. A command hook cannot
 * run here (it would wait on the caller's lock): callers take `runInstalledAppsHook` for those.
 */
export async function runModuleHooksIn(
  bench: Bench,
  apps: AppManifest[],
  hook: HookName,
  site: HookSite,
  trx: Kysely<any>,
  signal?: AbortSignal,
): Promise<HooksInTransaction> {
  const outputs: { app: string; output: string }[] = []
  for (const app of apps) {
    signal?.throwIfAborted()
    await sql`savepoint tenancy_hook`.execute(trx)
    try {
      const result = await callHookIn(bench, app, hook, site, trx, signal)
      if (result) outputs.push({ app: app.name, output: result.output })
    } catch (failed) {
      // On MariaDB a hook's DDL commits implicitly and takes the savepoint with it: then nothing
      // is left to roll back, as with a transaction of its own.
      await sql`rollback to savepoint tenancy_hook`.execute(trx).catch(() => {})
      return { outputs, failed }
    }
    await sql`release savepoint tenancy_hook`.execute(trx).catch(() => {})
  }
  return { outputs }
}

/**
 * Runs an app's hook if it is a command, with no site transaction of ours open (`installAppsOn`
 * runs it once the app's transaction has committed; `uninstall-app` before its own). Undefined
 * when the hook is absent or a module (which `callHookIn` calls inside the transaction).
 */
export async function runCommandHook(
  bench: Bench,
  app: AppManifest,
  hook: HookName,
  site: HookSite,
  signal?: AbortSignal,
): Promise<HookResult | undefined> {
  const spec = app.hooks[hook]
  return spec?.kind === 'command' ? commandHook(bench, app, hook, spec, site, signal) : undefined
}
