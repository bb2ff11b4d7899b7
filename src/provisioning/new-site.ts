import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, rmSync } from 'node:fs'
import type { Bench } from '../bench.js'
import type { DbType } from '../config/config.js'
import { getDriver } from '../databases/index.js'
import { resolveServerAdmin } from '../sites/server-admin.js'
import type { DatabaseDriver, SiteConnection, SiteDbSettings } from '../databases/driver.js'
import type { ServerAdmin } from '../databases/server-admin.js'
import { ServerGoneError } from '../databases/server-gone.js'
import {
  EXIT_FAILED,
  EXIT_USAGE,
  InterruptedError,
  TenancyError,
  isUsageError,
  messageOf,
  usageError,
} from '../errors.js'
import { assertDbName, assertSiteName, generateDbName } from '../names.js'
import type { Registry } from '../registry/registry.js'
import { ownerAlive } from '../util/process-owner.js'
import { resolveInstallOrder, type AppManifest } from '../apps/manifest.js'
import { installAppsOn, installedApps, type AppInstallResult, type InstallProgress } from '../apps/install.js'
import { generatePassword, hashPassword } from '../secrets/hashing.js'
import { resolveSecret, type ResolvedSecret, type SecretSources } from '../secrets/resolve-secret.js'
import { CleanupStack } from '../util/cleanup.js'
import { CORE_APP } from '../apps/core-app.js'
import { MigrationError } from '../apps/migrations.js'
import { archiveDirectory } from '../sites/drop-site.js'
import { backupAndDropSite } from '../backups/backup-before-drop.js'
import { writeSiteConfig, type SiteConfig } from '../sites/site.js'
import { upsertAdministrator } from '../sites/users.js'
import { loadBackup } from '../backups/restore.js'
import { verifyBackupSet, type VerifiedSet } from '../backups/verify-set.js'
import { migrate } from '../migrate/migrate.js'
import type { SiteResult } from '../migrate/site-migrator.js'

export interface NewSiteOptions {
  site: string
  dbType?: DbType
  dbName?: string
  dbHost?: string
  dbPort?: number
  dbRootUsername?: string
  dbRootPasswordFile?: string
  adminPasswordFile?: string
  installApps?: string[]
  /** The Administrator's password, given by a caller that already has it (the pipeline). */
  adminPassword?: string
  /** The tenant that owns the site, recorded in its registry row from the start. */
  tenantId?: number
  /**
   * Replace an existing site (backs it up into its archive, then drops its database and archives
   * its directory); with `fromBackup`, also accept a set newer than the apps.
   */
  force?: boolean
  /** false (`--no-backup`): replace a site with `force` without backing it up first. */
  backup?: boolean
  /**
   * A backup set to make the site from instead of installing apps: its database, its apps and
   * its settings (`site_config.json` without `db_*`), then brought up to date by migrate.
   */
  fromBackup?: string
  /** Leave a failed site in place (registry state `failed`) for debugging. */
  keepOnFailure?: boolean
  /** Asks for a secret on a TTY; absent in non-interactive runs. */
  prompt?: SecretSources['prompt']
  onProgress?: InstallProgress
  onWarning?: (message: string) => void
  signal?: AbortSignal
}

export interface NewSiteResult {
  site: string
  path: string
  db_type: DbType
  db_name: string
  apps: AppInstallResult[]
  /** Only when tenancy generated it: shown once, stored nowhere in plain text. */
  admin_password?: string
  /** With --force over an existing site: its archive directory (`archived/sites/<site>-<stamp>/`). */
  replaced_archived_to?: string | null
  /** With --force over an existing site: the backup set taken of it first (inside its archive), or null. */
  replaced_backup?: string | null
  /** With --from-backup: the set the site was made from, and the migrate that brought it up to date. */
  restored_from?: string
  migrate?: Pick<SiteResult, 'status' | 'applied' | 'error'>
  duration_ms: number
}

