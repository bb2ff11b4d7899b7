import { existsSync, lstatSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { installedApps } from '../../apps/install.js'
import type { SiteConnection } from '../../databases/driver.js'
import { getDriver } from '../../databases/index.js'
import { messageOf } from '../../errors.js'
import { assertSiteName } from '../../names.js'
import type { InstalledAppSummary } from '../../registry/registry.js'
import { archiveDirectory } from '../../sites/drop-site.js'
import { readSiteConfig, type SiteConfig } from '../../sites/site.js'
import { looksLikeSite } from '../../util/site-directories.js'
import type { Diagnosis } from '../finding.js'
import type { DoctorInputs } from '../inputs.js'

/**
 * A directory with no config and no database is judged a stray only when older than this: a new site
 * may be on its way in.
 */
const STRAY_MIN_AGE_MS = 60_000

/**
 * What it takes to register an unregistered site directory: its config readable and its
 * database reachable with the site's own credentials, whose core tables say which apps
 * are installed. Otherwise the reason it cannot be adopted (and so must not be moved either).
 */
async function inspectSite(
  name: string,
  path: string,
): Promise<{ config: SiteConfig; apps: InstalledAppSummary[] } | { reason: string }> {
  if (lstatSync(path).isSymbolicLink()) return { reason: 'it is a symbolic link, not a site directory' }
  try {
    assertSiteName(name)
  } catch {
    return { reason: `"${name}" is not a valid site name` }
  }
  let config: SiteConfig
  try {
    config = readSiteConfig(path)
  } catch (error) {
    return { reason: messageOf(error) }
  }
  let conn: SiteConnection | undefined
  try {
    const driver = await getDriver(config.db_type)
    if (!(await driver.exists(config, path)))
      return {
        reason:
          `its ${config.db_type} database "${config.db_name}" is missing ` +
          `or cannot be reached with the site's credentials`,
      }
    conn = await driver.connect(config, path)
    return { config, apps: await installedApps(conn.db) }
  } catch (error) {
    return { reason: `its database cannot be read: ${messageOf(error)}` }
  } finally {
    await conn?.close().catch(() => {})
  }
}

/**
 * Directories in `sites_path` that nobody registered: a site directory is adopted
 * (`unregistered_site`, with `--fix` or `--adopt`) or, when it cannot be read, left alone
 * (`unreadable_site`); a directory that is no site at all is moved to `archived/sites/`
 * (`stray_directory`). Ones too young to judge go to `tooYoung`.
 */
export async function* checkSiteDirectories(
  inputs: DoctorInputs,
  tooYoung: { directory: string; age_s: number }[],
): AsyncGenerator<Diagnosis> {
  const { bench, known, pulling } = inputs
  if (!existsSync(bench.sitesPath)) return
  for (const entry of readdirSync(bench.sitesPath)) {
    const path = join(bench.sitesPath, entry)
    if (known.has(entry) || entry.startsWith('.') || pulling.has(entry)) continue
    const stat = lstatSync(path)
    if (!stat.isDirectory() && !stat.isSymbolicLink()) continue
    const diagnosis =
      looksLikeSite(path) || stat.isSymbolicLink()
        ? await unregisteredSite(inputs, entry, path)
        : await strayDirectory(inputs, entry, path, stat.mtimeMs, tooYoung)
    if (diagnosis) yield diagnosis
  }
}

/** A site directory without a row: adopted when it can be read, else left alone. */
async function unregisteredSite(inputs: DoctorInputs, entry: string, path: string): Promise<Diagnosis | undefined> {
  const { bench, registry, known, tenants } = inputs
  const found = await inspectSite(entry, path)
  // Rows come before directories (intent first), and a pull renames its row before its
  // directory: a row found now means the directory is someone's site after all.
  if (await registry.getSite(entry)) return undefined
  if ('reason' in found) {
    const refused =
      inputs.fix || inputs.adopt
        ? { fixed: false, fix_error: 'refused: it may hold data, so it is neither adopted nor moved' }
        : {}
    return {
      finding: {
        kind: 'unreadable_site',
        subject: entry,
        problem: `directory ${path} has no registry row and cannot be adopted: ${found.reason}`,
        fix: 'nothing: repair its site_config.json or database, then run "tenancy doctor --adopt"',
        ...refused,
      },
    }
  }
  const owner = tenants.find((t) => t.site === entry)
  return {
    finding: {
      kind: 'unregistered_site',
      subject: entry,
      problem: `site ${path} has no registry row`,
      fix: `adopt it (register it as a site${owner ? ` of tenant "${owner.name}"` : ' with no tenant'})`,
    },
    repair: async () => {
      const { config, apps } = found
      const row = {
        name: entry,
        db_type: config.db_type,
        db_name: config.db_name,
        db_host: config.db_host ?? null,
        db_port: config.db_port ?? null,
        db_user: config.db_user ?? null,
      }
      if (
        !(await registry.insertSiteIntent({
          ...row,
          tenant_id: owner?.id ?? null,
          host: bench.host,
          state: 'ready',
          apps,
        }))
      ) {
        throw new Error('another process registered it meanwhile')
      }
      known.add(entry)
    },
    adopt: true,
  }
}

/** A directory with no config and no database: not a site. A young one may be a site on its way in. */
async function strayDirectory(
  inputs: DoctorInputs,
  entry: string,
  path: string,
  mtimeMs: number,
  tooYoung: { directory: string; age_s: number }[],
): Promise<Diagnosis | undefined> {
  const { bench, registry } = inputs
  const age = Date.now() - mtimeMs
  if (age < STRAY_MIN_AGE_MS) {
    tooYoung.push({ directory: path, age_s: Math.round(age / 1000) })
    return undefined
  }
  if (await registry.getSite(entry)) return undefined
  return {
    finding: {
      kind: 'stray_directory',
      subject: entry,
      problem: `directory ${path} has no registry row`,
      fix: 'move it to archived/sites/',
    },
    repair: async () => archiveDirectory(bench, path, `${entry}-stray`),
  }
}
