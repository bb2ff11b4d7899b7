import { randomBytes } from 'node:crypto'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import type { Bench } from '../bench.js'
import { CORE_APP, CORE_MIGRATIONS } from '../apps/core-app.js'
import { installedApps } from '../apps/install.js'
import { readLedger } from '../apps/migrations.js'
import { getDriver } from '../databases/index.js'
import type { DatabaseDriver, SiteDbSettings } from '../databases/driver.js'
import type { ServerAdmin } from '../databases/server-admin.js'
import { NODE, codeOf } from '../error-codes.js'
import {
  EXIT_FAILED,
  EXIT_USAGE,
  InterruptedError,
  TenancyError,
  isUsageError,
  messageOf,
  usageError,
} from '../errors.js'
import { migrate } from '../migrate/migrate.js'
import type { SiteResult } from '../migrate/site-migrator.js'
import { assertSiteName, generateDbName } from '../names.js'
import type { InstalledAppSummary, SiteRecord } from '../registry/registry.js'
import { usingTenantLease } from '../registry/leases.js'
import { resolveServerAdmin } from '../sites/server-admin.js'
import { RESTORE_INTENT, readSiteConfig, requireSite, writeSiteConfig, type SiteConfig } from '../sites/site.js'
import { assertHomedHere, assertRealSiteDirectory, isHomedHere } from '../sites/site-home.js'
import { faultPoint } from '../util/fault.js'
import { createFileOnce, fsyncDirectory } from '../util/json-file.js'
import { PROCESS_OWNER, ownerAlive } from '../util/process-owner.js'
import { backupKey, backupSite, backupsRoot } from './backup.js'
import type { BackupManifest } from './manifest.js'
import type { DbType } from '../config/config.js'
import { assertSetType, verifyBackupSet, type VerifiedSet } from './verify-set.js'
import { reapplyTenantCredentials } from '../sites/api-keys.js'

/**
 * The file in a site's directory that records a restore under way, written (0600) before the
 * new database is made: both databases' settings, so whoever finds it after a crash (the next
 * restore, `doctor --fix`) knows which one to drop.
 */
export { RESTORE_INTENT }

/** What `.restore.json` holds. */
export interface RestoreIntent {
  /** The restoring process, `pid@host`. */
  owner: string
  /** The backup set being restored. */
  from: string
  started_at: string
  /** The `db_*` settings of the database the site is on before the switch. */
  old: SiteDbSettings
  /** Those of the fresh database the backup is loaded into. */
  new: SiteDbSettings
  /**
   * With `restore --rehome`: the machine the site lived on. The site's directory here was made
   * by the restore, and its old database (on that machine) is never dropped from here.
   */
  rehome_from?: string
}

export interface RestoreOptions {
  /** Restore a backup holding migrations the bench's apps do not have. */
  force?: boolean
  /** Do not back the site's current state up first. */
  noBackup?: boolean
  /** Where that backup goes; default `backups.path`. */
  backupPath?: string
  signal?: AbortSignal
  /** The set, already checked by `verifyBackupSet` with the same `force` (a caller that asked about it first). */
  verified?: VerifiedSet
  /** Told each phase as it starts, for progress display. */
  onPhase?: (phase: 'verify' | 'backup' | 'load' | 'switch' | 'migrate') => void
}

/** `tenancy restore --json`. */
export interface RestoreResult {
  site: string
  /** The set restored. */
  from: string
  /** The database the site is on now, and the one dropped. */
  db_name: string
  previous_db_name: string
  /** The backup of the site's state before the restore (null with --no-backup). */
  backup: string | null
  /**
   * The name the restored data was taken under, when not the site's (a set from before a
   * rename, or of another site with --force): recorded on the site's row as a rename still to
   * finish, so its API user and apps' data follow the site's name (`tenancy restore` does it next;
   * else `doctor --fix`).
   */
  rename_from: string | null
  /** The site brought up to date afterwards. */
  migrate: Pick<SiteResult, 'status' | 'applied' | 'error'>
  duration_ms: number
}

