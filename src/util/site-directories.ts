import { existsSync, readdirSync } from 'node:fs'
import { join } from 'node:path'

// The names site.ts and the SQLite driver use, spelled out so the bench (which imports this
// file to guard the registry) does not load the site and driver modules.
const SITE_CONFIG = 'site_config.json'
/** `db.sqlite`, or a restored database's `db_<hex>.sqlite`. */
const SITE_DB_FILE = /^db[A-Za-z0-9_]*\.sqlite$/

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
  if (existsSync(join(path, SITE_CONFIG))) return true
  try {
    return readdirSync(path).some((name) => SITE_DB_FILE.test(name))
  } catch {
    return false
  }
}
