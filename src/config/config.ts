import { availableParallelism } from 'node:os'
import { usageError } from '../errors.js'
import { isHostName } from '../names.js'
import { maskUrl } from '../util/mask-url.js'
import { inIntegerRange } from '../util/integer-range.js'

/**
 * The kinds of database a site can live on: the one list of them, each with its driver
 * registered in `databases/index.ts` (which fails to compile without one for every kind).
 */
export const DB_TYPES = ['sqlite', 'mariadb', 'postgres'] as const
export type DbType = (typeof DB_TYPES)[number]
/** Other names `db.type` accepts for a kind: `mysql` in config is read as `mariadb`. */
export const DB_TYPE_ALIASES: Readonly<Record<string, DbType>> = { mysql: 'mariadb' }
/** The kinds as messages list them: "sqlite, mariadb or postgres". */
export const DB_TYPES_TEXT = `${DB_TYPES.slice(0, -1).join(', ')} or ${DB_TYPES.at(-1)}`
/** Every name `db.type` (and `--db-type`) accepts, each alias after its kind. */
export const DB_TYPE_NAMES = DB_TYPES.flatMap((type) => [
  type,
  ...Object.keys(DB_TYPE_ALIASES).filter((alias) => DB_TYPE_ALIASES[alias] === type),
])

/** A `{"run": "cmd"}` step in `provision.steps`. */
export interface RunStepConfig {
  run: string
  name?: string
  timeout?: number
}
/** One entry of `provision.steps`: a step's name (`"create-site"`, `"install-app APP"`, …) or a command to run. */
export type PipelineStepConfig = string | RunStepConfig

/** `tenancy.config.json` after defaults and validation. Unknown keys are kept (bench's common config). */
export interface BenchConfig {
  sites_path: string
  apps_path: string
  registry: string
  db: { type: DbType; host?: string; port?: number; socket?: string; root_user?: string; user_host?: string }
  default_site_domain: string
  auto_provision_tenant_sites: boolean
  provision: {
    apps: string[]
    api_user: string
    developer_mode: boolean
    steps?: PipelineStepConfig[]
    max_attempts: number
    step_timeout: number
    retry_delay: number
    /** Where events go; `secret` signs webhook bodies (`TENANCY_NOTIFY_SECRET` overrides it). */
    notify?: { webhook?: string; run?: string; secret?: string }
  }
  pending: { count: number; include_in_queries: boolean; attributes?: Record<string, unknown> }
  migrate: { concurrency: number }
  /** Where `tenancy backup` writes sets, whether it encrypts them, how many per site it keeps, and with which key. */
  backups: { path: string; encrypt: boolean; keep?: number; key_file?: string }
  /** `tenancy run`: the seconds each site's command may take unless `--timeout` says otherwise. */
  run: { timeout: number }
  provision_admin_password?: string
  provision_mariadb_root_password?: string
  [key: string]: unknown
}

export const DEFAULT_APPS = ['shared_lib', 'tenant_ops']

/**
 * The pipeline when `provision.steps` is not set (`install-apps` stands for one `install-app`
 * per `provision.apps`): what provisioning runs and `show-config` shows.
 */
export const DEFAULT_STEPS: readonly PipelineStepConfig[] = [
  'create-site',
  'developer-mode',
  'install-apps',
  'api-user',
  'api-keys',
  'activate',
]

/** The config `tenancy init` writes: the defaults that matter, spelled out. */
export function initialConfig(): Record<string, unknown> {
  return {
    sites_path: 'sites',
    apps_path: 'apps',
    registry: 'sqlite:.tenancy/registry.db',
    db: { type: 'sqlite' },
    default_site_domain: 'localhost',
    auto_provision_tenant_sites: true,
    provision: { apps: [...DEFAULT_APPS], api_user: 'api@{site}', developer_mode: true },
    pending: { count: 5, include_in_queries: false },
  }
}

type Check = (value: unknown) => string | null

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)
const str: Check = (v) => (typeof v === 'string' && v.length > 0 ? null : 'a non-empty string')
const bool: Check = (v) => (typeof v === 'boolean' ? null : 'true or false')
const intRange =
  (min: number, max: number): Check =>
  (v) =>
    typeof v === 'number' && inIntegerRange(v, { min, max }) ? null : `a whole number from ${min} to ${max}`
const oneOf =
  (...values: string[]): Check =>
  (v) =>
    typeof v === 'string' && values.includes(v) ? null : `one of ${values.map((x) => `"${x}"`).join(', ')}`