/** The `db_*` keys of a site config. */
export function dbSettingsOf(config: Record<string, unknown>): SiteDbSettings {
  return Object.fromEntries(
    Object.entries(config).filter(([key]) => key.startsWith('db_')),
  ) as unknown as SiteDbSettings
}

/** A site config's own keys (everything but `db_*`) with `db` as its database. */
function withDatabase(config: Record<string, unknown>, db: SiteDbSettings): SiteConfig {
  const own = Object.entries(config).filter(([key]) => !key.startsWith('db_'))
  return { ...Object.fromEntries(own), ...db } as SiteConfig
}

/** The restore recorded in a site's directory, if one is under way or was interrupted. */
export function readRestoreIntent(sitePath: string): RestoreIntent | undefined {
  try {
    return JSON.parse(readFileSync(join(sitePath, RESTORE_INTENT), 'utf8')) as RestoreIntent
  } catch (error) {
    if (codeOf(error) === NODE.ENOENT) return undefined
    throw new TenancyError(`${join(sitePath, RESTORE_INTENT)} cannot be read: ${messageOf(error)}`, { cause: error })
  }
}

/** The prefix of a restore's scratch directory inside the site's directory. */
const WORK_PREFIX = '.restore-work-'

/** Removes a restore's intent file and scratch directories from the site's directory. */
export function removeRestoreIntent(sitePath: string): void {
  for (const name of readdirSync(sitePath))
    if (name.startsWith(WORK_PREFIX)) rmSync(join(sitePath, name), { recursive: true, force: true })
  rmSync(join(sitePath, RESTORE_INTENT), { force: true })
  fsyncDirectory(sitePath)
}

/**
 * Loads a verified set's dump into the empty database `settings` names, then checks it: the
 * migrations its ledger holds are the manifest's. Returns the installed apps it holds.
 */
export async function loadBackup(
  bench: Bench,
  set: VerifiedSet,
  driver: DatabaseDriver,
  settings: SiteDbSettings,
  sitePath: string,
  options: { signal?: AbortSignal; force?: boolean } = {},
): Promise<InstalledAppSummary[]> {
  const { signal, force } = options
  // Inside the site's directory, where a killed restore's leftovers (a password file among
  // them) are removed by whoever finishes it.
  const workDir = mkdtempSync(join(sitePath, WORK_PREFIX))
  try {
    await driver.restore(settings, sitePath, { source: set.openDump(), workDir, env: bench.env, signal })
  } catch (error) {
    if (codeOf(error) === NODE.Z_DATA_ERROR || codeOf(error) === NODE.Z_BUF_ERROR)
      throw usageError(
        `the dump in ${set.dir} is not the gzip data a backup writes (${messageOf(error)}); pick another set`,
      )
    throw error
  } finally {
    rmSync(workDir, { recursive: true, force: true })
  }
  faultPoint('restore-after-load')
  const conn = await driver.connect(settings, sitePath)
  try {
    const ledger = await readLedger(conn.db)
    assertLedgerMatches(set.dir, set.manifest, ledger, force)
    return await installedApps(conn.db)
  } finally {
    await conn.close()
  }
}

function assertLedgerMatches(
  dir: string,
  manifest: BackupManifest,
  ledger: Map<string, Set<string>>,
  force: boolean | undefined,
): void {
  const unusable = (why: string) =>
    new TenancyError(`the database restored from ${dir} ${why}; the set is not usable`, { exitCode: EXIT_USAGE })
  for (const app of manifest.apps) {
    const have = ledger.get(app.name) ?? new Set<string>()
    const missing = app.migrations.find((m) => !have.has(m))
    if (missing || have.size !== app.migrations.length)
      throw unusable(
        `does not hold the migrations its manifest lists for "${app.name}"${missing ? ` (${missing} is missing)` : ''}`,
      )
  }
  // The other way round too: nothing in the database that the manifest (checked against the bench) did not list.
  const listed = new Set(manifest.apps.map((a) => a.name))
  for (const [app, names] of ledger) {
    if (listed.has(app)) continue
    if (app !== CORE_APP) throw unusable(`holds migrations of the app "${app}", which its manifest does not list`)
    const core = new Set(CORE_MIGRATIONS.map((m) => m.name))
    const newer = [...names].find((n) => !core.has(n))
    if (newer && !force)
      throw unusable(`holds the core migration ${newer}, which this version of tenancy does not have (use --force)`)
  }
}

