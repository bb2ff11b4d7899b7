import { mkdtempSync, rmSync, statSync } from 'node:fs'
import { join } from 'node:path'
import type { Bench } from '../bench.js'
import { installedApps } from '../apps/install.js'
import { readLedger } from '../apps/migrations.js'
import { getDriver } from '../databases/index.js'
import type { SiteConnection } from '../databases/driver.js'
import { NODE, codeOf } from '../error-codes.js'
import { TenancyError, messageOf } from '../errors.js'
import { secretBoxFromFile, type SecretBox } from '../secrets/secret-box.js'
import { readSiteConfig, requireSite, type SiteConfig } from '../sites/site.js'
import type { SiteRecord } from '../registry/registry.js'
import { usingTenantLease } from '../registry/leases.js'
import { forEachSite, selectSites, type SiteRunOptions, type SiteSelection } from '../sites/site-selection.js'
import { faultPoint } from '../util/fault.js'
import { BackupSetWriter, MANIFEST, stampOf } from './backup-set.js'
import { pruneBackups } from './list-backups.js'
import { MANIFEST_FORMAT, type ManifestApp } from './manifest.js'

declare const TENANCY_VERSION: string

/** Where and how `tenancy backup` writes: `--encrypt`, `--keep N`, `--backup-path DIR` or their config keys. */
export interface BackupSettings {
  /** Encrypt every file but the manifest; default `backups.encrypt`. */
  encrypt?: boolean
  /** After a successful backup, keep only this many of the site's newest sets; default `backups.keep` (all). */
  keep?: number
  /** Where sets go (relative to the bench); default `backups.path`. */
  backupPath?: string
}

export interface BackupOptions extends SiteSelection, SiteRunOptions, BackupSettings {
  /** Called as each site finishes, for progress display. */
  onSite?: (result: SiteBackupResult, done: number, total: number) => void
}

/** One site's line of `tenancy backup --json`. */
export interface SiteBackupResult {
  site: string
  status: 'backed_up' | 'failed' | 'skipped' | 'interrupted'
  /** The complete set's directory (null unless backed up). */
  path: string | null
  /** Bytes of every file in the set, manifest included. */
  bytes: number
  duration_ms: number
  error: string | null
}

/** `tenancy backup --json` (SPEC §7 and §8). */
export interface BackupResult {
  sites: SiteBackupResult[]
  backed_up: number
  failed: number
  skipped: number
  interrupted: boolean
  duration_ms: number
}

/** One complete backup set just written. */
export interface BackupSet {
  path: string
  bytes: number
  encrypted: boolean
}

/** The directory holding every site's sets: `--backup-path`, else `backups.path`, relative to the bench. */
export function backupsRoot(bench: Bench, backupPath?: string): string {
  return bench.path(backupPath ?? bench.config.backups.path)
}

/**
 * The key backups are encrypted with: `backups.key_file` when set, else the bench's own key,
 * verified against the registry first (a wrong key is exit 2 before anything is written).
 */
export async function backupKey(bench: Bench): Promise<SecretBox> {
  const file = bench.config.backups.key_file
  return file ? secretBoxFromFile(bench.path(file)) : bench.secretBox()
}

/**
 * `tenancy backup`: one set per selected site (see `backupSite`), `concurrency` at a time.
 * Per-site failures are results, not exceptions; without `skipFailing` the first failure
 * stops new sites from starting.
 */
export async function backupSites(bench: Bench, options: BackupOptions = {}): Promise<BackupResult> {
  const started = performance.now()
  const selected = await selectSites(bench, options)
  const sites = selected.map((s) => s.name)
  const pendingTenantOf = await pendingTenants(bench, selected)
  const encrypt = options.encrypt ?? bench.config.backups.encrypt
  const box = encrypt ? await backupKey(bench) : undefined
  const settings = {
    root: backupsRoot(bench, options.backupPath),
    box,
    keep: options.keep ?? bench.config.backups.keep,
  }
  let done = 0
  const { results, interrupted } = await forEachSite<SiteBackupResult>(
    sites,
    options,
    async (site) => {
      const siteStarted = performance.now()
      const elapsed = () => Math.round(performance.now() - siteStarted)
      let result: SiteBackupResult
      try {
        const tenantId = pendingTenantOf.get(site)
        const backup = () => backupSite(bench, site, { ...settings, signal: options.signal })
        const set = tenantId === undefined ? await backup() : await holdingPendingTenant(bench, site, tenantId, backup)
        result = { site, status: 'backed_up', path: set.path, bytes: set.bytes, duration_ms: elapsed(), error: null }
      } catch (error) {
        result = { site, status: 'failed', path: null, bytes: 0, duration_ms: elapsed(), error: messageOf(error) }
      }
      options.onSite?.(result, ++done, sites.length)
      return result
    },
    (site, why) => ({
      site,
      status: why,
      path: null,
      bytes: 0,
      duration_ms: 0,
      error:
        why === 'interrupted'
          ? 'not started: backup was interrupted'
          : 'an earlier site failed, so it was not started (use --skip-failing to try every site)',
    }),
  )
  const count = (status: SiteBackupResult['status']) => results.filter((r) => r.status === status).length
  return {
    sites: results,
    backed_up: count('backed_up'),
    failed: count('failed'),
    skipped: count('skipped'),
    interrupted,
    duration_ms: Math.round(performance.now() - started),
  }
}