const obj: Check = (v) => (isObject(v) ? null : 'an object')
const stringList: Check = (v) =>
  Array.isArray(v) && v.every((x) => typeof x === 'string' && x.length > 0) ? null : 'a list of strings'
/** A MariaDB host pattern for site users (`db.user_host`): what may stand between the quotes of 'user'@'host'. */
export const USER_HOST = /^[A-Za-z0-9.%_:-]{1,255}$/
/** A value for an error message: a URL's password hidden (the registry URL may carry one), a secret not shown at all. */
const shown = (key: string, value: unknown): string =>
  isSecretKey(key.split('.').pop()!)
    ? 'a value not shown here'
    : typeof value === 'string' && key === 'registry'
      ? JSON.stringify(maskUrl(value))
      : JSON.stringify(value)
const registryUrl: Check = (v) =>
  typeof v === 'string' && /^(sqlite:.+|postgres(ql)?:\/\/.+)$/.test(v) ? null : 'a "sqlite:PATH" or "postgres://…" URL'
const steps: Check = (v) => {
  if (!Array.isArray(v) || v.length === 0) return 'a non-empty list of step names or {"run": "cmd"} objects'
  for (const item of v) {
    if (typeof item === 'string' && item.length > 0) continue
    if (isObject(item) && typeof item.run === 'string' && item.run.length > 0) {
      if (item.timeout !== undefined && intRange(1, 86_400)(item.timeout) !== null)
        return 'steps whose "timeout" is 1 to 86400 seconds'
      if (item.name !== undefined && typeof item.name !== 'string') return 'steps whose "name" is a string'
      continue
    }
    return 'a list of step names or {"run": "cmd", "timeout": N} objects'
  }
  return null
}
const notify: Check = (v) =>
  isObject(v) && ((typeof v.webhook === 'string' && /^https?:\/\/./.test(v.webhook)) || typeof v.run === 'string')
    ? null
    : 'an object with "webhook": URL or "run": "command"'

/** Every known key, its check, and its default. */
const KEYS: Record<string, { check: Check; fallback?: () => unknown }> = {
  sites_path: { check: str, fallback: () => 'sites' },
  apps_path: { check: str, fallback: () => 'apps' },
  registry: { check: registryUrl, fallback: () => 'sqlite:.tenancy/registry.db' },
  host: {
    check: (v) =>
      isHostName(v)
        ? null
        : 'a machine name such as "web-1" (letters, digits, dots, hyphens and underscores, at most 64)',
  },
  db: { check: obj, fallback: () => ({}) },
  'db.type': { check: oneOf(...DB_TYPE_NAMES), fallback: () => 'sqlite' },
  'db.host': { check: str },
  'db.port': { check: intRange(1, 65_535) },
  'db.socket': { check: str },
  'db.root_user': { check: str },
  'db.user_host': {
    check: (v) =>
      typeof v === 'string' && USER_HOST.test(v) ? null : 'a MariaDB host pattern such as "%", "localhost" or "10.0.%"',
  },
  default_site_domain: {
    check: (v) =>
      typeof v === 'string' &&
      /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/.test(v) &&
      v.length <= 180
        ? null
        : 'a lower-case domain such as "localhost" or "example.com"',
    fallback: () => 'localhost',
  },
  auto_provision_tenant_sites: { check: bool, fallback: () => true },
  provision: { check: obj, fallback: () => ({}) },
  'provision.apps': { check: stringList, fallback: () => [...DEFAULT_APPS] },
  'provision.api_user': { check: str, fallback: () => 'api@{site}' },
  'provision.developer_mode': { check: bool, fallback: () => true },
  'provision.steps': { check: steps },
  'provision.max_attempts': { check: intRange(1, 100), fallback: () => 5 },
  'provision.step_timeout': { check: intRange(1, 86_400), fallback: () => 300 },
  'provision.retry_delay': {
    check: (v) => (typeof v === 'number' && v >= 0 && v <= 3600 ? null : 'a number of seconds from 0 to 3600'),
    fallback: () => 2,
  },
  'provision.notify': { check: notify },
  'provision.notify.secret': { check: str },
  pending: { check: obj, fallback: () => ({}) },
  'pending.count': { check: intRange(0, 100_000), fallback: () => 5 },
  'pending.include_in_queries': { check: bool, fallback: () => false },
  'pending.attributes': { check: obj },
  migrate: { check: obj, fallback: () => ({}) },
  'migrate.concurrency': { check: intRange(1, 1024), fallback: () => availableParallelism() },
  backups: { check: obj, fallback: () => ({}) },
  'backups.path': { check: str, fallback: () => 'backups' },
  'backups.encrypt': { check: bool, fallback: () => false },
  'backups.keep': { check: intRange(1, 100_000) },
  'backups.key_file': { check: str },
  run: { check: obj, fallback: () => ({}) },
  'run.timeout': { check: intRange(1, 604_800), fallback: () => 3600 },
  provision_admin_password: { check: (v) => (typeof v === 'string' ? null : 'a string') },
  provision_mariadb_root_password: { check: (v) => (typeof v === 'string' ? null : 'a string') },
}