/** The server's admin for the site's database server (undefined for SQLite). */
async function adminFor(bench: Bench, driver: DatabaseDriver, db: SiteDbSettings): Promise<ServerAdmin | undefined> {
  return resolveServerAdmin(bench, driver, { dbHost: db.db_host, dbPort: db.db_port })
}

/**
 * Finishes a restore a crash interrupted, from its intent file: when the registry row names the
 * new database, the switch happened, so the config is pointed at it (if the crash came before
 * that) and the old database dropped; otherwise the new database is an orphan and is dropped.
 * Either way the site ends wholly on one database and the intent file is removed.
 */
export async function finishInterruptedRestore(
  bench: Bench,
  site: string,
  intent: RestoreIntent,
  admin?: ServerAdmin,
): Promise<{ switched: boolean }> {
  const sitePath = bench.sitePath(site)
  const row = await (await bench.registry()).getSite(site)
  const driver = await getDriver(intent.new.db_type)
  const serverAdmin = admin ?? (await adminFor(bench, driver, intent.rehome_from ? intent.new : intent.old))
  const switched = row?.db_name === intent.new.db_name
  if (intent.rehome_from !== undefined) {
    // The config was written before the switch, and the old database is on the machine the site left.
    if (switched) {
      await reapplyCredentials(bench, site)
      removeRestoreIntent(sitePath)
    } else {
      await driver.drop(intent.new, sitePath, serverAdmin)
      assertRealSiteDirectory(bench, sitePath)
      rmSync(sitePath, { recursive: true, force: true })
    }
    return { switched }
  }
  if (switched) {
    const config = readSiteConfig(sitePath)
    if (config.db_name !== intent.new.db_name) writeSiteConfig(sitePath, withDatabase(config, intent.new))
    await driver.drop(intent.old, sitePath, serverAdmin)
    await reapplyCredentials(bench, site)
  } else {
    await driver.drop(intent.new, sitePath, serverAdmin)
  }
  removeRestoreIntent(sitePath)
  return { switched }
}

/**
 * After the switch, before the intent goes (so a crash between is finished forward with it):
 * the backup's API keys and Administrator are the site's now, so a tenant's stored credentials
 * are made true on it again. Not while a rename is to finish: that gives new keys itself.
 */
export async function reapplyCredentials(bench: Bench, site: string): Promise<void> {
  const row = await (await bench.registry()).getSite(site)
  if (row?.tenant_id != null && row.rename_from == null) await reapplyTenantCredentials(bench, site, row.tenant_id)
}

/**
 * The set to restore into `site`, checked whole (unless the caller did), of the site's database
 * type, and of the site itself unless `force` (never another site's into a pending pool site).
 * `renameFrom`: the name its data was taken under, when not the site's.
 */
export async function checkSetFor(
  bench: Bench,
  site: string,
  dbType: DbType,
  setDir: string,
  options: Pick<RestoreOptions, 'force' | 'verified'>,
): Promise<{ set: VerifiedSet; renameFrom: string | null }> {
  const set = options.verified ?? (await verifyBackupSet(bench, setDir, { force: options.force }))
  await assertSetType(set, dbType, site)
  if (set.manifest.site !== site) {
    const owner = await (await bench.registry()).tenantOfSite(site)
    // A pool site is handed out by its own API user and names: another site's data would break the pull.
    if (owner?.pending_since != null)
      throw usageError(
        `site "${site}" is a pending pool site; only its own backups can be restored into it ` +
          `(${set.dir} is of "${set.manifest.site}")`,
      )
    if (!options.force)
      throw usageError(
        `${set.dir} is a backup of site "${set.manifest.site}", not of "${site}": it would give "${site}" ` +
          `that site's users and API keys; make a copy with "tenancy new-site NEW --from-backup ${setDir}", ` +
          `or pass --force`,
      )
  }
  const takenAs = set.manifest.backed_up_as ?? set.manifest.site
  return { set, renameFrom: takenAs === site ? null : takenAs }
}

