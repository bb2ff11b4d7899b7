import type { Command } from 'commander'
import { Option } from 'commander'
import { EXIT_FAILED, TenancyError, usageError } from '../errors.js'
import { taskProgress } from '../output/progress.js'
import { contextFor } from './context.js'
import {
  addPageFlags,
  addPendingFilters,
  collect,
  integerFlag,
  pageOptions,
  pendingChoice,
  type PageFlags,
  type PendingFlags,
} from './flags.js'
import { printListing } from './listing.js'
import { renderConfigLines } from './render-config.js'
import { addPasswordFlags, commandLineSecretWarning } from './password-flags.js'
import { SITES_FORM, appTaskView, renderBenchApps, renderRename, renderSiteApps } from './render.js'

interface InitFlags {
  withExampleApps?: boolean
}

interface NewSiteFlags {
  dbType?: 'sqlite' | 'mariadb' | 'mysql' | 'postgres'
  dbName?: string
  dbHost?: string
  dbPort?: number
  dbRootUsername?: string
  installApp?: string[]
  force?: boolean
  fromBackup?: string
  /** false with --no-backup. */
  backup: boolean
  keepOnFailure?: boolean
}

interface DropSiteFlags {
  /** false with --no-archive. */
  archive: boolean
  /** false with --no-backup. */
  backup: boolean
}

interface SetConfigFlags {
  global?: boolean
  parse?: boolean
}

interface AddSystemManagerFlags {
  firstName?: string
  lastName?: string
}

interface AddUserFlags extends AddSystemManagerFlags {
  role?: string[]
  /** bench's `--add-role`, the same as --role. */
  addRole?: string[]
  passwordFile?: string
  password?: string
}

interface SetAdminPasswordFlags {
  passwordFile?: string
}

