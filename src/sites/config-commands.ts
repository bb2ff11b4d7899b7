import type { Bench } from '../bench.js'
import { DEFAULT_STEPS, getConfigPath, maskSecrets, setConfigPath } from '../config/config.js'
import { getDriver } from '../databases/index.js'
import { usageError } from '../errors.js'
import { assertConfigKey } from '../names.js'
import { parseJson } from '../util/json-file.js'
import { withFileLock } from '../util/file-lock.js'
import { readSiteConfig, requireSite, siteConfigPath, writeSiteConfig } from './site.js'

/**
 * The value `set-config` stores: as bench does, only `"1"`/`"0"` become numbers and
 * `"true"`/`"false"` booleans (`"42"` stays a string, as Frappe's own tests expect); with
 * `parse`, the text is read as JSON, the way to store any other number.
 */
export function coerceConfigValue(text: string, parse: boolean): unknown {
  if (parse) return parseJson(text, 'the value given to --parse', 'fix the value')
  if (text === 'true') return true
  if (text === 'false') return false
  if (text === '1') return 1
  if (text === '0') return 0
  return text
}

/** Keys tenancy writes itself: changing one (or anything below one) would disconnect the site from its database. */
const DB_KEYS = new Set(['db_type', 'db_name', 'db_file', 'db_user', 'db_password', 'db_host', 'db_port', 'db_socket'])

export interface SetConfigOptions {
  key: string
  value: string
  parse?: boolean
  site?: string
  global?: boolean
}

export interface SetConfigResult {
  file: string
  key: string
  value: unknown
}

/** `tenancy set-config KEY VALUE --site S`: writes one key to the site's site_config.json. */
export async function setSiteConfig(bench: Bench, options: Omit<SetConfigOptions, 'global'>): Promise<SetConfigResult> {
  const key = assertConfigKey(options.key)
  const top = key.split('.')[0]!
  if (DB_KEYS.has(top))
    throw usageError(`"${key}" is managed by tenancy and would disconnect the site from its database; it cannot be set`)
  const value = coerceConfigValue(options.value, options.parse ?? false)
  if (!options.site)
    throw usageError(
      'set-config needs --site SITE (or a default site: "tenancy use SITE"), or --global for tenancy.config.json',
    )
  await requireSite(bench, options.site)
  const path = bench.sitePath(options.site)
  // Read inside the lock, so a concurrent set-config's key is not lost.
  await withFileLock(siteConfigPath(path), () => {
    const config = readSiteConfig(path)
    setConfigPath(config, key, value)
    writeSiteConfig(path, config)
  })
  return { file: `${path}/site_config.json`, key, value: maskSecrets(value, key) }
}

// Where server databases go when neither the config nor a flag says (as server-admin.ts and the drivers do).
const DEFAULT_SERVER_HOST = '127.0.0.1'

/**
 * The bench config as commands use it, every default filled in: those `resolveConfig` applies,
 * and those applied where they are used: this machine's name (`host`), the server, port and
 * admin user new server databases go to (null for SQLite, whose databases are files), and the
 * default pipeline.
 */
async function resolvedBenchConfig(bench: Bench): Promise<Record<string, unknown>> {
  const config: Record<string, unknown> = structuredClone(bench.config)
  config.host = bench.host
  const db = config.db as Record<string, unknown>
  const server = (await getDriver(bench.config.db.type)).server
  db.host ??= server ? DEFAULT_SERVER_HOST : null
  db.port ??= server?.defaultPort ?? null
  db.root_user ??= server?.defaultAdminUser ?? null
  const provision = config.provision as Record<string, unknown>
  provision.steps ??= structuredClone(DEFAULT_STEPS)
  return config
}

/**
 * `tenancy show-config`: the bench config with every default filled in, merged with a site's
 * config (its keys over the bench's), secrets masked.
 */
export async function showConfig(bench: Bench, options: { site?: string }): Promise<Record<string, unknown>> {
  const merged = await resolvedBenchConfig(bench)
  if (options.site) {
    await requireSite(bench, options.site)
    Object.assign(merged, readSiteConfig(bench.sitePath(options.site)))
  }
  return maskSecrets(merged) as Record<string, unknown>
}

export { getConfigPath }
