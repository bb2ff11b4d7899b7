import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import type { Bench } from '../bench.js'
import { getDriver } from '../databases/index.js'
import type { ServerAdmin } from '../databases/server-admin.js'
import { resolveServerAdmin } from './server-admin.js'
import type { SiteDbSettings } from '../databases/driver.js'
import { usageError } from '../errors.js'
import { assertSiteName } from '../names.js'
import type { SiteRecord } from '../registry/registry.js'
import type { RegistryKind } from '../registry/registry-migrations.js'
import { NODE, codeOf } from '../error-codes.js'
import { stampOf } from '../util/stamp.js'
import { moveDirectoryAcross } from '../util/move-directory.js'
import { RESTORE_INTENT, readSiteConfig, requireSite } from './site.js'
import { faultPoint } from '../util/fault.js'
import { ownerAlive } from '../util/process-owner.js'
import { followDefaultSite } from './current-site.js'
import { assertHomedHere, assertRealSiteDirectory } from './site-home.js'

export interface DropSiteOptions {
  site: string
  /** Move the directory into an archive under `archived/sites/` (default) instead of deleting it. */
  archive?: boolean
  /**
   * The archive directory the caller prepared (`makeArchiveDir`), already holding the site's
   * backup: the directory goes into it. Without it, a fresh one is made.
   */
  archiveTo?: string
  /** Drop even a site that a tenant owns (used by `tenant delete` and `new-site --force`). */
  force?: boolean
  /** The server's admin connection, when the caller resolved it already (before changing anything). */
  admin?: ServerAdmin
}

export interface DropSiteResult {
  site: string
  /** The archive directory (`archived/sites/<site>-<stamp>/`), or null when nothing was archived. */
  archived_to: string | null
  database_dropped: boolean
}

/** The name, inside an archive directory, of the site directory moved there. */
export const ARCHIVED_SITE = 'site'

/**
 * A new, empty archive directory `archived/sites/<name>-<UTC stamp>/` (one taken already, by
 * another archive of the same millisecond, gets a suffix). A drop puts the site directory in it
 * as `site/` and, when it took one, its backup as `backup/`.
 */
export function makeArchiveDir(bench: Bench, name: string): string {
  mkdirSync(bench.archivePath, { recursive: true })
  const stamp = `${name}-${stampOf(new Date())}`
  for (let n = 0; ; n++) {
    const dir = join(bench.archivePath, n === 0 ? stamp : `${stamp}-${n}`)
    try {
      mkdirSync(dir, { mode: 0o700 })
      return dir
    } catch (error) {
      if (codeOf(error) !== NODE.EEXIST || n > 100) throw error
    }
  }
}

/**
 * The archive a drop of `name` prepared and a crash left before the site's directory reached
 * it: the newest `archived/sites/<name>-<stamp>/` that holds something (the backup taken
 * first) but no `site/`. Finishing that drop moves the directory there, beside its backup.
 */
export function preparedArchive(bench: Bench, name: string): string | undefined {
  const own = new RegExp(`^${name.replace(/[.]/g, '\\.')}-\\d{8}T\\d{9}Z(-\\d+)?$`)
  let entries: string[]
  try {
    entries = readdirSync(bench.archivePath)
  } catch {
    return undefined
  }
  const waiting = entries.filter((entry) => {
    if (!own.test(entry)) return false
    const dir = join(bench.archivePath, entry)
    try {
      // (A backup's half-written set is a dot-entry: doctor removes it.)
      return !existsSync(join(dir, ARCHIVED_SITE)) && readdirSync(dir).some((e) => !e.startsWith('.'))
    } catch {
      return false
    }
  })
  // The stamps sort as text (`-n` suffixes after their stamp).
  const newest = waiting.sort().at(-1)
  return newest === undefined ? undefined : join(bench.archivePath, newest)
}

/**
 * Moves a directory into an archive directory as `site/`: into `archiveTo` when given, else into
 * a new one for `name` (`makeArchiveDir`). Returns the archive directory.
 */
export function archiveDirectory(bench: Bench, path: string, name: string, archiveTo?: string): string {
  assertRealSiteDirectory(bench, path)
  const dir = archiveTo ?? makeArchiveDir(bench, name)
  moveDirectoryAcross(path, join(dir, ARCHIVED_SITE))
  return dir
}

