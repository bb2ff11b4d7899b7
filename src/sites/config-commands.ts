import type { Bench } from '../bench.js'
import { getConfigPath, holdsSecret, maskSecrets, resolveConfig, setConfigPath } from '../config/config.js'
import { usageError } from '../errors.js'
import { assertConfigKey } from '../names.js'
import { parseJson, writeJsonAtomic } from '../util/json-file.js'
import { readSiteConfig, requireSite, writeSiteConfig } from './site.js'

/**
 * The value `set-config` stores: as bench does, `"1"`/`"0"` become numbers and
 * `"true"`/`"false"` booleans; with `parse`, the text is read as JSON.
 */
export function coerceConfigValue(text: string, parse: boolean): unknown {
  if (parse) return parseJson(text, 'the value given to --parse', 'fix the value')
  if (text === 'true') return true
  if (text === 'false') return false
  // Integers only, and none with a leading zero: "01234" (a zip code) stays a string.
  if (/^-?(0|[1-9]\d*)$/.test(text) && Number.isSafeInteger(Number(text))) return Number(text)
  return text
}

const DB_KEYS = new Set(['db_type', 'db_name', 'db_file', 'db_user', 'db_password', 'db_host', 'db_port', 'db_socket'])

export interface SetConfigOptions {
  key: string
  value: string
  parse?: boolean
  site?: string
  global?: boolean
}

/** `tenancy set-config`: writes one key to site_config.json, or to tenancy.config.json with `global`. */
export async function setConfig(bench: Bench, options: SetConfigOptions): Promise<{ file: string; key: string; value: unknown }> {
  const key = assertConfigKey(options.key)
  const value = coerceConfigValue(options.value, options.parse ?? false)
  if (options.global) {
    if (options.site) throw usageError('give either --site or --global, not both')
    const next = structuredClone(bench.rawConfig)
    setConfigPath(next, key, value)
    // Refuse a value that would break the bench before it is written.
    try {
      resolveConfig(next, bench.configFile, {})
    } catch (error) {
      const reason = (error as Error).message.replace(/^.*?: "[^"]+" must be /, 'it must be ').replace(/; fix the value or remove the key$/, '')
      throw usageError(`cannot set "${key}" to ${JSON.stringify(value)}: ${reason}`)
    }
    // A rewrite keeps the file's mode; once the config holds a secret, it is 0600 for good.
    writeJsonAtomic(bench.configFile, next, holdsSecret(next) ? 0o600 : undefined)
    return { file: bench.configFile, key, value: maskSecrets(value, key) }
  }
  if (!options.site) throw usageError('set-config needs --site SITE, or --global for tenancy.config.json')
  if (DB_KEYS.has(key)) throw usageError(`"${key}" is managed by tenancy and would disconnect the site from its database; it cannot be set`)
  await requireSite(bench, options.site)
  const path = bench.sitePath(options.site)
  const config = readSiteConfig(path)
  setConfigPath(config, key, value)
  writeSiteConfig(path, config)
  return { file: `${path}/site_config.json`, key, value: maskSecrets(value, key) }
}

/** `tenancy show-config`: the bench config (with defaults) merged with a site's config, secrets masked. */
export async function showConfig(bench: Bench, options: { site?: string }): Promise<Record<string, unknown>> {
  const merged: Record<string, unknown> = structuredClone(bench.config)
  if (options.site) {
    await requireSite(bench, options.site)
    Object.assign(merged, readSiteConfig(bench.sitePath(options.site)))
  }
  return maskSecrets(merged) as Record<string, unknown>
}

export { getConfigPath }
