import type { Bench } from '../bench.js'
import { holdsSecret, maskSecrets, resolveConfig, setConfigPath } from '../config/config.js'
import { TenancyError, usageError } from '../errors.js'
import { assertConfigKey } from '../names.js'
import {
  coerceConfigValue,
  setSiteConfig,
  type SetConfigOptions,
  type SetConfigResult,
} from '../sites/config-commands.js'
import { withFileLock } from '../util/file-lock.js'
import { readJsonFile, writeJsonAtomic } from '../util/json-file.js'
import { checkPipeline } from './steps.js'

/**
 * `tenancy set-config KEY VALUE -g`: writes one key to tenancy.config.json, after checking the
 * whole new config as a command would load it and as the pipeline would run it, so a value
 * that would break the next `tenant create` (or every cron `pending-create`) is refused.
 */
export async function setGlobalConfig(
  bench: Bench,
  options: Omit<SetConfigOptions, 'global' | 'site'>,
): Promise<SetConfigResult> {
  const key = assertConfigKey(options.key)
  const value = coerceConfigValue(options.value, options.parse ?? false)
  // Read inside the lock (not bench.rawConfig from startup), so a concurrent set-config's key is not lost.
  return withFileLock(bench.configFile, () =>
    setGlobalKey(bench, readJsonFile(bench.configFile) as Record<string, unknown>, key, value, options),
  )
}

function setGlobalKey(
  bench: Bench,
  current: Record<string, unknown>,
  key: string,
  value: unknown,
  options: Pick<SetConfigOptions, 'value' | 'parse'>,
): SetConfigResult {
  const candidate = (v: unknown) => {
    const next = structuredClone(current)
    setConfigPath(next, key, v)
    return next
  }
  const check = (next: Record<string, unknown>) => {
    const config = resolveConfig(next, bench.configFile, {})
    checkPipeline(config, { appsPath: bench.path(config.apps_path) })
  }
  let next = candidate(value)
  try {
    check(next)
  } catch (error) {
    // A key the bench config types (`pending.count 3`, `provision.retry_delay 1.5`,
    // `pending.attributes '{"plan": "trial"}'`): bench's set-config would keep the text a
    // string, which such a key cannot hold, so the typed value is what was meant.
    let fixed = false
    let refused = error
    if (!options.parse) {
      for (const typed of typedReadings(options.value)) {
        try {
          check(candidate(typed))
          ;[value, next, fixed] = [typed, candidate(typed), true]
          break
        } catch (typedError) {
          // A list or object was clearly meant: its own error says more than the string's.
          if (typeof typed === 'object' && typed !== null) [refused, value] = [typedError, typed]
        }
      }
    }
    if (!fixed) {
      if (!(refused instanceof TenancyError)) throw refused
      const reason = refused.message
        .replace(/^.*?: "[^"]+" must be /, 'it must be ')
        .replace(/; fix the value or remove the key$/, '')
      const hint = options.parse || refused !== error ? '' : '; to give a JSON value (a number, list or object) add -p'
      throw usageError(`cannot set "${key}" to ${JSON.stringify(maskSecrets(value, key))}: ${reason}${hint}`)
    }
  }
  // A rewrite keeps the file's mode; once the config holds a secret, it is 0600 for good.
  writeJsonAtomic(bench.configFile, next, holdsSecret(next) ? 0o600 : undefined)
  return { file: bench.configFile, key, value: maskSecrets(value, key) }
}

/** Typed readings of a set-config text for a typed bench key: its JSON value, and `1`/`0` as true/false. */
function typedReadings(text: string): unknown[] {
  const readings: unknown[] = []
  try {
    readings.push(JSON.parse(text))
  } catch {
    // Not JSON: no typed reading but the booleans below.
  }
  if (text === '1' || text === '0') readings.push(text === '1')
  return readings
}

/** `tenancy set-config`: the site's site_config.json, or tenancy.config.json with `global`. */
export async function setConfig(bench: Bench, options: SetConfigOptions): Promise<SetConfigResult> {
  if (options.global && options.site) throw usageError('give either --site or --global, not both')
  return options.global ? setGlobalConfig(bench, options) : setSiteConfig(bench, options)
}