/** What the registry records of a site's database, and so what a drop may touch. */
const RECORDED_KEYS = ['db_type', 'db_name', 'db_user', 'db_host', 'db_port'] as const

const shown = (value: unknown) => (value === null ? '(none)' : `"${String(value)}"`)

/**
 * How to reach a site's database for dropping it: what its registry row recorded (the
 * record of what tenancy created), never what `site_config.json` says now. A config that
 * disagrees with the row is refused (exit 2) before anything changes, and so is a row whose
 * database or user another site's row names: a drop removes this site's data and no other.
 */
async function dropSettings(bench: Bench, site: SiteRecord): Promise<SiteDbSettings> {
  const recorded = {
    db_type: site.db_type,
    db_name: site.db_name,
    db_host: site.db_host ?? undefined,
    db_port: site.db_port ?? undefined,
    db_user: site.db_user ?? undefined,
  }
  const sitePath = bench.sitePath(site.name)
  let config: SiteDbSettings | undefined
  if (existsSync(join(sitePath, 'site_config.json'))) {
    config = readSiteConfig(sitePath)
    for (const key of RECORDED_KEYS) {
      const have = config[key] ?? null
      const want = site[key] ?? null
      if (String(have) === String(want)) continue
      throw usageError(
        `${join(sitePath, 'site_config.json')} says ${key} ${shown(have)}, ` +
          `but the registry recorded ${shown(want)} for site "${site.name}"; nothing was changed. ` +
          `Restore ${key} to ${shown(want)} in that file and run the command again ` +
          `(tenancy drops only the database it recorded for the site; one moved by hand is yours to drop by hand)`,
      )
    }
  }
  if ((await getDriver(site.db_type)).server) {
    // A SQLite database is a file inside the site's own directory; a server's is shared ground.
    const userOf = (s: SiteRecord) => s.db_user ?? s.db_name
    const other = (await (await bench.registry()).listSites()).find(
      (s) =>
        s.name !== site.name &&
        s.db_type === site.db_type &&
        (s.db_host ?? null) === (site.db_host ?? null) &&
        (s.db_port ?? null) === (site.db_port ?? null) &&
        (s.db_name === site.db_name || userOf(s) === userOf(site)),
    )
    if (other) {
      throw usageError(
        `site "${site.name}" and site "${other.name}" are both recorded with database ` +
          `${shown(site.db_name === other.db_name ? site.db_name : userOf(site))} on the same server; ` +
          `nothing was dropped. Run "tenancy doctor" and repair the registry row of the one that is wrong ` +
          `before dropping either`,
      )
    }
  }
  // The config adds only what stays inside this site: the SQLite file's name in its
  // directory, the MariaDB user's host part, the password and socket.
  return { ...config, ...recorded }
}

async function adminForDrop(bench: Bench, settings: SiteDbSettings): Promise<ServerAdmin | undefined> {
  return resolveServerAdmin(bench, await getDriver(settings.db_type), {
    dbHost: settings.db_host,
    dbPort: settings.db_port,
    fileFlag: false,
  })
}

/**
 * The admin connection needed to drop `site` (undefined for SQLite), resolved up front by
 * callers that change the registry before dropping, so a missing password changes nothing.
 */
export async function adminToDropSite(
  bench: Bench,
  name: string,
  command = `drop-site ${name}`,
): Promise<ServerAdmin | undefined> {
  const registry = await bench.registry()
  const site = await registry.getSite(name)
  if (!site) return undefined
  assertDroppable(bench, registry.kind, site, command)
  return adminForDrop(bench, await dropSettings(bench, site))
}

/** Before anything changes: the site lives here, and its directory is a real one (not a link to elsewhere). */
function assertDroppable(bench: Bench, kind: RegistryKind, site: SiteRecord, command = `drop-site ${site.name}`): void {
  assertHomedHere(bench, kind, site, command)
  assertRealSiteDirectory(bench, bench.sitePath(site.name))
}

