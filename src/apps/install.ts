import type { Kysely } from 'kysely'
import type { Bench } from '../bench.js'
import { TenancyError } from '../errors.js'
import { now } from '../registry/registry.js'
import type { SiteTx } from '../databases/driver.js'
import { usingSite, type OpenSite } from '../sites/site.js'
import { callHookIn, runCommandHook } from './hooks.js'
import { resolveInstallOrder, type AppManifest } from './manifest.js'
import { ensureLedger, readLedger } from './migrations.js'
import { upgradeSchema } from './upgrade-schema.js'
import { installedApps } from './installed-apps.js'

export { installedApps }

export interface AppInstallResult {
  app: string
  version: string
  status: 'installed' | 'already_installed'
  migrations: string[]
  fixtures: number
  hook_output?: string
}

/** Called as each app starts and ends, for progress display. */
export type InstallProgress = (event: {
  app: string
  phase: 'start' | 'done' | 'skip' | 'fail'
  result?: AppInstallResult
}) => void

export interface InstallOptions {
  onProgress?: InstallProgress
  signal?: AbortSignal
}

/**
 * Installs `apps` (already in requirement order) on an open site. Each app's pending
 * migrations and fixtures run in a transaction, then its `after_install` hook when it is a
 * module, inside the same transaction (a throw rolls the app back with the apps sharing it,
 * where the database's DDL is transactional). An app whose hook is a command ends its
 * transaction: the apps before it share it, and the command then runs on committed data,
 * exactly as if every app were installed one after another. An app is recorded as installed
 * in the transaction of its hook's success, so a failed hook is retried by the next install
 * (migrations that stayed, as a command hook's app's or MariaDB's do, are not run twice).
 * `prelude` runs first inside the first transaction (new-site puts the core schema there),
 * `epilogue` last inside the last one (new-site's Administrator, whose password hash has had
 * every install's time to finish), saving each a commit of its own.
 */
export async function installAppsOn(
  bench: Bench,
  site: OpenSite,
  apps: readonly AppManifest[],
  options: InstallOptions & {
    prelude?: (tx: SiteTx) => Promise<void>
    epilogue?: (tx: SiteTx) => Promise<void>
  } = {},
): Promise<AppInstallResult[]> {
  const results: AppInstallResult[] = []
  const { driver } = site.conn
  let prelude = options.prelude
  let epilogue = options.epilogue
  const skipped = (app: AppManifest): AppInstallResult => {
    const result: AppInstallResult = {
      app: app.name,
      version: app.version,
      status: 'already_installed',
      migrations: [],
      fixtures: 0,
    }
    options.onProgress?.({ app: app.name, phase: 'skip', result })
    return result
  }
  const installed = new Set(prelude ? [] : (await installedApps(site.conn.db)).map((a) => a.name))
  const todo = apps.filter((app) => {
    if (!installed.has(app.name)) return true
    results.push(skipped(app))
    return false
  })
  const record = async (db: Kysely<any>, app: AppManifest) => {
    const at = now()
    await driver
      .upsert(
        db,
        'installed_apps',
        { name: app.name, version: app.version, installed_at: at, updated_at: at },
        ['name'],
        { version: app.version, updated_at: at },
      )
      .execute()
  }
  const hookSite = { name: site.name, path: site.path, dbType: driver.type }
  let current: AppManifest | undefined
  try {
    for (let start = 0; start < todo.length || prelude;) {
      options.signal?.throwIfAborted()
      // This group: every app up to and including the next one whose hook is a command.
      let end = start
      while (end < todo.length && todo[end]!.hooks.after_install?.kind !== 'command') end++
      const group = todo.slice(start, Math.min(end + 1, todo.length))
      const withCommand = end < todo.length ? todo[end] : undefined
      const partial: AppInstallResult[] = []
      await site.conn.transaction(async (tx) => {
        if (prelude) await prelude(tx)
        await ensureLedger(tx.trx)
        let installedNow = new Set<string>()
        // The core schema is kept current before any app is installed on it.
        await upgradeSchema(tx, site.name, await readLedger(tx.trx), group, {
          coreDone: async () => {
            // Read again under the write lock: another process may have installed some meanwhile.
            installedNow = new Set((await installedApps(tx.trx)).map((a) => a.name))
          },
          start: (app) => {
            if (installedNow.has(app.name)) {
              partial.push(skipped(app))
              return false
            }
            current = app
            options.onProgress?.({ app: app.name, phase: 'start' })
            return true
          },
          done: async (app, { migrations, fixtures }) => {
            const result: AppInstallResult = {
              app: app.name,
              version: app.version,
              status: 'installed',
              migrations,
              fixtures: fixtures ?? 0,
            }
            partial.push(result)
            if (app === withCommand) return
            const hook = await callHookIn(bench, app, 'after_install', hookSite, tx.trx, options.signal)
            if (hook) result.hook_output = hook.output
            await record(tx.trx, app)
            // Shown now so progress reads one app at a time; the commit follows at once.
            options.onProgress?.({ app: app.name, phase: 'done', result })
          },
        })
        if (epilogue && start + group.length >= todo.length) {
          current = undefined // its failure is not an app's
          await epilogue(tx)
        }
      })
      prelude = undefined
      if (start + group.length >= todo.length) epilogue = undefined
      for (const result of partial) {
        if (withCommand && result.app === withCommand.name && result.status === 'installed') {
          current = withCommand
          const hook = await runCommandHook(bench, withCommand, 'after_install', hookSite, options.signal)
          await record(site.conn.db, withCommand)
          result.hook_output = hook?.output
          options.onProgress?.({ app: result.app, phase: 'done', result })
        }
        results.push(result)
      }
      current = undefined
      start += group.length
    }
  } catch (error) {
    if (!current) throw error
    const app = current
    options.onProgress?.({ app: app.name, phase: 'fail' })
    if (error instanceof TenancyError && error.namedApp === app.name) throw error
    throw new TenancyError(`installing app "${app.name}" on site "${site.name}" failed: ${(error as Error).message}`, {
      cause: error,
      exitCode: error instanceof TenancyError ? error.exitCode : undefined,
    })
  }
  // No transaction ran (every app installed already, and no prelude).
  if (epilogue) await site.conn.transaction(epilogue)
  return results
}

/** `tenancy install-app`: installs apps and their requirements on a site, requirements first. */
export async function installApps(
  bench: Bench,
  options: { site: string; apps: string[] } & InstallOptions,
): Promise<{ site: string; apps: AppInstallResult[] }> {
  const order = resolveInstallOrder(bench, options.apps)
  return usingSite(bench, options.site, async (site) => {
    const results = await installAppsOn(bench, site, order, options)
    if (results.some((r) => r.status === 'installed')) {
      const registry = await bench.registry()
      await registry.setSiteApps(site.name, await installedApps(site.conn.db))
    }
    return { site: site.name, apps: results }
  })
}
