import type { Bench } from '../bench.js'
import type { DatabaseDriver } from '../databases/driver.js'
import type { ServerAdmin } from '../databases/server-admin.js'
import { missingSecretError, resolveSecret, type SecretSources } from '../secrets/resolve-secret.js'

export interface ServerAdminOptions {
  dbHost?: string
  dbPort?: number
  dbRootUsername?: string
  dbRootPasswordFile?: string
  prompt?: SecretSources['prompt']
  onWarning?: (message: string) => void
  /** Whether the command has `--db-root-password-file` (tenant and pool commands do not). */
  fileFlag?: boolean
}

/**
 * The admin (root) connection for creating and dropping a server database: flags, then
 * `db.*` in the config, then the driver's defaults; the password from `--db-root-password-file`,
 * `TENANCY_DB_ROOT_PASSWORD` (set but empty means an empty password), the seed-compatible
 * config key (with a warning), or a prompt. Missing everywhere is an error naming each place.
 * Undefined, and nothing asked, for a driver without a server (SQLite).
 */
export async function resolveServerAdmin(
  bench: Bench,
  driver: DatabaseDriver,
  options: ServerAdminOptions = {},
): Promise<ServerAdmin | undefined> {
  const server = driver.server
  if (!server) return undefined
  const db = bench.config.db
  const sameKind = db.type === driver.type
  const flags = bench.passwordFlags
  const sources: SecretSources = {
    label: `${driver.label} root password`,
    fileFlag: options.fileFlag === false && !flags ? undefined : '--db-root-password-file',
    filePath: options.dbRootPasswordFile ?? flags?.dbRootPasswordFile,
    flag: '--db-root-password',
    flagValue: flags?.dbRootPassword,
    envVar: 'TENANCY_DB_ROOT_PASSWORD',
    env: bench.env,
    configKey: server.adminPasswordConfigKey,
    config: bench.rawConfig,
    prompt: options.prompt,
    promptHint: 'leave empty if it has none',
    emptyAllowed: true,
  }
  const password = await resolveSecret(sources)
  if (!password) throw missingSecretError(sources)
  if (password.warning) options.onWarning?.(password.warning)
  return {
    host: options.dbHost ?? (sameKind ? db.host : undefined) ?? '127.0.0.1',
    port: options.dbPort ?? (sameKind ? db.port : undefined) ?? server.defaultPort,
    socket: sameKind ? db.socket : undefined,
    userHost: sameKind ? db.user_host : undefined,
    user: options.dbRootUsername ?? (sameKind ? db.root_user : undefined) ?? server.defaultAdminUser,
    password: password.value,
  }
}
