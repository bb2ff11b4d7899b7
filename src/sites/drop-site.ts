import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs'
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
import { readSiteConfig, requireSite } from './site.js'
import { assertHomedHere, assertRealSiteDirectory } from './site-home.js'

export interface DropSiteOptions {
  site: string
  /** Move the directory to `archived/sites/` (default) instead of deleting it. */
  archive?: boolean
  /** Drop even a site that a tenant owns (used by `tenant delete` and `new-site --force`). */
  force?: boolean
  /** The server's admin connection, when the caller resolved it already (before changing anything). */
  admin?: ServerAdmin
}

export interface DropSiteResult {
  site: string
  archived_to: string | null
  database_dropped: boolean
}

/** Moves a directory into `archived/sites/`, under `name` or, when taken, `name-<timestamp>`. Returns where it went. */
export function archiveDirectory(bench: Bench, path: string, name: string): string {
  assertRealSiteDirectory(bench, path)
  mkdirSync(bench.archivePath, { recursive: true })
  let target = join(bench.archivePath, name)
  if (existsSync(target)) target = join(bench.archivePath, `${name}-${new Date().toISOString().replace(/[:.]/g, '-')}`)
  renameSync(path, target)
  return target
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

/**
 * `tenancy drop-site`: marks the row `dropping`, drops the database and its user, moves the
 * directory to `archived/sites/` (or deletes it), then removes the row. Works on half-made
 * sites too; running it again after a crash finishes the job.
 */
export async function dropSite(bench: Bench, options: DropSiteOptions): Promise<DropSiteResult> {
  const name = assertSiteName(options.site)
  const registry = await bench.registry()
  const site = await requireSite(bench, name, { allowAnyState: true })
  if (site.tenant_id !== null && !options.force) {
    // A site whose tenant row is gone (a `tenant delete` that stopped half-way) is anyone's to drop.
    const owner = (await registry.tenantsBySite()).get(name)
    if (owner)
      throw usageError(
        `site "${name}" belongs to tenant "${owner.name}"; remove it with "tenancy tenant delete ${owner.name}"`,
      )
  }
  assertDroppable(bench, registry.kind, site)
  const sitePath = bench.sitePath(name)
  const settings = await dropSettings(bench, site)
  // The admin password is found (or its absence reported) before anything changes.
  const admin = options.admin ?? (await adminForDrop(bench, settings))
  await registry.setSiteState(name, 'dropping')
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
  let archivedTo: string | null = null
  if (existsSync(sitePath)) {
    if (options.archive === false) {
      rmSync(sitePath, { recursive: true, force: true })
    } else {
      archivedTo = archiveDirectory(bench, sitePath, name)
    }
  }
  await registry.deleteSite(name)
  return { site: name, archived_to: archivedTo, database_dropped: databaseDropped }
}
