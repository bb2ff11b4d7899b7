/**
 * The tenancy library: what the CLI does, callable from application code.
 *
 * @example
 * import { usingBench, newSite } from 'tenancy'
 * await usingBench({ cwd: '/srv/bench' }, (bench) =>
 *   newSite(bench, { site: 'acme.localhost', installApps: ['tenant_ops'] }),
 * )
 */
import { sql, type Kysely } from 'kysely'
import { getDriver } from './databases/index.js'
import { readSiteConfig } from './sites/site.js'
import type { DbType } from './config/config.js'

export { Bench, findConfigFile, type BenchOptions } from './bench.js'
export { openBench, usingBench } from './session.js'
export { TenancyError, EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED } from './errors.js'
export type { BenchConfig, DbType } from './config/config.js'
export { newSite, type NewSiteOptions, type NewSiteResult } from './provisioning/new-site.js'
export { renameSite, renameTenantSite, type RenameSiteResult } from './provisioning/rename-site.js'
// The library's drop-site is the CLI's: a backup first (`backup: false` to skip it).
export {
  backupAndDropSite as dropSite,
  type BackupAndDropOptions as DropSiteOptions,
  type BackupAndDropResult as DropSiteResult,
} from './backups/backup-before-drop.js'
export { listSites, siteListing, type ListSitesOptions, type SiteListing } from './sites/list-sites.js'
export { showConfig, coerceConfigValue, setSiteConfig } from './sites/config-commands.js'
export { setConfig, setGlobalConfig } from './provisioning/global-config.js'
export {
  addSystemManager,
  addUser,
  checkPassword,
  type AddUserOptions,
  type AddUserResult,
  type CheckPasswordOptions,
} from './sites/users.js'
export { setAdminPassword, type SetAdminPasswordOptions, type SetAdminPasswordResult } from './sites/admin-password.js'
export {
  generateKeys,
  verifyKey,
  type ApiCredentials,
  type SiteSuspension,
  type VerifyKeyResult,
} from './sites/api-keys.js'
export { installApps, type AppInstallResult } from './apps/install.js'
export { listApps, listSiteApps } from './apps/list-apps.js'
export { initBench } from './sites/init.js'
export { usingSite, readSiteConfig, type OpenSite } from './sites/site.js'
export type { MigrationContext, MigrationModule } from './apps/migrations.js'
export type { HookContext } from './apps/module-hook.js'
export {
  executeOnSites,
  type ExecuteOptions,
  type ExecuteResult,
  type SiteContext,
  type SiteExecuteResult,
  type SiteFunction,
} from './fleet/execute.js'

/** What `withSiteDatabase` hands its callback besides the Kysely instance. */
export interface SiteDatabaseContext {
  sql: typeof sql
  dbType: DbType
  site: string
}

/**
 * Connects to the database of the site in `sitePath` as the site's own user (from its
 * `site_config.json`), runs `fn` in one transaction, and closes. App hooks use this:
 *
 * @example
 * const { withSiteDatabase } = await import(pathToFileURL(process.env.TENANCY_LIB).href)
 * await withSiteDatabase(process.env.TENANCY_SITE_PATH, (db) => db.insertInto('audit_log').values(row).execute())
 */
