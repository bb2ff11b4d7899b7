import { rmSync } from 'node:fs'
import type { Bench } from '../bench.js'
import { EXIT_FAILED, EXIT_USAGE, InterruptedError, TenancyError, isUsageError, messageOf } from '../errors.js'
import type { SiteRecord } from '../registry/registry.js'
import { dropSite, makeArchiveDir, planDrop, type DropSiteOptions, type DropSiteResult } from '../sites/drop-site.js'
import { backupKey, backupSite, backupSiteInto, backupsRoot } from './backup.js'

/** The name of the backup set inside a drop's archive directory (`archived/sites/<site>-<stamp>/backup/`). */
export const ARCHIVED_BACKUP = 'backup'

export interface BackupBeforeDropOptions {
  /** Whether the site's directory will be archived (the backup goes into its archive) or deleted (into `backups.path`). */
  archive: boolean
  /** false (`--no-backup`): take none. */
  backup: boolean
  /** What the drop does to the site, for the failure's hint: `drop` (default) or `replace`. */
  verb?: 'drop' | 'replace'
  signal?: AbortSignal
}

/** The backup taken before a drop. */
export interface DropBackup {
  /** The archive directory holding it, for `dropSite`'s `archiveTo` (undefined: none was prepared). */
  archiveTo: string | undefined
  /** The backup set's directory, or null when none was taken. */
  backup: string | null
}

/**
 * Backs a site up before it is dropped (SPEC §6, §7): into a new archive directory
 * `archived/sites/<site>-<stamp>/backup/`, where the drop then moves the site's directory as
 * `site/`, or with `archive: false` into `<backups.path>/<site>/<stamp>/` like any backup
 * (never pruned by `backups.keep`). Encrypted per `backups.encrypt`. Only a `ready` site is
 * backed up: a half-made one holds no data. Call it after every check and before anything
 * changes; a failure removes what it made and throws, with the cause, that nothing was changed.
 */
export async function backupBeforeDrop(
  bench: Bench,
  site: SiteRecord,
  options: BackupBeforeDropOptions,
): Promise<DropBackup> {
  if (!options.backup || site.state !== 'ready') return { archiveTo: undefined, backup: null }
  let archiveTo: string | undefined
  try {
    const box = bench.config.backups.encrypt ? await backupKey(bench) : undefined
    const settings = { box, signal: options.signal }
    if (!options.archive) {
      const set = await backupSite(bench, site.name, { root: backupsRoot(bench), ...settings })
      return { archiveTo: undefined, backup: set.path }
    }
    archiveTo = makeArchiveDir(bench, site.name)
    const set = await backupSiteInto(bench, site.name, { dir: archiveTo, name: ARCHIVED_BACKUP, ...settings })
    return { archiveTo, backup: set.path }
  } catch (error) {
    // Only this call's own, still empty, archive directory: the set's writer removed its part.
    if (archiveTo) rmSync(archiveTo, { recursive: true, force: true })
    const what = `backup of site "${site.name}"`
    if (options.signal?.aborted || error instanceof InterruptedError)
      throw new InterruptedError(what, 'nothing was changed')
    throw new TenancyError(
      `${what} failed: ${messageOf(error)}; nothing was changed ` +
        `(use --no-backup to ${options.verb ?? 'drop'} it without one)`,
      // A wrong key or a bad backups.* setting stays a configuration error.
      { exitCode: isUsageError(error) ? EXIT_USAGE : EXIT_FAILED, cause: error },
    )
  }
}

export interface BackupAndDropOptions extends DropSiteOptions, Omit<BackupBeforeDropOptions, 'archive' | 'backup'> {
  /** false (`--no-backup`): drop without a backup. */
  backup?: boolean
}

export interface BackupAndDropResult extends DropSiteResult {
  /** The backup set taken first, or null (`--no-backup`, or a half-made site). */
  backup: string | null
}

/**
 * `tenancy drop-site` (and `new-site --force`'s replacing): `dropSite`'s checks, then a backup
 * (`backupBeforeDrop`), then the drop. A backup that fails stops it with nothing changed.
 *
 * @example
 * const { archived_to, backup } = await backupAndDropSite(bench, { site: 'acme.localhost' })
 * // archived_to: archived/sites/acme.localhost-20260131T120000123Z, backup: …/backup
 */
export async function backupAndDropSite(bench: Bench, options: BackupAndDropOptions): Promise<BackupAndDropResult> {
  const plan = await planDrop(bench, options)
  const taken = await backupBeforeDrop(bench, plan.site, {
    archive: options.archive !== false,
    backup: options.backup !== false,
    verb: options.verb,
    signal: options.signal,
  })
  const dropped = await dropSite(bench, { ...options, admin: plan.admin, archiveTo: taken.archiveTo })
  return { ...dropped, backup: taken.backup }
}
