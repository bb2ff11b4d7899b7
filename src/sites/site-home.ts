import { existsSync, lstatSync, readdirSync, realpathSync } from 'node:fs'
import { dirname, join } from 'node:path'
import type { Bench } from '../bench.js'
import { usageError } from '../errors.js'
import type { RegistryKind } from '../registry/registry-migrations.js'
import type { SitesTable } from '../registry/schema.js'

// The names site.ts and the SQLite driver use, spelled out so the bench (which imports this
// file to guard the registry) does not load the site and driver modules.
const SITE_CONFIG = 'site_config.json'
const SITE_DB_FILE = 'db.sqlite'

/**
 * Names of the directories in `sitesPath` that hold a site (a `site_config.json` or an
 * SQLite database): what a lost registry must be rebuilt from, never archived.
 */
export function siteDirectories(sitesPath: string): string[] {
  if (!existsSync(sitesPath)) return []
  return readdirSync(sitesPath, { withFileTypes: true })
    .filter((entry) => !entry.name.startsWith('.') && (entry.isDirectory() || entry.isSymbolicLink()))
    .filter((entry) => looksLikeSite(join(sitesPath, entry.name)))
    .map((entry) => entry.name)
}

/** Whether a directory holds a site's config or database (and so may hold data). */
export function looksLikeSite(path: string): boolean {
  return existsSync(join(path, SITE_CONFIG)) || existsSync(join(path, SITE_DB_FILE))
}

/**
 * Whether a site lives on this machine (SPEC §10). A row from before homes were recorded
 * (no `host`) counts as here on an SQLite registry (one machine), and on a shared registry
 * only when its directory is here.
 */
export function isHomedHere(bench: Bench, kind: RegistryKind, site: Pick<SitesTable, 'name' | 'host'>): boolean {
  if (site.host !== null) return site.host === bench.host
  return kind === 'sqlite' || existsSync(bench.sitePath(site.name))
}

/** Where a site lives, for messages: its host, or "another machine" for an old row. */
export function homeName(site: Pick<SitesTable, 'host'>): string {
  return site.host ?? 'another machine'
}

/**
 * Refuses (exit 2) to act on a site that lives on another machine: with a shared registry
 * this one cannot see its files or database, so it must never repair, drop or re-provision it.
 */
export function assertHomedHere(bench: Bench, kind: RegistryKind, site: Pick<SitesTable, 'name' | 'host'>, command: string): void {
  if (isHomedHere(bench, kind, site)) return
  throw usageError(`site "${site.name}" lives on ${homeName(site)}, not on this machine (${bench.host}); run "tenancy ${command}" there`)
}

/**
 * Refuses (exit 2) to remove or move `path` unless it is a real directory right inside the
 * bench's sites directory: a symbolic link there would make a drop delete what it points to.
 * A path that does not exist passes (there is nothing to remove).
 */
export function assertRealSiteDirectory(bench: Bench, path: string): void {
  let stat
  try {
    stat = lstatSync(path)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return
    throw error
  }
  if (stat.isSymbolicLink()) {
    throw usageError(`${path} is a symbolic link, not a site directory; tenancy will not remove or move what it points to: replace the link with the site's own directory, or remove the link yourself`)
  }
  if (!stat.isDirectory()) throw usageError(`${path} is not a directory; move it out of ${bench.sitesPath} yourself`)
  const real = realpathSync(path)
  if (dirname(real) !== realpathSync(bench.sitesPath)) {
    throw usageError(`${path} resolves to ${real}, outside ${bench.sitesPath}; tenancy will not remove or move it`)
  }
}
