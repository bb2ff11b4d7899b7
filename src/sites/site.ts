import { existsSync } from 'node:fs'
import { join } from 'node:path'
import type { Bench } from '../bench.js'
import { DB_TYPES, DB_TYPES_TEXT } from '../config/config.js'
import { getDriver } from '../databases/index.js'
import type { SiteConnection, SiteDbSettings } from '../databases/driver.js'
import { TenancyError, usageError } from '../errors.js'
import { assertSiteName } from '../names.js'
import type { SiteRecord } from '../registry/registry.js'
import { readJsonFile, writeJsonAtomic } from '../util/json-file.js'
import { closest } from '../util/suggest.js'

export const SITE_CONFIG = 'site_config.json'

/**
 * The file in a site's directory that records a restore under way (`backups/restore.ts`):
 * while it is there, migrate leaves the site to the restore, which migrates it itself.
 */
export const RESTORE_INTENT = '.restore.json'

/** A site's `site_config.json`: the `db_*` keys plus anything `set-config` wrote. */
export type SiteConfig = SiteDbSettings & Record<string, unknown>

export function siteConfigPath(sitePath: string): string {
  return join(sitePath, SITE_CONFIG)
}

/** Reads and checks `site_config.json` in a site directory. */
export function readSiteConfig(sitePath: string): SiteConfig {
  const file = siteConfigPath(sitePath)
  // One read, no stat first: a fleet command reads a thousand of these.
  const config = readJsonFile(file, { optional: true }) as Record<string, unknown> | undefined
  if (config === undefined) throw new TenancyError(`${file} is missing; run "tenancy doctor" to repair the site`)
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw usageError(`${file} must hold a JSON object`)
  }
  if (!DB_TYPES.includes(config.db_type as never) || typeof config.db_name !== 'string') {
    throw usageError(
      `${file} must name "db_type" (${DB_TYPES_TEXT}) and "db_name"; restore them or drop and recreate the site`,
    )
  }
  return config as SiteConfig
}

/**
 * Whether a site is in maintenance mode: `maintenance_mode` set to anything but off (`0`,
 * `false`, empty), as Frappe reads it. `tenant suspend` sets it to 1.
 */
export function inMaintenance(config: Record<string, unknown>): boolean {
  const value = config.maintenance_mode
  return value !== undefined && value !== null && value !== false && value !== 0 && value !== '' && value !== '0'
}

/** Writes `site_config.json` atomically with mode 0600 (it may hold a database password). */
export function writeSiteConfig(sitePath: string, config: SiteConfig): void {
  writeJsonAtomic(siteConfigPath(sitePath), config, 0o600)
}

/**
 * The registry row of an existing, ready site, or a usage error that says what to run.
 * `allowStates` lets drop-site and doctor reach half-made sites.
 */
export async function requireSite(
  bench: Bench,
  name: string,
  options: { allowAnyState?: boolean } = {},
): Promise<SiteRecord> {
  if (typeof name === 'string' && name !== name.toLowerCase() && !/[/\\\0]/.test(name)) {
    const lower = name.toLowerCase()
    let lowerIsValid = true
    try {
      assertSiteName(lower)
    } catch {
      lowerIsValid = false
    }
    // Otherwise the name is wrong in more ways than case: assertSiteName below says how.
    if (lowerIsValid)
      throw usageError(`invalid site name "${name}": site names are lower case; did you mean "${lower}"?`)
  }
  assertSiteName(name)
  const registry = await bench.registry()
  const site = await registry.getSite(name)
  if (!site) {
    if (existsSync(bench.sitePath(name))) {
      throw usageError(`site "${name}" has a directory but no registry row; run "tenancy doctor" to adopt or remove it`)
    }
    const suggestion = closest(
      name,
      (await registry.listSites()).map((s) => s.name),
    )
    throw usageError(
      `site "${name}" does not exist; ${suggestion ? `did you mean "${suggestion}"? ` : ''}run "tenancy list-sites"`,
    )
  }
  if (!options.allowAnyState && site.state !== 'ready') {
    const why =
      site.state === 'creating'
        ? `is still being created (or its creation was interrupted); ` +
          `wait, or remove it with "tenancy drop-site ${name}"`
        : site.state === 'failed'
          ? `failed to be created and was kept for debugging; remove it with "tenancy drop-site ${name}"`
          : site.state === 'renaming'
            ? `is being renamed from "${site.rename_from}"; wait for it to finish ` +
              `(or, if that command was stopped, run "tenancy doctor --fix")`
            : `is being dropped; run "tenancy drop-site ${name}" again to finish`
    throw new TenancyError(`site "${name}" ${why}`)
  }
  return site
}

/** An open site: its record, directory, config and a connection as the site's own user. */
export interface OpenSite {
  name: string
  path: string
  config: SiteConfig
  conn: SiteConnection
}

/** Connects to a site's database as the site's user, runs `fn`, and always closes. */
export async function usingSite<T>(bench: Bench, name: string, fn: (site: OpenSite) => Promise<T>): Promise<T> {
  await requireSite(bench, name)
  return usingSiteDatabase(bench, name, fn)
}

/**
 * `usingSite` for a caller that holds the site's registry row already (a rename, which works on a
 * site in state `renaming`): reads nothing from the registry.
 */
export async function usingSiteDatabase<T>(bench: Bench, name: string, fn: (site: OpenSite) => Promise<T>): Promise<T> {
  const path = bench.sitePath(name)
  const config = readSiteConfig(path)
  const driver = await getDriver(config.db_type)
  const conn = await driver.connect(config, path)
  try {
    return await fn({ name, path, config, conn })
  } finally {
    await conn.close()
  }
}
