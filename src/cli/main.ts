import { Command, CommanderError } from 'commander'
import { closeSync } from 'node:fs'
import { EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, TenancyError } from '../errors.js'
import { Output } from '../output/output.js'
import { leftRunning } from '../util/left-running.js'
import { stopWhenBlocked } from '../util/blocked-watchdog.js'
import { commandPath, interruption } from './context.js'
import { collect } from './flags.js'
import { registerSiteCommands } from './site-commands.js'
import { registerTenantCommands } from './tenant-commands.js'
import { registerMigrateCommand } from './migrate-command.js'
import { registerBackupCommands } from './backup-commands.js'
import { registerRollbackCommand } from './rollback-command.js'
import { registerUninstallCommand } from './uninstall-command.js'
import { registerRunCommand } from './run-command.js'
import { registerExecuteCommand } from './execute-command.js'
import { registerEventsCommand } from './events-command.js'
import { registerHostCommands } from './host-commands.js'
import { registerCompletionCommand } from './completion.js'
import { registerSetupCommands } from './setup-command.js'

declare const TENANCY_VERSION: string

/** Builds the commander program: global flags, then one registration per command group. */
export function buildProgram(): Command {
  const program = new Command()
    .name('tenancy')
    .description('Provision isolated tenant sites: database, user, config, apps and API keys per tenant.')
    .version(TENANCY_VERSION, '-V, --version')
    .option('--json', 'print one JSON document on stdout; messages go to stderr')
    .option('-y, --yes', 'answer yes to confirmations')
    .option(
      '--site <site>',
      'the site a command acts on, before or after the command (migrate, backup, rollback, run, execute: repeatable)',
      collect,
    )
    .option('--config <file>', 'path of tenancy.config.json (default: found upward from here, or TENANCY_CONFIG)')
    .option('-v, --verbose', 'show stack traces and debug output')
    .showSuggestionAfterError()
    .exitOverride()
    .configureHelp({ showGlobalOptions: true })
  program.addHelpText(
    'after',
    '\nExit codes: 0 success, 1 failed, 2 usage or configuration error, 130 interrupted.\n' +
      'Examples:\n' +
      '  tenancy new-site acme.localhost --install-app tenant_ops\n' +
      '  tenancy --site acme.localhost generate-keys api@acme.localhost --json',
  )
  registerSiteCommands(program)
  registerTenantCommands(program)
  registerMigrateCommand(program)
  registerBackupCommands(program)
  registerRollbackCommand(program)
  registerUninstallCommand(program)
  registerRunCommand(program)
  registerExecuteCommand(program)
  registerEventsCommand(program)
  registerHostCommands(program)
  registerSetupCommands(program)
  registerCompletionCommand(program)
  const override = (command: Command): void => {
    command.exitOverride()
    // commander's own errors (a missing argument, an unknown flag) name, on their line, where the usage is.
    const usage = `(see "${['tenancy', commandPath(command)].filter(Boolean).join(' ')} --help")`
    command.configureOutput({
      outputError: (text, write) => {
        // Its suggestion ("\n(Did you mean create?)") joins the line; otherwise the usage does.
        const joined = text.replace(/\n\(Did you mean (.*)\)\n?$/, ' (did you mean $1)\n')
        write(joined === text ? text.replace(/\.?\n?$/, ` ${usage}\n`) : joined)
      },
    })
    command.commands.forEach(override)
  }
  override(program)
  return program
}

/**
 * Runs the CLI with `argv` and sets `process.exitCode`; never throws. Resolves to the command
 * whose action ran (`tenant create`), or undefined when none did (help, a usage error):
 * bin/tenancy.js keeps V8's code cache covering each command that runs.
 */
export async function main(argv: string[]): Promise<string | undefined> {
  // `tenancy list-sites | head`: a reader that stops early is not an error.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0)
      throw error
    })
  }
  let signals = 0
  const onSignal = (signal: NodeJS.Signals) => {
    signals++
    if (signals > 1) process.exit(EXIT_INTERRUPTED)
    interruption.abort(new Error(signal))
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  // A module hook stuck in a synchronous loop is reported and the process stopped, not left hanging.
  const json = argv.includes('--json')
  stopWhenBlocked({
    stop: (message) => {
      if (process.stderr.isTTY) process.stderr.write('\n')
      new Output({ json, verbose: false }).error(new TenancyError(message))
      // Node prints "Waiting for the debugger to disconnect..." on stderr when a process exits with
      // an inspector session open (the watchdog's): the message is written, so stderr goes first.
      closeSync(2)
      process.exit(EXIT_FAILED)
    },
    // Written by the watchdog's thread when the code is blocked in a system call: the process is then killed (137).
    render: (message) => ({
      stdout: json ? `${JSON.stringify({ error: { message, exit_code: 137 } }, null, 2)}\n` : '',
      stderr: `${process.stderr.isTTY ? '\n' : ''}error: ${message}\n`,
    }),
  })
  // Stack traces point into the bundle; with --verbose, bin/load-cli.js maps them back to src/.
  // `tenancy help tenant create`: commander's help command goes one level deep only.
  if (argv[2] === 'help' && argv.length > 4) argv = [...argv.slice(0, 2), ...argv.slice(3), '--help']
  const program = buildProgram()
  // `tenancy help nosuch`: commander would print the program's help and exit 2 without a word.
  if (argv[2] === 'help' && argv.length === 4 && !program.commands.some((c) => c.name() === argv[3])) {
    process.stderr.write(`error: unknown command '${argv[3]}' (see "tenancy --help")\n`)
    process.exitCode = EXIT_USAGE
    return undefined
  }
  let ran: string | undefined
  program.hook('preAction', (_program, action) => {
    ran = commandPath(action)
  })
  try {
    await program.parseAsync(argv)
    if (interruption.signal.aborted) process.exitCode = EXIT_INTERRUPTED
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and --version "errors" are successes; everything else commander rejects is usage.
      process.exitCode = error.exitCode === 0 ? 0 : EXIT_USAGE
      if (process.exitCode !== 0 && argv.includes('--json')) {
        const message = error.message.replace(/^error: /, '')
        process.stdout.write(`${JSON.stringify({ error: { message, exit_code: EXIT_USAGE } }, null, 2)}\n`)
      }
      return ran
    }
    const json = argv.includes('--json')
    const verbose = argv.includes('--verbose') || argv.includes('-v')
    const out = new Output({ json, verbose })
    const code = out.error(error)
    process.exitCode = interruption.signal.aborted ? EXIT_INTERRUPTED : code
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
    // A module hook past its timeout may still be running, its timers holding the event
    // loop: the command is done, so the process ends (output to pipes and files is synchronous).
    if (leftRunning() > 0) process.exit()
  }
  return ran
}
