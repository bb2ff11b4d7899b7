import { realpathSync } from 'node:fs'
import { resolve } from 'node:path'
import type { Command } from 'commander'
import { usageError } from '../errors.js'
import type { SetupOptions, SetupResult, SetupScope } from '../sites/setup.js'
import { contextFor } from './context.js'

interface SetupFlags {
  user?: boolean
  system?: boolean
  write?: boolean
  path?: string
  force?: boolean
  name?: string
}

/** The flags both setup commands take. */
function addSetupFlags(command: Command, where: { user: string; system: string }): Command {
  return command
    .option('--user', `for the current user: ${where.user} (the default unless root)`)
    .option('--system', `for the machine: ${where.system} (the default as root)`)
    .option('--write', 'install it there, instead of printing it')
    .option('--path <file>', 'with --write: write it to this file instead')
    .option('--force', 'with --write: replace an installed one that differs')
    .option('--name <name>', 'the name in the installed file name (default: the bench directory’s)')
}

/** The core options from the flags: this Node and this tenancy, by absolute path (cron and systemd have a small PATH). */
function setupOptions(flags: SetupFlags): SetupOptions {
  if (flags.user && flags.system) throw usageError('give --user or --system, not both')
  if (!flags.write && flags.path !== undefined) throw usageError('--path says where --write puts it; add --write')
  if (!flags.write && flags.force) throw usageError('--force replaces an installed file; add --write')
  const scope: SetupScope | undefined = flags.user ? 'user' : flags.system ? 'system' : undefined
  return {
    node: process.execPath,
    bin: realpathSync(process.argv[1]!),
    scope,
    name: flags.name,
    write: Boolean(flags.write),
    path: flags.path === undefined ? undefined : resolve(flags.path),
    force: Boolean(flags.force),
  }
}

function renderSetup(result: SetupResult): string {
  if (!result.written) return result.content
  const lines = [result.changed ? `Wrote ${result.target}` : `${result.target} is up to date; nothing changed`]
  if (result.next.length > 0) lines.push('Next:', ...result.next.map((n) => `  ${n}`))
  return lines.join('\n')
}

/** Registers `tenancy setup cron` and `tenancy setup systemd`. */
export function registerSetupCommands(program: Command): void {
  const setup = program
    .command('setup')
    .description('run the bench from cron and systemd: print or install their files')

  const run = async (command: Command, kind: 'cron' | 'systemd') => {
    const ctx = contextFor(command)
    const options = setupOptions(command.opts<SetupFlags>())
    await ctx.withBench(async (bench) => {
      const result =
        kind === 'cron'
          ? (await import('../sites/setup-cron.js')).setupCron(bench, options)
          : (await import('../sites/setup-systemd.js')).setupSystemd(bench, options)
      ctx.out.result(result, () => renderSetup(result))
    })
  }

  addSetupFlags(
    setup
      .command('cron')
      .description('the crontab: pending-create every 5 minutes, backup --site all nightly, pending-clear weekly'),
    { user: 'your crontab, only its "# BEGIN tenancy" block replaced', system: '/etc/cron.d/tenancy-NAME' },
  )
    .addHelpText(
      'after',
      '\nEach line cds to the bench and runs this node and this tenancy by absolute path, appending to logs/JOB.log.\n' +
        'Examples:\n  tenancy setup cron\n  tenancy setup cron --write',
    )
    .action(async (_o, command: Command) => run(command, 'cron'))

  addSetupFlags(
    setup
      .command('systemd')
      .description('a systemd unit for "tenancy worker": restarted on failure, stopped gracefully with SIGTERM'),
    {
      user: '~/.config/systemd/user/tenancy-worker-NAME.service',
      system: '/etc/systemd/system/tenancy-worker-NAME.service',
    },
  )
    .addHelpText(
      'after',
      '\nExamples:\n  tenancy setup systemd\n' +
        '  sudo tenancy setup systemd --write && sudo systemctl daemon-reload && sudo systemctl enable --now tenancy-worker-NAME',
    )
    .action(async (_o, command: Command) => run(command, 'systemd'))
}