/** The selected sites that belong to a pending tenant, with its id. */
export async function pendingTenants(bench: Bench, sites: SiteRecord[]): Promise<Map<string, number>> {
  const owners = await (await bench.registry()).tenantsBySite()
  return new Map(
    sites
      .filter((s) => s.tenant_id !== null && owners.get(s.name)?.pending_since != null)
      .map((s) => [s.name, s.tenant_id!]),
  )
}

/** How long a backup waits for a pending tenant's lease held by a live process (a pull, a migrate). */
const PENDING_LEASE_WAIT_MS = 30_000

/**
 * Runs `backup` holding a pending tenant's lease, so a pull (which renames the site) cannot take
 * the tenant while its site is being read: the pull takes another one, or waits for none. `again`
 * says what to do when the lease stays held (`back it up again later`).
 */
export async function holdingPendingTenant<T>(
  bench: Bench,
  site: string,
  tenantId: number,
  backup: () => Promise<T>,
  again = 'back it up again later',
) {
  const deadline = performance.now() + PENDING_LEASE_WAIT_MS
  const outcome = await usingTenantLease(bench, tenantId, { waitWhile: () => performance.now() < deadline }, backup)
  if (!outcome.taken)
    throw new TenancyError(`site "${site}" is held by ${outcome.heldBy} (a pull or a migrate); ${again}`)
  return outcome.value
}

/** What a backup set's `site_config.json` keeps: everything but how to reach the database (`db_*`). */
function configWithoutDb(config: SiteConfig): Record<string, unknown> {
  return Object.fromEntries(Object.entries(config).filter(([key]) => !key.startsWith('db_')))
}

/**
 * Backs one ready site up into `<root>/<site>/<UTC stamp>/`: the database's consistent
 * snapshot (the driver's `dump`, as the site's own user), `site_config.json` without its
 * `db_*` keys, then `manifest.json`. Everything is written in a temporary directory beside
 * the set and renamed into place only once complete and on disk, so a failure or a kill
 * leaves no listed half set. With `keep`, the site's older sets beyond that many are removed
 * afterwards. Throws on failure (the temporary directory is removed).
 */
export async function backupSite(
  bench: Bench,
  site: string,
  options: { root: string; box?: SecretBox; keep?: number; signal?: AbortSignal },
): Promise<BackupSet> {
  const siteDir = join(options.root, site)
  const set = await backupSiteInto(bench, site, { dir: siteDir, box: options.box, signal: options.signal })
  if (options.keep !== undefined) pruneBackups(siteDir, options.keep)
  return set
}

/**
 * One set of a ready site, written as `backupSite` describes, into `<dir>/<name>/` (`name`
 * defaults to the UTC stamp; a drop's archive names it `backup`). No pruning. Throws on
 * failure, leaving no part of the set.
 */
export async function backupSiteInto(
  bench: Bench,
  site: string,
  options: { dir: string; name?: string; box?: SecretBox; signal?: AbortSignal },
): Promise<BackupSet> {
  const started = performance.now()
  const createdAt = new Date()
  await requireSite(bench, site)
  const sitePath = bench.sitePath(site)
  const config = readSiteConfig(sitePath)
  const driver = await getDriver(config.db_type)
  const apps = await appsOf(await driver.connect(config, sitePath))
  const tenant = (await (await bench.registry()).tenantsBySite()).get(site)?.name ?? null
  const writer = new BackupSetWriter(options.dir, options.box)
  try {
    const workDir = mkdtempSync(join(writer.dir, '.work-'))
    try {
      const { sink, done } = writer.file(driver.dumpFile)
      const dumped = driver.dump(config, sitePath, { sink, workDir, env: bench.env, signal: options.signal })
      // A dump that fails before ending the sink would leave the file's writer waiting.
      dumped.catch((error: unknown) => sink.destroy(error as Error))
      const [dump, write] = await Promise.allSettled([dumped, done])
      // The cause, not its echo: a dump that failed makes the writer see a premature close, and
      // a writer that failed (disk full) makes the dump see a broken pipe.
      if (write.status === 'rejected' && codeOf(write.reason) !== NODE.ERR_STREAM_PREMATURE_CLOSE) throw write.reason
      if (dump.status === 'rejected') throw dump.reason
      if (write.status === 'rejected') throw write.reason
    } finally {
      rmSync(workDir, { recursive: true, force: true })
    }
    faultPoint('backup-after-dump')
    await writer.writeWhole('site_config.json', Buffer.from(`${JSON.stringify(configWithoutDb(config), null, 2)}\n`))
    const path = writer.finish(
      {
        format: MANIFEST_FORMAT,
        tenancy_version: TENANCY_VERSION,
        site,
        tenant,
        db_type: config.db_type,
        created_at: createdAt.toISOString(),
        apps,
        encrypted: writer.encrypted,
        duration_ms: Math.round(performance.now() - started),
      },
      options.name ?? stampOf(createdAt),
    )
    const bytes = writer.files.reduce((n, f) => n + f.bytes, statSync(join(path, MANIFEST)).size)
    return { path, bytes, encrypted: writer.encrypted }
  } catch (error) {
    writer.discard()
    throw error
  }
}

/** The site's installed apps with their applied migrations, read as the site's user; closes `conn`. */
async function appsOf(conn: SiteConnection): Promise<ManifestApp[]> {
  try {
    const [apps, ledger] = await Promise.all([installedApps(conn.db), readLedger(conn.db)])
    return apps.map((a) => ({ name: a.name, version: a.version, migrations: [...(ledger.get(a.name) ?? [])].sort() }))
  } finally {
    await conn.close()
  }
}
