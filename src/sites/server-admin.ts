import type { Bench } from '../bench.js'
import type { DbType } from '../config/config.js'
import { SERVER_DEFAULTS, type ServerAdmin } from '../databases/server-admin.js'
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
 * `db.*` in the config, then defaults; the password from `--db-root-password-file`,
 * `TENANCY_DB_ROOT_PASSWORD` (set but empty means an empty password), the seed-compatible
 * config key (with a warning), or a prompt. Missing everywhere is an error naming each place.
 */
export async function resolveServerAdmin(
  bench: Bench,
  dbType: Exclude<DbType, 'sqlite'>,
  options: ServerAdminOptions = {},
): Promise<ServerAdmin> {
  const db = bench.config.db
  const sameKind = db.type === dbType
  const flags = bench.passwordFlags
  const sources: SecretSources = {
    label: `${dbType} root password`,
    fileFlag: options.fileFlag === false && !flags ? undefined : '--db-root-password-file',
    filePath: options.dbRootPasswordFile ?? flags?.dbRootPasswordFile,
    flag: '--db-root-password',
    flagValue: flags?.dbRootPassword,
    envVar: 'TENANCY_DB_ROOT_PASSWORD',
    env: bench.env,
    configKey: dbType === 'mariadb' ? 'provision_mariadb_root_password' : undefined,
    config: bench.rawConfig,
    prompt: options.prompt,
  }
  const password = await resolveSecret(sources)
  if (!password) throw missingSecretError(sources)
  if (password.warning) options.onWarning?.(password.warning)
  return {
    host: options.dbHost ?? (sameKind ? db.host : undefined) ?? '127.0.0.1',
    port: options.dbPort ?? (sameKind ? db.port : undefined) ?? SERVER_DEFAULTS[dbType].port,
    socket: sameKind ? db.socket : undefined,
    userHost: sameKind ? db.user_host : undefined,
    user: options.dbRootUsername ?? (sameKind ? db.root_user : undefined) ?? SERVER_DEFAULTS[dbType].user,
    password: password.value,
  }
}