export async function withSiteDatabase<T>(
  sitePath: string,
  fn: (db: Kysely<any>, ctx: SiteDatabaseContext) => Promise<T>,
): Promise<T> {
  const config = readSiteConfig(sitePath)
  const driver = await getDriver(config.db_type)
  const conn = await driver.connect(config, sitePath)
  try {
    const site =
      sitePath
        .replace(/[\\/]+$/, '')
        .split(/[\\/]/)
        .pop() ?? ''
    return await conn.db.transaction().execute((trx) => fn(trx, { sql, dbType: conn.driver.type, site }))
  } finally {
    await conn.close()
  }
}
export { SecretBox, loadSecretBox } from './secrets/secret-box.js'
export { runOnSites, type RunOptions, type RunResult, type SiteRunResult } from './fleet/run.js'
export {
  createTenant,
  listTenants,
  tenantListing,
  type ListTenantsOptions,
  showTenant,
  deleteTenant,
  type CreateTenantOptions,
  type CreateTenantResult,
} from './provisioning/tenants.js'
export { provisionTenant, type ProvisionOptions, type ProvisionResult, type StepEvent } from './provisioning/runner.js'
export { runWorker, type WorkerOptions, type WorkerResult } from './provisioning/worker.js'
export { doctor, type DoctorResult, type Finding } from './doctor/doctor.js'
export { listErrors, errorListing, type ErrorEntry, type ListErrorsOptions } from './provisioning/error-log.js'
export { changeTenantStatus, type StatusChange, type StatusChangeResult } from './provisioning/tenant-status.js'
export { updateTenantData, type UpdateTenantOptions, type UpdateTenantResult } from './provisioning/tenant-data.js'
export {
  listEvents,
  eventListing,
  type EventListing,
  type ListEventsOptions,
  type ListEventsResult,
} from './events/list-events.js'
export type { Listing, PageOptions } from './util/listing.js'
export { signBody } from './secrets/hashing.js'
export type { TenantJson, StepJson } from './registry/tenants.js'

// ---- the pending pool ----------------------------------------------------------------

import type { Bench as PoolBench, BenchOptions as PoolBenchOptions } from './bench.js'
import { usingBench as usingBenchForPool } from './session.js'
import * as pulling from './pool/pull.js'
import * as reserving from './pool/reserve.js'
import * as poolStatus from './pool/status.js'
import type { PoolOptions } from './pool/reserve.js'
import type { PullAttributes, PullResult } from './pool/pull.js'
import type { TenantJson as PoolTenantJson } from './registry/tenants.js'

export type { PendingAttributesHook, PoolOptions, PendingCreateResult } from './pool/reserve.js'
export type { PullAttributes, PullResult } from './pool/pull.js'
export type { ClearResult } from './pool/clear.js'
export { pendingCreate } from './pool/reserve.js'
export { pendingClear } from './pool/clear.js'
export { createOrPullTenant } from './pool/sign-up.js'

/**
 * Where the pool functions find their bench: an open `bench`, or `BenchOptions` (`cwd`,
 * `config`), by default the bench found from the working directory or `TENANCY_CONFIG`.
 * `getPendingAttributes` gives default attributes for new pending tenants.
 */
export type PoolCallOptions = PoolBenchOptions & PoolOptions & { bench?: PoolBench }

function withPoolBench<T>(options: PoolCallOptions, fn: (bench: PoolBench) => Promise<T>): Promise<T> {
  return options.bench ? fn(options.bench) : usingBenchForPool(options, fn)
}

/** Adds one fully provisioned pending tenant to the pool. */
export function createPending(
  attrs: Record<string, unknown> = {},
  options: PoolCallOptions = {},
): Promise<PoolTenantJson> {
  return withPoolBench(options, (bench) => reserving.createPending(bench, attrs, options))
}

/**
 * At sign-up: takes a ready pending tenant (milliseconds), or provisions a new one when the
 * pool is empty.
 *
 * @example
 * const tenant = await pullPending({ name: 'acme', data: { plan: 'pro' } })
 */
export function pullPending(
  attrs: PullAttributes & { name: string },
  options: PoolCallOptions = {},
): Promise<PullResult> {
  return withPoolBench(options, (bench) => pulling.pullPending(bench, attrs))
}

/** Takes a ready pending tenant; null when the pool has none (unless `firstOrCreate`). */
export function pullPendingFromPool(
  firstOrCreate = false,
  attrs: PullAttributes = {},
  options: PoolCallOptions = {},
): Promise<PullResult | null> {
  return withPoolBench(options, (bench) => pulling.pullPendingFromPool(bench, firstOrCreate, attrs))
}

/** How many pending tenants the pool holds, ready or still being provisioned. */
export function pendingCount(options: PoolCallOptions = {}): Promise<number> {
  return withPoolBench(options, (bench) => poolStatus.pendingCount(bench))
}
export { migrate, type MigrateOptions, type MigrateResult } from './migrate/migrate.js'
export type { SiteResult } from './migrate/site-migrator.js'
