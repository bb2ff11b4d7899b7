import type { Bench } from '../bench.js'
import { callHookIn, runCommandHook } from '../apps/hooks.js'
import { installedApps } from '../apps/install.js'
import { loadApp } from '../apps/manifest.js'
import { LEDGER_TABLE, missingDown, revertMigrations, type RevertStep } from '../apps/migrations.js'
import { backupKey, backupSite, backupsRoot } from '../backups/backup.js'
import { getDriver } from '../databases/index.js'
import { TenancyError, messageOf, usageError } from '../errors.js'
import { assertAppName } from '../names.js'
import { readSiteConfig, requireSite } from '../sites/site.js'
import { assertHomedHere } from '../sites/site-home.js'
import { holdingPendingTenant, pendingTenants } from '../sites/site-selection.js'

export interface UninstallOptions {
  /** Do not back the site up first. */
  noBackup?: boolean
  signal?: AbortSignal
}

/** `tenancy uninstall-app --json`. */
export interface UninstallResult {
  site: string
  app: string
  /** `app/migration` reverted, newest first. */
  reverted: string[]
  /** The backup taken first (null with --no-backup). */
  backup: string | null
  /** What the app's before_uninstall hook printed (its last 64 KiB). */
  hook_output?: string
  duration_ms: number
}

/**
 * `tenancy uninstall-app <app> --site S`: refused (exit 2) while another installed app
 * requires it, or while one of its applied migrations has no down; then the site is backed up
 * (unless `noBackup`; a failed backup changes nothing), then in one transaction (where the
 * database allows) the app's `before_uninstall` hook runs (a command hook just before it),
 * every applied migration of the app is reverted newest first and its ledger rows, fixture
 * digest and installed-app entry removed.
 */
export async function uninstallApp(
  bench: Bench,
  appName: string,
  siteName: string,
  options: UninstallOptions = {},
): Promise<UninstallResult> {
  const started = performance.now()
  assertAppName(appName)
  const registry = await bench.registry()
  const record = await requireSite(bench, siteName)
  assertHomedHere(bench, registry.kind, record, `uninstall-app ${appName} --site ${siteName}`)
  const path = bench.sitePath(siteName)
  const config = readSiteConfig(path)
  const driver = await getDriver(config.db_type)
  const app = loadApp(bench, appName)
  const box = !options.noBackup && bench.config.backups.encrypt ? await backupKey(bench) : undefined

  const work = async (): Promise<UninstallResult> => {
    const conn = await driver.connect(config, path)
    let steps: RevertStep[]
    try {
      const installed = await installedApps(conn.db)
      if (!installed.some((a) => a.name === appName))
        throw usageError(
          `app "${appName}" is not installed on site "${siteName}"; run "tenancy list-apps --site ${siteName}"`,
        )
      const dependent = installed
        .filter((a) => a.name !== appName)
        .find((a) => {
          try {
            return loadApp(bench, a.name).requires.includes(appName)
          } catch {
            return false
          }
        })
      if (dependent)
        throw usageError(
          `app "${dependent.name}" on site "${siteName}" requires "${appName}"; uninstall "${dependent.name}" first`,
        )
      steps = await appliedSteps(conn.db, app)
      const missing = (await Promise.all(steps.map(missingDown))).filter((m) => m !== undefined)
      if (missing.length > 0)
        throw usageError(`cannot uninstall "${appName}" from "${siteName}", nothing was changed: ${missing.join('; ')}`)
    } finally {
      await conn.close()
    }
    let backup: string | null = null
    if (!options.noBackup) {
      try {
        backup = (await backupSite(bench, siteName, { root: backupsRoot(bench), box, signal: options.signal })).path
      } catch (error) {
        throw new TenancyError(
          `backup of site "${siteName}" failed: ${messageOf(error)}; nothing was changed ` +
            `(use --no-backup to uninstall without one)`,
          { cause: error },
        )
      }
    }
    const hookSite = { name: siteName, path, dbType: config.db_type }
    // A command runs before the transaction (it connects on its own); a module inside it, so
    // that its throw keeps the app installed and its data as they were.
    let hook = await runCommandHook(bench, app, 'before_uninstall', hookSite, options.signal)
    const open = await driver.connect(config, path)
    let reverted: string[]
    try {
      reverted = await open.transaction(async (tx) => {
        hook ??= await callHookIn(bench, app, 'before_uninstall', hookSite, tx.trx, options.signal)
        const done = await revertMigrations(tx, siteName, await appliedSteps(tx.trx, app))
        await tx.trx.deleteFrom(LEDGER_TABLE).where('app', '=', appName).execute()
        await tx.trx.deleteFrom('tenancy_fixtures').where('app', '=', appName).execute()
        await tx.trx.deleteFrom('installed_apps').where('name', '=', appName).execute()
        return done
      })
      await registry.setSiteApps(siteName, await installedApps(open.db))
    } finally {
      await open.close()
    }
    return {
      site: siteName,
      app: appName,
      reverted,
      backup,
      ...(hook?.output ? { hook_output: hook.output } : {}),
      duration_ms: Math.round(performance.now() - started),
    }
  }

  const tenantId = (await pendingTenants(bench, [record])).get(siteName)
  return tenantId === undefined ? work() : holdingPendingTenant(bench, siteName, tenantId, work)
}

/** The app's applied migrations on a site, newest first (the reverse of their order in the app). */
async function appliedSteps(
  db: Parameters<typeof installedApps>[0],
  app: ReturnType<typeof loadApp>,
): Promise<RevertStep[]> {
  const rows = (await db.selectFrom(LEDGER_TABLE).select('name').where('app', '=', app.name).execute()) as {
    name: string
  }[]
  const applied = new Set(rows.map((r) => r.name))
  const unknown = [...applied].find((n) => !app.migrations.some((m) => m.name === n))
  if (unknown)
    throw new TenancyError(
      `${app.name}/${unknown} is applied on the site, but the app has no such migration to revert; restore its file first`,
    )
  return app.migrations
    .filter((m) => applied.has(m.name))
    .reverse()
    .map((migration) => ({ app: app.name, migration }))
}