/** Where new-site looks for the Administrator's password. */
export function adminPasswordSources(bench: Bench, filePath?: string, prompt?: SecretSources['prompt']): SecretSources {
  return {
    label: 'admin password',
    fileFlag: '--admin-password-file',
    filePath: filePath ?? bench.passwordFlags?.adminPasswordFile,
    flag: '--admin-password',
    flagValue: bench.passwordFlags?.adminPassword,
    envVar: 'TENANCY_ADMIN_PASSWORD',
    env: bench.env,
    configKey: 'provision_admin_password',
    config: bench.rawConfig,
    prompt,
    promptHint: 'leave empty to generate one',
  }
}

/**
 * `tenancy new-site`: the site directory, its database (and user), the core tables, the
 * Administrator, and any apps. The intent is recorded in the registry first; a failure at
 * any point removes everything made (unless `keepOnFailure`), so nothing half-made is left.
 */
export async function newSite(bench: Bench, options: NewSiteOptions): Promise<NewSiteResult> {
  const started = performance.now()
  const inputs = await resolveInputs(bench, options)
  const intent = await recordIntent(bench, options, inputs)
  const apps = await build(bench, options, inputs, intent)
  const migrated = inputs.backup ? await migrateRestored(bench, inputs.name, options.signal) : undefined
  return {
    site: inputs.name,
    path: inputs.sitePath,
    db_type: inputs.driver.type,
    db_name: inputs.dbName,
    apps,
    ...(inputs.admin || inputs.backup ? {} : { admin_password: inputs.adminPassword }),
    ...(inputs.backup && migrated ? { restored_from: inputs.backup.dir, migrate: migrated } : {}),
    ...(intent.replaced !== undefined
      ? { replaced_archived_to: intent.replaced, replaced_backup: intent.replacedBackup }
      : {}),
    duration_ms: Math.round(performance.now() - started),
  }
}

/** What `newSite` resolves and checks before it changes anything. */
interface NewSiteInputs {
  name: string
  sitePath: string
  driver: DatabaseDriver
  dbName: string
  /** The apps to install, in requirement order. */
  apps: AppManifest[]
  /** The Administrator's password as given; undefined when it was generated (and so is shown once). */
  admin: ResolvedSecret | undefined
  adminPassword: string
  /** The password's hash, computed on the thread pool meanwhile. */
  adminHash: Promise<string>
  serverAdmin: ServerAdmin | undefined
  settings: SiteDbSettings
  /** With --from-backup: the set, checked whole. */
  backup: VerifiedSet | undefined
}

/**
 * The options resolved and checked: names, the driver, the apps, the Administrator's password and the
 * server's admin.
 */
async function resolveInputs(bench: Bench, options: NewSiteOptions): Promise<NewSiteInputs> {
  const name = assertSiteName(options.site)
  const dbName =
    options.dbName !== undefined ? assertDbName(options.dbName) : generateDbName(randomBytes(8).toString('hex'))
  if (options.fromBackup !== undefined && (options.installApps?.length ?? 0) > 0)
    throw usageError(
      '--install-app cannot be combined with --from-backup (the backup brings its apps); ' +
        'install more afterwards with "tenancy install-app"',
    )
  // Checked whole before anything changes; the site is of the backup's type unless --db-type says.
  const backup =
    options.fromBackup !== undefined
      ? await verifyBackupSet(bench, options.fromBackup, { dbType: options.dbType, site: name, force: options.force })
      : undefined
  const driver = backup?.driver ?? (await getDriver(options.dbType ?? bench.config.db.type))
  if (!driver.server) {
    const serverOnly = (
      [
        ['--db-host', options.dbHost],
        ['--db-port', options.dbPort],
        ['--db-root-username', options.dbRootUsername],
        ['--db-root-password-file', options.dbRootPasswordFile ?? bench.passwordFlags?.dbRootPasswordFile],
        ['--db-root-password (or --mariadb-root-password)', bench.passwordFlags?.dbRootPassword],
      ] as const
    ).filter(([, value]) => value !== undefined)
    if (serverOnly.length > 0)
      options.onWarning?.(
        `${serverOnly.map(([flag]) => flag).join(', ')} ignored: ${driver.label} sites have no database server`,
      )
  }
  const apps = resolveInstallOrder(bench, options.installApps ?? [])

  // The password hash runs on the thread pool while the SQL of the build runs on this thread.
  // From a backup, the Administrator keeps the backup's password unless one is given (no prompt).
  const admin =
    options.adminPassword !== undefined
      ? { value: options.adminPassword, source: 'file' as const, where: 'the caller', warning: undefined }
      : await resolveSecret(adminPasswordSources(bench, options.adminPasswordFile, backup ? undefined : options.prompt))
  if (admin?.warning) options.onWarning?.(admin.warning)
  if (admin && admin.value.length === 0)
    throw usageError(
      `the admin password from ${admin.where} is empty; give a non-empty one, or give none to have one generated`,
    )
  const adminPassword = admin?.value ?? generatePassword()
  const adminHash = hashPassword(adminPassword)
  adminHash.catch(() => {})

  const serverAdmin = await resolveServerAdmin(bench, driver, {
    dbHost: options.dbHost,
    dbPort: options.dbPort,
    dbRootUsername: options.dbRootUsername,
    dbRootPasswordFile: options.dbRootPasswordFile,
    prompt: options.prompt,
    onWarning: options.onWarning,
  })
  const sitePath = bench.sitePath(name)
  const settings = driver.plan(dbName, serverAdmin)
  return { name, sitePath, driver, dbName, apps, admin, adminPassword, adminHash, serverAdmin, settings, backup }
}

