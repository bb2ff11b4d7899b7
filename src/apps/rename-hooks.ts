import type { Bench } from '../bench.js'
import type { SiteConnection } from '../databases/driver.js'
import { runHook } from './hooks.js'
import type { AppManifest } from './manifest.js'

/** A site that was just renamed, as its apps' `after_rename` hooks see it. */
export interface RenamedSite {
  /** The new name. */
  site: string
  /** The name it had. */
  previousSite: string
  /** Its directory (under the new name). */
  sitePath: string
  /** Its installed apps, requirements first: the order they were installed in. */
  apps: AppManifest[]
  signal?: AbortSignal
}

/**
 * Runs the `after_rename` hook of each of a renamed site's apps that has one, in install order,
 * with the old and new names, so the apps rewrite what in their data names the old site. The
 * first failure stops the rest and is thrown (its message names the app). `conn` is the site's
 * open connection (module hooks get it as `db`); shell hooks connect themselves and see
 * `TENANCY_SITE` and `TENANCY_PREVIOUS_SITE`. Hooks must be safe to run again: a rename a crash
 * interrupted runs them again. Returns the apps whose hook ran.
 *
 * @example
 * await runRenameHooks(bench, conn, { site: 'acme.localhost', previousSite: 'pending-1f2e.localhost', sitePath, apps })
 */
export async function runRenameHooks(bench: Bench, conn: SiteConnection, renamed: RenamedSite): Promise<string[]> {
  const ran: string[] = []
  for (const app of renamed.apps) {
    if (!app.hooks.after_rename) continue
    const site = {
      name: renamed.site,
      path: renamed.sitePath,
      dbType: conn.driver.type,
      previousSite: renamed.previousSite,
    }
    await runHook(bench, app, 'after_rename', site, renamed.signal)
    ran.push(app.name)
  }
  return ran
}