function getPath(root: Record<string, unknown>, path: string): unknown {
  let node: unknown = root
  for (const part of path.split('.')) {
    if (!isObject(node)) return undefined
    node = node[part]
  }
  return node
}

function setPath(root: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split('.')
  let node = root
  for (const part of parts.slice(0, -1)) {
    if (!isObject(node[part])) node[part] = {}
    node = node[part] as Record<string, unknown>
  }
  node[parts[parts.length - 1]!] = value
}

export { getPath as getConfigPath, setPath as setConfigPath }

/**
 * Validates a parsed `tenancy.config.json` and fills in defaults, applying the environment
 * overrides the SPEC lists (`TENANCY_REGISTRY_URL`, `TENANCY_PENDING_COUNT`).
 * A wrong value is a usage error naming the key, what it must be and the file.
 */
export function resolveConfig(raw: unknown, file: string, env: NodeJS.ProcessEnv = process.env): BenchConfig {
  if (!isObject(raw)) throw usageError(`${file} must hold a JSON object, e.g. {"db": {"type": "sqlite"}}`)
  const config = structuredClone(raw)
  const overrides: [string, string, unknown][] = []
  if (env.TENANCY_REGISTRY_URL) overrides.push(['registry', 'TENANCY_REGISTRY_URL', env.TENANCY_REGISTRY_URL])
  if (env.TENANCY_PENDING_COUNT !== undefined && env.TENANCY_PENDING_COUNT !== '') {
    const text = env.TENANCY_PENDING_COUNT
    overrides.push(['pending.count', 'TENANCY_PENDING_COUNT', /^\d+$/.test(text) ? Number(text) : text])
  }
  // Parents before children, so `db` is known to be an object before `db.type` is read.
  for (const [key, { check, fallback }] of Object.entries(KEYS)) {
    const value = getPath(config, key)
    if (value === undefined) {
      if (fallback) setPath(config, key, fallback())
      continue
    }
    const expected = check(value)
    if (expected) {
      throw usageError(
        `${file}: "${key}" must be ${expected} (got ${shown(key, value)}); fix the value or remove the key`,
      )
    }
  }
  for (const [key, source, value] of overrides) {
    const expected = KEYS[key]!.check(value)
    if (expected) throw usageError(`${source} must be ${expected} (got ${shown(key, value)})`)
    setPath(config, key, value)
  }
  const db = config.db as Record<string, unknown>
  if (typeof db.type === 'string' && Object.hasOwn(DB_TYPE_ALIASES, db.type)) db.type = DB_TYPE_ALIASES[db.type]
  return config as BenchConfig
}

/** Keys whose values are secrets: masked by show-config, never printed. */
export function isSecretKey(key: string): boolean {
  return /(password|passwd|pwd|secret|passphrase|encryption_key|private_key|token|credentials?)$/i.test(key)
}

/** A deep copy with every secret value replaced by `********`. */
export function maskSecrets(value: unknown, key = ''): unknown {
  if (isSecretKey(key) && value !== undefined && value !== null && value !== '') return '********'
  if (Array.isArray(value)) return value.map((v) => maskSecrets(v))
  if (isObject(value)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, maskSecrets(v, k)]))
  }
  // Credentials inside any URL-like value: scheme://user:password@host.
  if (typeof value === 'string') return value.replace(/(\/\/[^:/@\s]+:)[^@\s]*@/g, '$1********@')
  return value
}

/**
 * Whether a config document holds a secret: a `*password*` (or other secret) key with a
 * value, or a URL with a password in it. Such a file is written 0600 and stays 0600.
 */
export function holdsSecret(value: unknown, key = ''): boolean {
  if ((/password/i.test(key) || isSecretKey(key)) && value !== undefined && value !== null && value !== '') return true
  if (Array.isArray(value)) return value.some((v) => holdsSecret(v))
  if (isObject(value)) return Object.entries(value).some(([k, v]) => holdsSecret(v, k))
  return typeof value === 'string' && /\/\/[^:/@\s]+:[^@\s]+@/.test(value)
}