/** The registry row that records the site being made, and the stack that undoes what is made after it. */
interface SiteIntent {
  registry: Registry
  /** With --force over an existing site: where its old directory was archived (undefined: nothing was replaced). */
  replaced: string | null | undefined
  /** With --force over an existing site: the backup set taken of it first (null: none). */
  replacedBackup: string | null
  cleanup: CleanupStack
  /**
   * Set when the database could not be dropped: then the row (marked failed) and the site's
   * config stay, being what tells `drop-site` (or doctor) which database and user to remove later.
   */
  databaseKept: boolean
}

/**
 * Records the intent row before anything is made: a name taken by a site (or by another
 * process making one) is refused, or with `force` replaced, its old directory archived.
 */
async function recordIntent(bench: Bench, options: NewSiteOptions, inputs: NewSiteInputs): Promise<SiteIntent> {
  const { name, settings } = inputs
  const registry = await bench.registry()
  const intent = {
    name,
    db_type: inputs.driver.type,
    db_name: inputs.dbName,
    db_host: settings.db_host ?? null,
    db_port: settings.db_port ?? null,
    db_user: settings.db_user ?? null,
    tenant_id: options.tenantId ?? null,
    host: bench.host,
  }
  let replaced: string | null | undefined
  let replacedBackup: string | null = null
  if (!(await registry.insertSiteIntent(intent))) {
    const existing = await registry.getSite(name)
    if (!options.force) {
      if (existing?.state === 'creating' && existing.owner && ownerAlive(existing.owner) === false) {
        throw usageError(
          `an earlier new-site of "${name}" was interrupted and left it half-made; ` +
            `remove it with "tenancy drop-site ${name}", or use --force`,
        )
      }
      // --force cannot replace a tenant's site: the hint says what can.
      const tenant = existing?.tenant_id != null ? await registry.tenantOfSite(name) : undefined
      if (tenant?.pending_since != null)
        throw usageError(`site "${name}" already exists: it is a pending pool site; pick another name`)
      if (tenant)
        throw usageError(
          `site "${name}" already exists: it is tenant "${tenant.name}"'s; pick another name ` +
            `(remove the tenant with "tenancy tenant delete ${tenant.name}" first to reuse it)`,
        )
      throw usageError(
        `site "${name}" already exists (or is being created by another process); ` +
          `pick another name, or use --force to replace it`,
      )
    }
    if (existing?.tenant_id != null && existing.tenant_id !== options.tenantId) {
      throw usageError(
        `site "${name}" belongs to a tenant; remove it with "tenancy tenant delete" instead of replacing it`,
      )
    }
    // The old site is backed up and its directory archived, not deleted: --force must not lose data silently.
    if (existing) {
      const dropped = await backupAndDropSite(bench, {
        site: name,
        archive: true,
        force: true,
        backup: options.backup !== false,
        verb: 'replace',
        signal: options.signal,
      })
      replaced = dropped.archived_to
      replacedBackup = dropped.backup
    } else replaced = null
    options.onWarning?.(
      `replaced site "${name}"${replaced ? `; its old directory is in ${replaced}` : ''}` +
        `${replacedBackup ? `, with a backup in ${replacedBackup}` : ''}`,
    )
    if (!(await registry.insertSiteIntent(intent))) {
      throw usageError(`site "${name}" was created again by another process while it was being replaced; try again`)
    }
  }

  const site: SiteIntent = { registry, replaced, replacedBackup, cleanup: new CleanupStack(), databaseKept: false }
  site.cleanup.push('registry row', () =>
    site.databaseKept ? registry.setSiteState(name, 'failed') : registry.deleteSite(name),
  )
  return site
}

