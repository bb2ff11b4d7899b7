import { Option, type Command } from 'commander'
import type { PasswordFlags } from '../bench.js'
import { usageError } from '../errors.js'
import { resolveSecret } from '../secrets/resolve-secret.js'

/**
 * Declares bench's password flags on a command: `--db-root-password-file` and
 * `--db-root-password` (alias `--mariadb-root-password`), and with `admin` also
 * `--admin-password-file` and `--admin-password`. The plain ones work, with a warning.
 */
export function addPasswordFlags(command: Command, which: { admin?: boolean } = {}): Command {
  command
    .option('--db-root-password-file <file>', 'file holding the database server root password')
    .option(
      '--db-root-password <password>',
      'the server root password (visible to other users in ps; prefer the -file flag)',
    )
    .addOption(new Option('--mariadb-root-password <password>', 'alias of --db-root-password').hideHelp())
  if (which.admin) {
    command
      .option('--admin-password-file <file>', 'file holding the Administrator password')
      .option(
        '--admin-password <password>',
        'the Administrator password (visible to other users in ps; prefer the -file flag)',
      )
  }
  return command
}

/**
 * The password flags given to a command that declares them (undefined for one that does
 * not), and a warning for each password typed on the command line.
 */
export function passwordFlagsFrom(
  command: Command,
  opts: Record<string, unknown>,
  warn: (message: string) => void,
): PasswordFlags | undefined {
  if (!command.options.some((o) => o.attributeName() === 'dbRootPasswordFile')) return undefined
  const text = (v: unknown) => (typeof v === 'string' ? v : undefined)
  const flags: PasswordFlags = {
    dbRootPasswordFile: text(opts.dbRootPasswordFile),
    dbRootPassword: text(opts.dbRootPassword) ?? text(opts.mariadbRootPassword),
    adminPasswordFile: text(opts.adminPasswordFile),
    adminPassword: text(opts.adminPassword),
  }
  const typed = [
    ['--db-root-password', text(opts.dbRootPassword)],
    ['--mariadb-root-password', text(opts.mariadbRootPassword)],
    ['--admin-password', text(opts.adminPassword)],
  ].filter(([, v]) => v !== undefined)
  for (const [flag] of typed) {
    const file = flag === '--admin-password' ? '--admin-password-file' : '--db-root-password-file'
    const env = flag === '--admin-password' ? 'TENANCY_ADMIN_PASSWORD' : 'TENANCY_DB_ROOT_PASSWORD'
    warn(commandLineSecretWarning(flag!, file, env))
  }
  if (text(opts.dbRootPassword) !== undefined && text(opts.mariadbRootPassword) !== undefined) {
    warn('both --db-root-password and --mariadb-root-password given; using --db-root-password')
  }
  return flags
}

/**
 * The warning for a password typed on the command line (`--password`, a positional argument):
 * other users of the machine can read a process's argv.
 */
export function commandLineSecretWarning(given: string, file: string, env: string): string {
  return (
    `${given} puts a password on the command line, where other users of this machine can read it; ` +
    `use ${file} or ${env} instead`
  )
}

/**
 * The Administrator password given by `--admin-password-file` or `--admin-password` (only
 * those: `restore`, like bench's, sets one only when asked), read before the command changes
 * anything so that an unreadable file or an empty password stops it first; undefined when neither.
 */
export async function adminPasswordFromFlags(flags: PasswordFlags | undefined): Promise<string | undefined> {
  const given = await resolveSecret({
    label: 'admin password',
    fileFlag: '--admin-password-file',
    filePath: flags?.adminPasswordFile,
    flag: '--admin-password',
    flagValue: flags?.adminPassword,
    envVar: 'TENANCY_ADMIN_PASSWORD',
    // The environment's TENANCY_ADMIN_PASSWORD (meant for new sites) does not reset a restored site's.
    env: {},
  })
  if (given && given.value.length === 0)
    throw usageError(`the admin password from ${given.where} is empty; give a non-empty one`)
  return given?.value
}
