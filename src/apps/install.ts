import type { Kysely } from 'kysely'
import type { Bench } from '../bench.js'
import { TenancyError } from '../errors.js'
import { now, type InstalledAppSummary } from '../registry/registry.js'
import { usingSite, type OpenSite } from '../sites/site.js'
import { syncFixtures } from './fixtures.js'
import { runAfterInstall } from './hooks.js'
import { resolveInstallOrder, type AppManifest } from './manifest.js'
import { applyMigrations, ensureLedger, readLedger, sql } from './migrations.js'

export interface AppInstallResult {
  app: string
  version: string
  status: 'installed' | 'already_installed'
  migrations: string[]
  fixtures: number
  hook_output?: string
}

/** Called as each app starts and ends, for progress display. */
export type InstallProgress = (event: { app: string; phase: 'start' | 'done' | 'skip' | 'fail'; result?: AppInstallResult }) => void

export interface InstallOptions {
  onProgress?: InstallProgress
  signal?: AbortSignal
}

/** The apps installed on a site, with versions, from its own `installed_apps` table. */
export async function installedApps(db: Kysely<any>): Promise<InstalledAppSummary[]> {
  const rows = await db.selectFrom('installed_apps').select(['name', 'version']).orderBy('installed_at').orderBy('name').execute()
  return rows as InstalledAppSummary[]
}

/**
 * Installs `apps` (already in requirement order) on an open site: per app, one transaction
 * applies its pending migrations and upserts its fixtures; then its `after_install` hook
 * runs; only then is the app recorded as installed, so a failed hook is retried by the
 * next install (migrations stay in the ledger and are not run twice).
 */
export async function installAppsOn(bench: Bench, site: OpenSite, apps: readonly AppManifest[], options: InstallOptions = {}): Promise<AppInstallResult[]> {
  const results: AppInstallResult[] = []
  const installed = new Set((await installedApps(site.conn.db)).map((a) => a.name))
  const ctx = { sql, dbType: site.conn.dbType, site: site.name }
  for (const app of apps) {
    options.signal?.throwIfAborted()
    if (installed.has(app.name)) {
      const result: AppInstallResult = { app: app.name, version: app.version, status: 'already_installed', migrations: [], fixtures: 0 }
      results.push(result)
      options.onProgress?.({ app: app.name, phase: 'skip', result })
      continue
    }
    options.onProgress?.({ app: app.name, phase: 'start' })
    try {
      const { migrations, fixtures } = await site.conn.transaction(async (trx, exec) => {
        await ensureLedger(trx)
        const ledger = await readLedger(trx)
        const migrations = await applyMigrations(trx, exec, app.name, app.migrations, ledger.get(app.name) ?? new Set(), ctx)
        const fixtures = await syncFixtures(trx, site.conn.dbType, app.name, app.fixtures)
        return { migrations, fixtures }
      })
      const hook = await runAfterInstall(bench, app, { name: site.name, path: site.path, dbType: site.conn.dbType }, options.signal)
      const at = now()
      await site.conn.db
        .insertInto('installed_apps')
        .values({ name: app.name, version: app.version, installed_at: at, updated_at: at })
        .onConflict((oc) => oc.column('name').doUpdateSet({ version: app.version, updated_at: at }))
        .execute()
      installed.add(app.name)
      const result: AppInstallResult = { app: app.name, version: app.version, status: 'installed', migrations, fixtures, hook_output: hook?.output }
      results.push(result)
      options.onProgress?.({ app: app.name, phase: 'done', result })
    } catch (error) {
      options.onProgress?.({ app: app.name, phase: 'fail' })
      if (error instanceof TenancyError && error.message.includes(`app "${app.name}"`)) throw error
      throw new TenancyError(`installing app "${app.name}" on site "${site.name}" failed: ${(error as Error).message}`, {
        cause: error,
        exitCode: error instanceof TenancyError ? error.exitCode : undefined,
      })
    }
  }
  return results
}

/** `tenancy install-app`: installs apps and their requirements on a site, requirements first. */
export async function installApps(bench: Bench, options: { site: string; apps: string[] } & InstallOptions): Promise<{ site: string; apps: AppInstallResult[] }> {
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