/**
 * Makes the site its intent row recorded: directory, config, database and user, the core
 * schema, apps and the Administrator, then marks the row ready. On failure, undoes it all
 * through the intent's cleanup stack (or, with `keepOnFailure`, marks it failed and keeps it).
 */
async function build(
  bench: Bench,
  options: NewSiteOptions,
  inputs: NewSiteInputs,
  intent: SiteIntent,
): Promise<AppInstallResult[]> {
  const { name, sitePath, driver, settings, serverAdmin } = inputs
  const { registry, cleanup } = intent
  let conn: SiteConnection | undefined
  let coreOpen = false
  try {
    if (existsSync(sitePath)) {
      if (!options.force) {
        throw usageError(
          `directory ${sitePath} exists but no site is registered under that name; ` +
            `move it away, or use --force to replace it`,
        )
      }
      const archived = archiveDirectory(bench, sitePath, name)
      options.onWarning?.(`moved the unregistered directory ${sitePath} to ${archived}`)
    }
    mkdirSync(bench.sitesPath, { recursive: true })
    mkdirSync(sitePath, { mode: 0o750 })
    cleanup.push('site directory', () => {
      if (!intent.databaseKept) rmSync(sitePath, { recursive: true, force: true })
    })
    writeSiteConfig(sitePath, settings as SiteConfig)
    options.signal?.throwIfAborted()
    options.onProgress?.({ app: CORE_APP, phase: 'start' })
    coreOpen = true

    const dropDatabase = async () => {
      try {
        await driver.drop(settings, sitePath, serverAdmin)
      } catch (error) {
        intent.databaseKept = true
        throw error
      }
    }
    try {
      await driver.create(settings, sitePath, serverAdmin)
    } catch (error) {
      // A server that went away mid-create may have kept the user or database it was making
      // (its own undo could not reach it): drop them by name, or keep the row for drop-site.
      if (error instanceof ServerGoneError) cleanup.push('database', dropDatabase)
      throw error
    }
    cleanup.push('database', dropDatabase)
    if (inputs.backup)
      return await buildFromBackup(bench, inputs, intent, { signal: options.signal, force: options.force }, () => {
        options.onProgress?.({ app: CORE_APP, phase: 'done' })
        coreOpen = false
      })
    conn = await driver.connect(settings, sitePath)
    const open = conn
    cleanup.push('connection', () => open.close())

    const results = await installAppsOn(
      bench,
      { name, path: sitePath, config: settings as SiteConfig, conn },
      inputs.apps,
      {
        onProgress: options.onProgress,
        signal: options.signal,
        // installAppsOn brings the core schema up to date in its first transaction.
        prelude: async () => {
          options.onProgress?.({ app: CORE_APP, phase: 'done' })
          coreOpen = false
        },
        // Last in the last install transaction, so the scrypt hash started with the inputs had
        // the app installs' time to finish, and the Administrator costs no commit of its own.
        epilogue: async (tx) => upsertAdministrator(tx, await inputs.adminHash),
      },
    )
    const summary = await installedApps(conn.db)
    await conn.close()
    conn = undefined
    if (!(await registry.markSiteReady(name, summary))) {
      throw new TenancyError(
        `site "${name}" was changed by another process while it was being created; check it with "tenancy list-sites"`,
      )
    }
    cleanup.clear()
    return results
  } catch (error) {
    if (coreOpen) options.onProgress?.({ app: CORE_APP, phase: 'fail' })
    const interrupted = options.signal?.aborted || error instanceof InterruptedError
    if (options.keepOnFailure) {
      await conn?.close().catch(() => {})
      await registry.setSiteState(name, 'failed').catch(() => {})
      await registry.logError({ site: name, step: 'new-site', message: messageOf(error) }).catch(() => {})
      throw wrapFailure(
        name,
        error,
        `kept for debugging in ${sitePath}; remove it with "tenancy drop-site ${name}"`,
        interrupted,
      )
    }
    const failures = await cleanup.run()
    const left =
      failures.length > 0
        ? `; could not remove ${failures.map((f) => `${f.label} (${messageOf(f.error)})`).join(', ')}, ` +
          `run "tenancy drop-site ${name}"`
        : ''
    // What the migration left in place went with the site: the database's note on it would mislead.
    let migration: unknown = error
    while (migration instanceof Error && !(migration instanceof MigrationError)) migration = migration.cause
    const cause =
      migration instanceof MigrationError
        ? new TenancyError(messageOf(error).replace(migration.message, migration.withoutNote), { cause: error })
        : error
    throw wrapFailure(name, cause, `rolled back${left}`, interrupted)
  }
}