/** Registers the bench-parity site commands on the program. */
export function registerSiteCommands(program: Command): void {
  program
    .command('init')
    .description('create a bench: tenancy.config.json, apps/, sites/, .tenancy/')
    .argument('[dir]', 'directory to create the bench in', '.')
    .option('--with-example-apps', 'copy the example apps shared_lib and tenant_ops into apps/')
    .action(async (dir: string, _o, command: Command) => {
      const ctx = contextFor(command)
      const flags = command.opts<InitFlags>()
      const { initBench } = await import('./core.js')
      const result = initBench(dir, { withExampleApps: Boolean(flags.withExampleApps) })
      const next = result.apps.length ? 'tenancy tenant create acme' : 'tenancy new-site acme.localhost'
      ctx.out.result(
        result,
        () =>
          `Created bench in ${result.path}${result.apps.length ? ` with apps ${result.apps.join(', ')}` : ''}\n` +
          `Next: ${dir === '.' ? '' : `cd ${dir} && `}${next}`,
      )
    })

  const newSiteCommand = program
    .command('new-site')
    .description('create a site: directory, database (and on servers its own user), core tables, Administrator')
    .argument('[site]', 'site name, a hostname such as acme.localhost (or --site)')
    .addOption(new Option('--db-type <type>', 'database type').choices(['sqlite', 'mariadb', 'mysql', 'postgres']))
    .option('--db-name <name>', 'database name ([a-z0-9_]{1,63}); generated when absent')
    .option('--db-host <host>', 'database server host')
    .option('--db-port <port>', 'database server port', integerFlag('--db-port', { min: 1, max: 65_535 }))
    .option('--db-root-username <user>', 'server user that creates the database')
    .option('--install-app <app>', 'install an app after creating the site (repeatable)', collect)
    .option(
      '--from-backup <dir>',
      'make the site from a backup set (its database, apps and settings) instead of installing apps; then migrate',
    )
    .option('--force', 'replace an existing site (backed up and archived first, then its database is dropped)')
    .option('--no-backup', 'with --force: replace the existing site without backing it up first')
    .option('--keep-on-failure', 'leave a failed site in place for debugging instead of rolling it back')
  addPasswordFlags(newSiteCommand, { admin: true })
  newSiteCommand.action(async (positional: string | undefined, _o, command: Command) => {
    const ctx = contextFor(command)
    const site = ctx.siteArgument(positional, { noDefault: true })
    const flags = command.opts<NewSiteFlags>()
    await ctx.withBench(async (bench) => {
      const { newSite } = await import('./core.js')
      const progress = taskProgress(ctx.out, appTaskView(site, { fromBackup: flags.fromBackup !== undefined }))
      let result
      try {
        result = await newSite(bench, {
          site,
          dbType: flags.dbType === 'mysql' ? 'mariadb' : flags.dbType,
          dbName: flags.dbName,
          dbHost: flags.dbHost,
          dbPort: flags.dbPort,
          dbRootUsername: flags.dbRootUsername,
          installApps: flags.installApp,
          force: flags.force,
          fromBackup: flags.fromBackup,
          backup: flags.backup,
          keepOnFailure: flags.keepOnFailure,
          prompt: (message, o) => ctx.out.password(message, o?.allowEmpty),
          onProgress: progress.on,
          onWarning: (message) => ctx.out.warn(message),
          signal: ctx.signal,
        })
      } finally {
        await progress.settle()
      }
      ctx.out.success(`site ${site} is ready (${result.db_type}, database ${result.db_name}, ${result.duration_ms} ms)`)
      ctx.out.result(result, () => {
        const lines: string[] = []
        if (result.restored_from && result.migrate) {
          const m = result.migrate
          lines.push(`made from the backup ${result.restored_from}`)
          lines.push(
            m.status === 'failed'
              ? `migrate failed: ${m.error}; run "tenancy migrate --site ${site}" once fixed`
              : m.applied.length > 0
                ? `migrated: ${m.applied.join(', ')}`
                : 'already up to date with the bench',
          )
        }
        if (result.admin_password)
          lines.push(`Administrator password (generated; shown only now): ${result.admin_password}`)
        return lines.join('\n') || undefined
      })
      if (result.migrate?.status === 'failed') process.exitCode = 1
    })
  })

  const dropSiteCommand = program
    .command('drop-site')
    .description("drop a site's database (and its user), and archive its directory")
    .argument('[site]', 'site name (or --site)')
    .option(
      '--no-archive',
      'delete the site directory instead of archiving it in archived/sites/ (the backup goes to backups.path)',
    )
    .option('--no-backup', 'drop the site without backing it up first')
  addPasswordFlags(dropSiteCommand)
  dropSiteCommand.action(async (positional: string | undefined, _o, command: Command) => {
    const ctx = contextFor(command)
    // Never the default site: `tenancy drop-site $SITE --yes` with SITE unset must drop nothing.
    const site = ctx.siteArgument(positional, { noDefault: true })
    const flags = command.opts<DropSiteFlags>()
    await ctx.withBench(async (bench) => {
      const { backupAndDropSite, requireSite } = await import('./core.js')
      await requireSite(bench, site, { allowAnyState: true })
      await ctx.confirm(`Drop site ${site} and its database?`, `drop-site "${site}" deletes its database`)
      const result = await backupAndDropSite(bench, {
        site,
        archive: flags.archive !== false,
        backup: flags.backup !== false,
        signal: ctx.signal,
      })
      ctx.out.result(result, () =>
        [
          `Dropped site ${site}`,
          ...(result.backup ? [`backup in ${result.backup}`] : []),
          ...(result.archived_to ? [`directory archived to ${result.archived_to}`] : []),
        ].join('; '),
      )
    })
  })

  program
    .command('rename-site')
    .description(
      "rename a site: its directory, registry rows, backups, the tenant's API user (new keys), then the apps' after_rename hooks",
    )
    .argument('<old>', "the site's name now")
    .argument('<new>', 'its new name, a hostname such as acme.example.com')
    .addHelpText(
      'after',
      '\nServer databases and their users keep their names. A rename that was stopped is finished by the\n' +
        'next command (or "tenancy doctor --fix"); running the same rename-site again finishes it too.\n' +
        'Example:\n  tenancy rename-site acme.localhost acme.example.com',
    )
    .action(async (from: string, to: string, _o, command: Command) => {
      const ctx = contextFor(command)
      await ctx.withBench(async (bench) => {
        const { renameSite } = await import('./core.js')
        const result = await renameSite(bench, from, to, { signal: ctx.signal })
        ctx.out.result(result, () => renderRename(result))
      })
    })

  program
    .command('use')
    .description('set the default site for commands that need one (TENANCY_SITE overrides it)')
    .argument('[site]', 'the site; leave out to show the current default')
    .option('--clear', 'remove the default site')
    .addHelpText(
      'after',
      '\nExamples:\n  tenancy use acme.localhost\n  tenancy backup        # backs up acme.localhost\n  tenancy use --clear',
    )
    .action(async (positional: string | undefined, _o, command: Command) => {
      const ctx = contextFor(command)
      const { clear } = command.opts<{ clear?: boolean }>()
      if (clear && positional) throw usageError('give a site or --clear, not both')
      await ctx.withBench(async (bench) => {
        const { useSite } = await import('./core.js')
        const result = await useSite(bench, clear ? null : positional)
        ctx.out.result(result, () =>
          result.site
            ? `default site: ${result.site}${result.from === 'TENANCY_SITE' ? ' (from TENANCY_SITE, which overrides tenancy use)' : ''}`
            : clear
              ? 'default site cleared: commands that need a site now need --site'
              : 'no default site',
        )
      })
    })

  const listSitesCommand = program
    .command('list-sites')
    .description('list sites with database type, installed apps and owning tenant')
  addPendingFilters(listSitesCommand, 'sites of pending tenants').option(
    '--host <machine>',
    'only the sites that live on this machine (its TENANCY_HOST name)',
  )
  addPageFlags(listSitesCommand, 'sites').addHelpText(
    'after',
    '\nExamples:\n  tenancy list-sites\n  tenancy list-sites --limit 50 --offset 100\n  tenancy list-sites --host web-2 --json',
  )
  listSitesCommand.action(async (_o, command: Command) => {
    const ctx = contextFor(command)
    const flags = command.opts<PendingFlags & PageFlags & { host?: string }>()
    const pending = pendingChoice(flags)
    await ctx.withBench(async (bench) => {
      const { siteListing } = await import('./core.js')
      const listing = await siteListing(bench, { pending, host: flags.host, ...pageOptions(flags, ctx.out) })
      await printListing(ctx.out, listing, {
        key: 'sites',
        form: SITES_FORM,
        empty:
          flags.host !== undefined
            ? `no sites on ${flags.host}`
            : 'No sites yet; create one with "tenancy new-site acme.localhost"',
      })
    })
  })

  program
    .command('install-app')
    .description('install apps on a site, requirements first')
    .argument('<apps...>', 'app names')
    .action(async (apps: string[], _o, command: Command) => {
      const ctx = contextFor(command)
      const site = ctx.requireSite()
      await ctx.withBench(async (bench) => {
        const { installApps } = await import('./core.js')
        const progress = taskProgress(ctx.out, appTaskView(site))
        try {
          const result = await installApps(bench, { site, apps, onProgress: progress.on, signal: ctx.signal })
          await progress.settle()
          ctx.out.result(result)
        } finally {
          await progress.settle()
        }
      })
    })

  program
    .command('list-apps')
    .description('list the apps installed on --site (or the default site) with their migrations, or those in the bench')
    .action(async (_o, command: Command) => {
      const ctx = contextFor(command)
      await ctx.withBench(async (bench) => {
        const { listApps, listSiteApps } = await import('./core.js')
        // As bench's list-apps, the default site's apps when no --site is given.
        const site = ctx.optionalSite()
        if (site) {
          const apps = await listSiteApps(bench, site)
          if (!ctx.opts.site && !ctx.out.json)
            ctx.out.info(`apps installed on the default site ${site} ("tenancy use --clear" lists the bench's apps)`)
          ctx.out.result({ site, apps }, () =>
            apps.length === 0 ? `No apps installed on ${site}` : renderSiteApps(apps),
          )
        } else {
          const apps = listApps(bench)
          ctx.out.result({ apps }, () => (apps.length === 0 ? `No apps in ${bench.appsPath}` : renderBenchApps(apps)))
        }
      })
    })

  program
    .command('set-config')
    .description("set a key in the site's site_config.json (--site, or the default site; -g: tenancy.config.json)")
    .argument('<key>', 'config key; dots for nested keys in the bench config (db.type)')
    .argument('<value>', 'value; "1"/"0" become numbers and "true"/"false" booleans')
    .option('-g, --global', 'write tenancy.config.json instead of a site config')
    .option('-p, --parse', 'parse the value as JSON')
    .action(async (key: string, value: string, _o, command: Command) => {
      const ctx = contextFor(command)
      const flags = command.opts<SetConfigFlags>()
      await ctx.withBench(async (bench) => {
        const { setConfig } = await import('./core.js')
        const result = await setConfig(bench, {
          key,
          value,
          parse: Boolean(flags.parse),
          global: Boolean(flags.global),
          // -g writes the bench's file: a default site is no reason to refuse it.
          site: flags.global ? ctx.opts.site : ctx.optionalSite(),
        })
        ctx.out.result(result, () => `Set ${key} = ${JSON.stringify(result.value)} in ${result.file}`)
      })
    })

  program
    .command('show-config')
    .description('show the merged configuration (bench, then --site) with every default filled in, secrets masked')
    .action(async (_o, command: Command) => {
      const ctx = contextFor(command)
      await ctx.withBench(async (bench) => {
        const { showConfig } = await import('./core.js')
        const config = await showConfig(bench, { site: ctx.opts.site })
        ctx.out.result(config, () => renderConfigLines(config).join('\n'))
      })
    })

  program
    .command('add-system-manager')
    .description('create a user with the System Manager role (an existing user just gets the role)')
    .argument('<email>', "the user's email")
    .option('--first-name <name>', 'first name')
    .option('--last-name <name>', 'last name')
    .action(async (email: string, _o, command: Command) => {
      const ctx = contextFor(command)
      const site = ctx.requireSite()
      await ctx.withBench(async (bench) => {
        const { addSystemManager } = await import('./core.js')
        const { firstName, lastName } = command.opts<AddSystemManagerFlags>()
        const result = await addSystemManager(bench, { site, email, firstName, lastName })
        ctx.out.result(result, () =>
          result.created
            ? `Created ${result.email} as System Manager on ${site}`
            : result.role_added
              ? `Gave ${result.email} the System Manager role on ${site}`
              : `${result.email} is already a System Manager on ${site}`,
        )
      })
    })

  program
    .command('add-user')
    .description('create a user with roles and a password (an email that is a user already is refused, as in bench)')
    .argument('<email>', "the user's email")
    .option('--role <role>', 'give the user a role, e.g. "System Manager" (repeatable)', collect)
    .addOption(new Option('--add-role <role>', "bench's name for --role").argParser(collect).hideHelp())
    .option('--first-name <name>', 'first name')
    .option('--last-name <name>', 'last name')
    .option(
      '--password-file <file>',
      'file holding the password (else TENANCY_USER_PASSWORD, else a prompt; generated when none is given)',
    )
    .option('--password <password>', 'the password (visible to other users in ps; prefer --password-file)')
    .action(async (email: string, _o, command: Command) => {
      const ctx = contextFor(command)
      const site = ctx.requireSite()
      const flags = command.opts<AddUserFlags>()
      if (flags.password !== undefined)
        ctx.out.warn(commandLineSecretWarning('--password', '--password-file', 'TENANCY_USER_PASSWORD'))
      await ctx.withBench(async (bench) => {
        const { addUser } = await import('./core.js')
        const result = await addUser(bench, {
          site,
          email,
          roles: [...(flags.role ?? []), ...(flags.addRole ?? [])],
          firstName: flags.firstName,
          lastName: flags.lastName,
          password: flags.password,
          passwordFile: flags.passwordFile,
          prompt: ctx.out.interactive ? (message, o) => ctx.out.password(message, o?.allowEmpty) : undefined,
        })
        ctx.out.result(result, () =>
          [
            `Created ${result.email} on ${site}` +
              (result.roles.length > 0 ? ` with the roles ${result.roles.join(', ')}` : ' with no roles'),
            ...(result.password ? [`Password (generated; shown only now): ${result.password}`] : []),
          ].join('\n'),
        )
      })
    })

  program
    .command('set-admin-password')
    .description("set the Administrator's password of a site (and the tenant's stored copy)")
    .argument(
      '[password]',
      'the new password (visible to other users in ps; prefer --password-file or TENANCY_ADMIN_PASSWORD)',
    )
    .option('--password-file <file>', 'file holding the new password (else TENANCY_ADMIN_PASSWORD, else a prompt)')
    .action(async (password: string | undefined, _o, command: Command) => {
      const ctx = contextFor(command)
      const site = ctx.requireSite()
      const { passwordFile } = command.opts<SetAdminPasswordFlags>()
      if (password !== undefined)
        ctx.out.warn(commandLineSecretWarning('the password argument', '--password-file', 'TENANCY_ADMIN_PASSWORD'))
      await ctx.withBench(async (bench) => {
        const { setAdminPassword } = await import('./core.js')
        const result = await setAdminPassword(bench, {
          site,
          password,
          passwordFile,
          prompt: ctx.out.interactive ? (message, o) => ctx.out.password(message, o?.allowEmpty) : undefined,
        })
        ctx.out.result(
          result,
          () =>
            `Set the Administrator password of ${site}` +
            (result.tenant_password_updated ? ` and the copy stored for tenant ${result.tenant}` : ''),
        )
      })
    })

  program
    .command('generate-keys')
    .description("print the user's api_key (stable) and a new api_secret (the old one stops working)")
    .argument('<email>', "the user's email")
    .action(async (email: string, _o, command: Command) => {
      const ctx = contextFor(command)
      const site = ctx.requireSite()
      await ctx.withBench(async (bench) => {
        const { generateKeys } = await import('./core.js')
        const keys = await generateKeys(bench, { site, email })
        ctx.out.result(keys, () => JSON.stringify(keys))
      })
    })

  program
    .command('verify-key')
    .description('check an API secret read from stdin against api_key; exit 0 if it matches, 1 if not')
    .argument('<api_key>', 'the api_key')
    .action(async (apiKey: string, _o, command: Command) => {
      const ctx = contextFor(command)
      const site = ctx.requireSite()
      const secret = process.stdin.isTTY ? await ctx.out.password('API secret:') : await readStdin()
      if (!secret) {
        const pipe = '(echo "$SECRET" | tenancy verify-key KEY --site S)'
        throw usageError(
          process.stdin.isTTY
            ? `verify-key needs the API secret; type it at the prompt, or pipe it in ${pipe}`
            : `verify-key read an empty API secret from stdin; pipe in the secret itself ${pipe}`,
        )
      }
      await ctx.withBench(async (bench) => {
        const { verifyKey } = await import('./core.js')
        const result = await verifyKey(bench, { site, apiKey, secret })
        if (result.suspended) {
          const { tenant, reason } = result.suspended
          const message = tenant
            ? `site is suspended: ${site} (tenant "${tenant}"${reason ? `: ${reason}` : ''}); ` +
              `its API keys are refused until "tenancy tenant resume ${tenant}"`
            : `site is suspended: ${site} is in maintenance mode (maintenance_mode in its site_config.json); ` +
              `its API keys are refused until "tenancy set-config maintenance_mode 0 --site ${site}"`
          ctx.out.result({ valid: false, user: null, suspended: result.suspended, error: message })
          process.exitCode = ctx.out.error(new TenancyError(message, { exitCode: EXIT_FAILED }))
          return
        }
        ctx.out.result({ valid: result.valid, user: result.user }, () =>
          result.valid ? `valid: api_key belongs to ${result.user}` : 'invalid api_key or api_secret',
        )
        if (!result.valid) process.exitCode = 1
      })
    })
}

/**
 * The most `verify-key` reads from stdin: an API secret is tens of bytes, so more is a
 * mistake (or an attack on memory).
 */
const MAX_SECRET_BYTES = 4096

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = []
  let bytes = 0
  for await (const chunk of process.stdin) {
    bytes += (chunk as Buffer).length
    if (bytes > MAX_SECRET_BYTES) {
      process.stdin.destroy()
      throw usageError(`verify-key read more than ${MAX_SECRET_BYTES} bytes from stdin; pipe in only the API secret`)
    }
    chunks.push(chunk as Buffer)
  }
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '')
}
