import { readdirSync, rmSync, statSync } from 'node:fs'
import { join } from 'node:path'
import type { Bench } from '../bench.js'
import { NODE, codeOf } from '../error-codes.js'
import { assertSiteName } from '../names.js'
import { readJsonFile } from '../util/json-file.js'
import { MANIFEST } from './backup-set.js'
import { isManifest, type BackupManifest } from './manifest.js'
import { arrayListing, collect, type Listing, type PageOptions } from '../util/listing.js'

/** One complete backup set, as `tenancy list-backups` shows it. */
export interface BackupListing {
  site: string
  created_at: string
  path: string
  /** Bytes of the set's files (the manifest's list). */
  bytes: number
  encrypted: boolean
  db_type: string
  tenant: string | null
  apps: { name: string; version: string }[]
}

/** The directory names in `dir` (none when it does not exist), temporary ones left out. */
function entries(dir: string): string[] {
  try {
    // Most sites have none: asked without the ENOENT a read would throw (~10 µs a call).
    if (!statSync(dir, { throwIfNoEntry: false })) return []
    return readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
      .map((e) => e.name)
  } catch (error) {
    if (codeOf(error) === NODE.ENOENT) return []
    throw error
  }
}

/** The complete sets in one site's backup directory, oldest first. A directory without a valid manifest is not a set. */
export function completeSets(siteDir: string): { path: string; manifest: BackupManifest }[] {
  const sets: { path: string; manifest: BackupManifest }[] = []
  for (const name of entries(siteDir)) {
    const path = join(siteDir, name)
    let manifest: unknown
    try {
      manifest = readJsonFile(join(path, MANIFEST))
    } catch {
      continue
    }
    if (isManifest(manifest)) sets.push({ path, manifest })
  }
  return sets.sort((a, b) => a.manifest.created_at.localeCompare(b.manifest.created_at) || a.path.localeCompare(b.path))
}

export interface ListBackupsOptions extends PageOptions {
  /** Only this site's sets. */
  site?: string
  /** Where the sets are (default: the bench's `backups.path`). */
  root?: string
}

/**
 * `tenancy list-backups [--site S]`: how many complete sets there are under `root` (default:
 * the bench's `backups.path`), and one page of them (`limit`, `offset`), by site then time.
 * Every manifest is read to sort them; only the page's sets are sized. Sets being written
 * (`.tmp-…`) are never listed; a site that no longer exists still shows its sets.
 */
export function backupListing(bench: Bench, options: ListBackupsOptions = {}): Listing<BackupListing> {
  const root = options.root ?? bench.path(bench.config.backups.path)
  const sites = options.site ? [assertSiteName(options.site)] : entries(root).sort()
  const sets = sites.flatMap((site) => completeSets(join(root, site)))
  return arrayListing(sets, options, ({ path, manifest }) => ({
    site: manifest.site,
    created_at: manifest.created_at,
    path,
    // As `backup` reports it: the files and the manifest.
    bytes: manifest.files.reduce((n, f) => n + f.bytes, statSync(join(path, MANIFEST)).size),
    encrypted: manifest.encrypted,
    db_type: manifest.db_type,
    tenant: manifest.tenant,
    apps: manifest.apps.map((a) => ({ name: a.name, version: a.version })),
  }))
}

/** `tenancy list-backups` as an array: the page `backupListing` reads (every set without `limit`). */
export async function listBackups(bench: Bench, options: ListBackupsOptions = {}): Promise<BackupListing[]> {
  return collect(backupListing(bench, options).rows)
}

/** Removes a site's oldest complete sets beyond the newest `keep` (`--keep N`); returns the removed paths. */
export function pruneBackups(siteDir: string, keep: number): string[] {
  const sets = completeSets(siteDir)
  const old = sets.slice(0, Math.max(0, sets.length - keep)).map((s) => s.path)
  // The manifest goes first: a kill mid-removal leaves a directory that is no longer listed.
  for (const path of old) {
    rmSync(join(path, MANIFEST), { force: true })
    rmSync(path, { recursive: true, force: true })
  }
  return old
}