/**
 * The from-backup half of `build`, in the database just made: the set's dump loaded and checked,
 * the set's settings written around the new `db_*` keys, the Administrator's password set when
 * one was given, the row marked ready. Returns the apps as installed results, for the summary.
 */
async function buildFromBackup(
  bench: Bench,
  inputs: NewSiteInputs,
  intent: SiteIntent,
  options: { signal?: AbortSignal; force?: boolean },
  onCoreDone: () => void,
): Promise<AppInstallResult[]> {
  const { name, sitePath, driver, settings } = inputs
  const set = inputs.backup!
  const apps = await loadBackup(bench, set, driver, settings, sitePath, options)
  writeSiteConfig(sitePath, { ...set.siteConfig, ...settings } as SiteConfig)
  if (inputs.admin) {
    const hash = await inputs.adminHash
    const conn = await driver.connect(settings, sitePath)
    try {
      await conn.transaction((tx) => upsertAdministrator(tx, hash))
    } finally {
      await conn.close()
    }
  }
  onCoreDone()
  if (!(await intent.registry.markSiteReady(name, apps)))
    throw new TenancyError(
      `site "${name}" was changed by another process while it was being created; check it with "tenancy list-sites"`,
    )
  intent.cleanup.clear()
  const applied = new Map(set.manifest.apps.map((a) => [a.name, a.migrations]))
  return apps.map((a) => ({
    app: a.name,
    version: a.version,
    status: 'installed' as const,
    migrations: applied.get(a.name) ?? [],
    fixtures: 0,
  }))
}

/** After a site is made from a backup: migrate brings it up to date with the bench's apps. */
async function migrateRestored(
  bench: Bench,
  site: string,
  signal: AbortSignal | undefined,
): Promise<Pick<SiteResult, 'status' | 'applied' | 'error'>> {
  const result = (await migrate(bench, { sites: [site], signal })).sites[0]
  return { status: result?.status ?? 'up_to_date', applied: result?.applied ?? [], error: result?.error ?? null }
}

function wrapFailure(site: string, error: unknown, what: string, interrupted: boolean): TenancyError {
  if (interrupted) return new InterruptedError(`new-site "${site}"`, what)
  const exitCode = isUsageError(error) ? EXIT_USAGE : EXIT_FAILED
  return new TenancyError(`new-site "${site}" failed (${what}): ${messageOf(error)}`, { exitCode, cause: error })
}