/** What `planDrop` checked: the site's row, how to reach its database, and the admin connection a server drop needs. */
export interface DropPlan {
  site: SiteRecord
  settings: SiteDbSettings
  admin: ServerAdmin | undefined
}

/**
 * Every check `dropSite` makes before it changes anything: the site exists, no tenant owns it
 * (unless `force`), it lives on this machine in a directory of its own, its config agrees with
 * its row, and the server's admin password is found. Throws (exit 2) otherwise. A caller that
 * does something between the checks and the drop (a backup) calls this first and hands the
 * plan's `admin` to `dropSite`.
 */
export async function planDrop(bench: Bench, options: DropSiteOptions): Promise<DropPlan> {
  const name = assertSiteName(options.site)
  const registry = await bench.registry()
  const site = await requireSite(bench, name, { allowAnyState: true })
  // Its directory and backups may be under either name: the rename finishes first.
  if (site.state === 'renaming')
    throw usageError(
      `site "${name}" is being renamed from "${site.rename_from}"; wait for it to finish ` +
        `(or, if that command was stopped, run "tenancy doctor --fix"), then drop it`,
    )
  if (site.tenant_id !== null && !options.force) {
    // A site whose tenant row is gone (a `tenant delete` that stopped half-way) is anyone's to drop.
    const owner = await registry.tenantOfSite(name)
    if (owner)
      throw usageError(
        `site "${name}" belongs to tenant "${owner.name}"; remove it with "tenancy tenant delete ${owner.name}"`,
      )
  }
  assertDroppable(bench, registry.kind, site)
  const settings = await dropSettings(bench, site)
  // The admin password is found (or its absence reported) before anything changes.
  return { site, settings, admin: options.admin ?? (await adminForDrop(bench, settings)) }
}

/** The live process whose restore intent is in `sitePath` (see backups/restore.ts), if one is. */
function liveRestorer(sitePath: string): string | undefined {
  let owner: unknown
  try {
    owner = (JSON.parse(readFileSync(join(sitePath, RESTORE_INTENT), 'utf8')) as { owner?: unknown }).owner
  } catch {
    return undefined
  }
  return typeof owner === 'string' && ownerAlive(owner) !== false ? owner : undefined
}

/**
 * `tenancy drop-site` without its backup (`backupAndDropSite` takes one first): after
 * `planDrop`'s checks, marks the row `dropping`, drops the database and its user, moves the
 * directory into an archive under `archived/sites/` (or deletes it), then removes the row.
 * Works on half-made sites too; running it again after a crash finishes the job.
 */
export async function dropSite(bench: Bench, options: DropSiteOptions): Promise<DropSiteResult> {
  const { site, settings, admin } = await planDrop(bench, options)
  const name = site.name
  const registry = await bench.registry()
  const sitePath = bench.sitePath(name)
  await registry.setSiteState(name, 'dropping')
  faultPoint('drop-after-mark')
  // A live process restoring the site goes first. Each side marks itself (this row `dropping`,
  // a restore its intent file), then looks for the other: of two at once, one sees the other.
  const restoring = liveRestorer(sitePath)
  if (restoring) {
    await registry.setSiteState(name, site.state)
    throw usageError(`site "${name}" is being restored by ${restoring}; wait for it to finish, then drop it`)
  }
  let databaseDropped = false
  const driver = await getDriver(settings.db_type)
  if (driver.server) {
    // A server database is dropped with its user even when half-made (the site's own login
    // may not work yet), so always through the admin connection.
    await driver.drop(settings, sitePath, admin)
    databaseDropped = true
  } else if (await driver.exists(settings, sitePath)) {
    await driver.drop(settings, sitePath)
    databaseDropped = true
  }
  // An archive prepared by the caller holds the site's backup, even if the directory is gone.
  let archivedTo = options.archive === false ? null : (options.archiveTo ?? null)
  if (existsSync(sitePath)) {
    if (options.archive === false) {
      rmSync(sitePath, { recursive: true, force: true })
    } else {
      archivedTo = archiveDirectory(bench, sitePath, name, options.archiveTo)
    }
  }
  await registry.deleteSite(name)
  followDefaultSite(bench, name, null)
  return { site: name, archived_to: archivedTo, database_dropped: databaseDropped }
}