/**
 * Runs a restore's `work` holding the tenant's lease when the site has a tenant (provisioning,
 * migrate and tenant delete hold it while they work on its site), then migrates the site.
 */
export async function leasedRestore<T extends Omit<RestoreResult, 'migrate' | 'duration_ms'>>(
  bench: Bench,
  record: Pick<SiteRecord, 'name' | 'tenant_id'>,
  started: number,
  options: Pick<RestoreOptions, 'signal' | 'onPhase'>,
  work: () => Promise<T>,
): Promise<T & Pick<RestoreResult, 'migrate' | 'duration_ms'>> {
  let done: T
  if (record.tenant_id === null) done = await work()
  else {
    const tenantId = record.tenant_id
    faultPoint('restore-before-lease')
    const outcome = await usingTenantLease(bench, tenantId, { site: record.name }, work)
    if (!outcome.taken)
      throw usageError(
        `site "${record.name}" is being worked on by ${outcome.heldBy}; wait for it to finish ` +
          `(a holder on a machine that is gone lets go when its lease expires), then restore`,
      )
    done = outcome.value
  }
  options.onPhase?.('migrate')
  return {
    ...done,
    migrate: await migrateRestoredSite(bench, record.name, options.signal),
    duration_ms: Math.round(performance.now() - started),
  }
}

/** After a restore: `migrate` for the site, as restore's result reports it. */
async function migrateRestoredSite(
  bench: Bench,
  site: string,
  signal: AbortSignal | undefined,
): Promise<RestoreResult['migrate']> {
  const migrated = (await migrate(bench, { sites: [site], signal })).sites[0]
  return {
    status: migrated?.status ?? 'up_to_date',
    applied: migrated?.applied ?? [],
    error: migrated?.error ?? null,
  }
}

/**
 * `tenancy restore <site> <set>`: checks the set whole first (exit 2, the site untouched, for a
 * damaged, wrongly keyed or other-type set), backs the site's current state up (unless
 * `noBackup`), loads the set into a fresh database beside the site's, switches the site to it
 * in one registry statement followed by its config, drops the old database, then migrates the
 * site. A failure before the switch drops the fresh database and leaves the site as it was; a
 * kill at any point is finished by the next restore of the site or by `doctor --fix`.
 */
