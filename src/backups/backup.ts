import { mkdtempSync, rmSync, statSync } from 'node:fs'
import { join } from 'node:path'
import type { Bench } from '../bench.js'
import { installedApps } from '../apps/install.js'
import { readLedger } from '../apps/migrations.js'
import { getDriver } from '../databases/index.js'
import type { SiteConnection } from '../databases/driver.js'
import { NODE, codeOf } from '../error-codes.js'
import { secretBoxFromFile, type SecretBox } from '../secrets/secret-box.js'
import { readSiteConfig, requireSite, type SiteConfig } from '../sites/site.js'
import { overSites, type FleetOptions } from '../sites/site-selection.js'
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

export interface BackupOptions extends FleetOptions<SiteBackupResult>, BackupSettings {}

/** One site's line of `tenancy backup --json`. */
export interface SiteBackupResult {
  site: string
  status: 'backed_up' | 'failed' | 'skipped' | 'interrupted' | 'unreachable'
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
  /** Sites on a machine with no live worker (SPEC §10): not touched. */
  unreachable: number
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
  const encrypt = options.encrypt ?? bench.config.backups.encrypt
  const box = encrypt ? await backupKey(bench) : undefined
  const settings = {
    root: backupsRoot(bench, options.backupPath),
    box,
    keep: options.keep ?? bench.config.backups.keep,
    signal: options.signal,
  }
  return overSites<SiteBackupResult, 'backed_up' | 'failed' | 'skipped' | 'unreachable'>(
    bench,
    options,
    {
      name: 'backup',
      run: async ({ name: site }) => {
        const started = performance.now()
        const set = await backupSite(bench, site, settings)
        const duration_ms = Math.round(performance.now() - started)
        return { site, status: 'backed_up', path: set.path, bytes: set.bytes, duration_ms, error: null }
      },
      blank: (site, status, error, duration_ms) => ({ site, status, path: null, bytes: 0, duration_ms, error }),
      // The other machine backs up into its own backup path (a --backup-path given here names a path there too).
      remote: {
        command: 'backup',
        payload: {
          encrypt: options.encrypt,
          keep: options.keep,
          backupPath: options.backupPath,
          skipFailing: options.skipFailing,
        },
      },
    },
    ['backed_up', 'failed', 'skipped', 'unreachable'],
  )
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
  const tenant = (await (await bench.registry()).tenantOfSite(site))?.name ?? null
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
