import type { Bench } from '../bench.js'
import { holdsSecret, maskSecrets, resolveConfig, setConfigPath } from '../config/config.js'
import { TenancyError, usageError } from '../errors.js'
import { assertConfigKey } from '../names.js'
import { coerceConfigValue, setSiteConfig, type SetConfigOptions, type SetConfigResult } from '../sites/config-commands.js'
import { withFileLock } from '../util/file-lock.js'
import { readJsonFile, writeJsonAtomic } from '../util/json-file.js'
import { checkPipeline } from './steps.js'

/**
 * `tenancy set-config KEY VALUE -g`: writes one key to tenancy.config.json, after checking the
 * whole new config as a command would load it and as the pipeline would run it, so a value
 * that would break the next `tenant create` (or every cron `pending-create`) is refused.
 */
export async function setGlobalConfig(bench: Bench, options: Omit<SetConfigOptions, 'global' | 'site'>): Promise<SetConfigResult> {
  const key = assertConfigKey(options.key)
  const value = coerceConfigValue(options.value, options.parse ?? false)
  // Read inside the lock (not bench.rawConfig from startup), so a concurrent set-config's key is not lost.
  return withFileLock(bench.configFile, () => setGlobalKey(bench, readJsonFile(bench.configFile) as Record<string, unknown>, key, value))
}

function setGlobalKey(bench: Bench, current: Record<string, unknown>, key: string, value: unknown): SetConfigResult {
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
    // A key the bench config types as a number (`pending.count 3`): bench's set-config would
    // keep "3" a string, which such a key cannot hold, so the number is what was meant.
    const number = typeof value === 'string' && /^-?(0|[1-9]\d*)$/.test(value) ? Number(value) : undefined
    let fixed = false
    if (number !== undefined) {
      try {
        check(candidate(number))
        ;[value, next, fixed] = [number, candidate(number), true]
      } catch {
        // Not that either: report the first error.
      }
    }
    if (!fixed) {
      if (!(error instanceof TenancyError)) throw error
      const reason = error.message.replace(/^.*?: "[^"]+" must be /, 'it must be ').replace(/; fix the value or remove the key$/, '')
      throw usageError(`cannot set "${key}" to ${JSON.stringify(maskSecrets(value, key))}: ${reason}`)
    }
  }
  // A rewrite keeps the file's mode; once the config holds a secret, it is 0600 for good.
  writeJsonAtomic(bench.configFile, next, holdsSecret(next) ? 0o600 : undefined)
  return { file: bench.configFile, key, value: maskSecrets(value, key) }
}

/** `tenancy set-config`: the site's site_config.json, or tenancy.config.json with `global`. */
export async function setConfig(bench: Bench, options: SetConfigOptions): Promise<SetConfigResult> {
  if (options.global && options.site) throw usageError('give either --site or --global, not both')
  return options.global ? setGlobalConfig(bench, options) : setSiteConfig(bench, options)
}
