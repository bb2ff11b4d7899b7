import { existsSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { NODE, codeOf } from '../error-codes.js'
import { usageError } from '../errors.js'

export const CONFIG_FILE = 'tenancy.config.json'

/** How to find the bench: `--config FILE`, else `TENANCY_CONFIG`, else walk up from `cwd`. */
export interface BenchOptions {
  config?: string
  cwd?: string
  env?: NodeJS.ProcessEnv
  /** Password flags of the command that opens the bench, for the secrets it may need on the way. */
  passwordFlags?: PasswordFlags
}

/**
 * The password flags a command offers (bench's `--db-root-password`, `--admin-password` and
 * their `-file` variants). Set, it also means the command has them, so a missing secret's
 * error names them.
 */
export interface PasswordFlags {
  dbRootPasswordFile?: string
  dbRootPassword?: string
  adminPasswordFile?: string
  adminPassword?: string
}

/** Finds `tenancy.config.json` as the SPEC says, or explains how to make one. */
export function findConfigFile(options: BenchOptions = {}): string {
  const env = options.env ?? process.env
  const cwd = options.cwd ?? process.cwd()
  if (options.config !== undefined && options.config.trim() === '') {
    throw usageError(
      `invalid --config ${JSON.stringify(options.config)}: give the path of tenancy.config.json ` +
        `(or leave the flag out to find it upward from here)`,
    )
  }
  const given = options.config ?? env.TENANCY_CONFIG
  if (given) {
    const file = resolve(cwd, given)
    const source = options.config ? '--config' : 'TENANCY_CONFIG'
    if (!existsSync(file))
      throw usageError(`config file "${file}" (from ${source}) does not exist; check the path or run "tenancy init"`)
    if (statSync(file).isDirectory()) {
      const inside = join(file, CONFIG_FILE)
      if (existsSync(inside)) return inside
      throw usageError(`"${file}" (from ${source}) is a directory without ${CONFIG_FILE}; run "tenancy init ${given}"`)
    }
    return file
  }
  for (let dir = resolve(cwd); ; dir = dirname(dir)) {
    const candidate = join(dir, CONFIG_FILE)
    if (existsSync(candidate)) return candidate
    if (dirname(dir) === dir) break
  }
  throw usageError(
    `no ${CONFIG_FILE} found in "${cwd}" or any parent directory; ` +
      `run "tenancy init" to create a bench, or pass --config FILE`,
  )
}

/** Where `tenancy use` keeps the default site, inside the bench. */
export const DEFAULT_SITE_FILE = join('.tenancy', 'current-site')

/**
 * The site a command acts on when none is given (SPEC §8): `TENANCY_SITE`, else the one
 * `tenancy use` recorded in `.tenancy/current-site` of the bench at `root`; undefined when neither.
 */
export function defaultSite(root: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const fromEnv = env.TENANCY_SITE?.trim()
  if (fromEnv) return fromEnv
  try {
    return readFileSync(join(root, DEFAULT_SITE_FILE), 'utf8').trim() || undefined
  } catch (error) {
    if (codeOf(error) === NODE.ENOENT || codeOf(error) === NODE.ENOTDIR) return undefined
    throw error
  }
}