export async function restoreSite(
  bench: Bench,
  name: string,
  setDir: string,
  options: RestoreOptions = {},
): Promise<RestoreResult> {
  const started = performance.now()
  const site = assertSiteName(name)
  const registry = await bench.registry()
  let record
  try {
    record = await requireSite(bench, site)
  } catch (error) {
    if (isUsageError(error) && !(await registry.getSite(site)))
      throw usageError(
        `site "${site}" does not exist; make it from the backup with "tenancy new-site ${site} --from-backup ${setDir}"`,
      )
    throw error
  }
  if (record.host !== null && !isHomedHere(bench, registry.kind, record))
    throw usageError(
      `site "${site}" lives on ${record.host}, not on this machine (${bench.host}); run "tenancy restore ${site}" ` +
        `there, or, if ${record.host} is gone for good, move the site here with "tenancy restore ${site} ${setDir} --rehome"`,
    )
  assertHomedHere(bench, registry.kind, record, `restore ${site}`)
  const sitePath = bench.sitePath(site)
  options.onPhase?.('verify')
  let config = readSiteConfig(sitePath)
  const { set, renameFrom } = await checkSetFor(bench, site, config.db_type, setDir, options)
  const driver = await getDriver(config.db_type)
  const admin = await adminFor(bench, driver, dbSettingsOf(config))
  // The key for the backup taken first is checked before anything changes, too.
  const box = !options.noBackup && bench.config.backups.encrypt ? await backupKey(bench) : undefined

  const work = async (): Promise<Omit<RestoreResult, 'migrate' | 'duration_ms'>> => {
    const earlier = readRestoreIntent(sitePath)
    if (earlier) {
      if (ownerAlive(earlier.owner) !== false)
        throw usageError(`site "${site}" is being restored by process ${earlier.owner}; wait for it to finish`)
      await finishInterruptedRestore(bench, site, earlier, admin)
      config = readSiteConfig(sitePath)
    }
    let backup: string | null = null
    if (!options.noBackup) {
      options.onPhase?.('backup')
      try {
        backup = (await backupSite(bench, site, { root: backupsRoot(bench, options.backupPath), box })).path
      } catch (error) {
        throw new TenancyError(
          `backing site "${site}" up before restoring failed: ${messageOf(error)}; nothing was changed ` +
            `(use --no-backup to restore without one)`,
          { cause: error },
        )
      }
    }
    options.onPhase?.('load')
    const old = dbSettingsOf(config)
    const fresh = driver.plan(generateDbName(randomBytes(8).toString('hex')), admin, old)
    const intent: RestoreIntent = {
      owner: PROCESS_OWNER,
      from: set.dir,
      started_at: new Date().toISOString(),
      old,
      new: fresh,
    }
    faultPoint('restore-before-intent')
    let taken: boolean
    try {
      taken = createFileOnce(join(sitePath, RESTORE_INTENT), `${JSON.stringify(intent, null, 2)}\n`, 0o600)
    } catch (error) {
      // Its directory went with a drop-site that ran meanwhile.
      if (!existsSync(sitePath))
        throw usageError(`site "${site}" is gone (another process dropped it); nothing was restored`)
      throw error
    }
    if (!taken) throw usageError(`site "${site}" is being restored by another process; wait for it to finish`)
    // A drop-site marks the row `dropping` before it looks for an intent: of the two, one sees the other.
    const row = await registry.getSite(site)
    if (row?.state !== 'ready') {
      removeRestoreIntent(sitePath)
      throw usageError(
        `site "${site}" is ${row ? `in state "${row.state}"` : 'gone'} (another process is dropping it); nothing was restored`,
      )
    }
    // Another restore may have finished between reading the config and taking the intent.
    if (readSiteConfig(sitePath).db_name !== old.db_name) {
      removeRestoreIntent(sitePath)
      throw usageError(
        `site "${site}" was restored by another process meanwhile; run the command again if still wanted`,
      )
    }
    let apps: InstalledAppSummary[]
    try {
      await driver.create(fresh, sitePath, admin)
      faultPoint('restore-after-create')
      apps = await loadBackup(bench, set, driver, fresh, sitePath, { signal: options.signal, force: options.force })
      options.onPhase?.('switch')
      if (!(await registry.switchSiteDatabase(site, old.db_name, fresh, renameFrom ?? undefined)))
        throw new TenancyError(`site "${site}" was changed by another process while it was being restored`)
    } catch (error) {
      // Not switched: the site is still wholly on its old database; the fresh one goes.
      await driver.drop(fresh, sitePath, admin).then(
        () => removeRestoreIntent(sitePath),
        () => {},
      )
      if (options.signal?.aborted || error instanceof InterruptedError)
        throw new InterruptedError(`restore of site "${site}"`, 'the site is unchanged')
      throw new TenancyError(
        `restoring site "${site}" from ${set.dir} failed (the site is unchanged): ${messageOf(error)}`,
        { cause: error, exitCode: isUsageError(error) ? EXIT_USAGE : EXIT_FAILED },
      )
    }
    // Switched: from here on, a crash is finished forward (see finishInterruptedRestore).
    faultPoint('restore-after-switch')
    writeSiteConfig(sitePath, withDatabase(config, fresh))
    faultPoint('restore-before-drop')
    await driver.drop(old, sitePath, admin)
    faultPoint('restore-before-credentials')
    await reapplyCredentials(bench, site)
    removeRestoreIntent(sitePath)
    await registry.setSiteApps(site, apps)
    return {
      site,
      from: set.dir,
      db_name: fresh.db_name,
      previous_db_name: old.db_name,
      backup,
      rename_from: renameFrom,
    }
  }

  return leasedRestore(bench, record, started, options, work)
}
