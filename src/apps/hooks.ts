import type { Bench } from '../bench.js'
import { TenancyError } from '../errors.js'
import { libraryPath } from '../util/library-path.js'
import { childEnvironment, runCommand, type CommandResult } from '../util/run-command.js'
import type { AppManifest } from './manifest.js'

/** Runs an app's `after_install` hook for a site. Returns undefined when the app has none. */
export function runAfterInstall(
  bench: Bench,
  app: AppManifest,
  site: { name: string; path: string; dbType: string },
  signal?: AbortSignal,
): Promise<CommandResult | undefined> {
  return runHook(bench, app, 'after_install', site, signal)
}

/**
 * Runs an app's hook (`after_install`, `after_rename`, `before_uninstall`) for a site; undefined
 * when the app has none. `previousSite` (an `after_rename`'s old name) is `TENANCY_PREVIOUS_SITE`.
 */
export async function runHook(
  bench: Bench,
  app: AppManifest,
  hook: keyof AppManifest['hooks'],
  site: { name: string; path: string; dbType: string; previousSite?: string },
  signal?: AbortSignal,
): Promise<CommandResult | undefined> {
  const command = app.hooks[hook]
  if (!command) return undefined
  try {
    return await runCommand(command, {
      cwd: app.path,
      what: `the ${hook} hook of app "${app.name}" on site "${site.name}"`,
      timeoutSeconds: bench.config.provision.step_timeout,
      signal,
      env: childEnvironment(bench.env, {
        TENANCY_BENCH_PATH: bench.root,
        TENANCY_SITE: site.name,
        TENANCY_SITE_PATH: site.path,
        TENANCY_APP: app.name,
        TENANCY_APP_PATH: app.path,
        TENANCY_DB_TYPE: site.dbType,
        TENANCY_LIB: libraryPath(bench.env),
        ...(site.previousSite !== undefined && { TENANCY_PREVIOUS_SITE: site.previousSite }),
      }),
    })
  } catch (error) {
    // Its message names the app ("the after_install hook of app …"): not to be wrapped again.
    if (error instanceof TenancyError) error.namedApp = app.name
    throw error
  }
}
