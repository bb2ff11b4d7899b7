import { dirname } from 'node:path'
import type { Command } from 'commander'
import type { Bench, BenchOptions } from '../bench.js'
import { CancelledError, usageError } from '../errors.js'
import { Output } from '../output/output.js'
import { passwordFlagsFrom } from './password-flags.js'
import { defaultSite, findConfigFile } from '../config/find-config.js'

/** The bench's default site, or none (also when there is no bench: the command's own error says so). */
function benchDefaultSite(options: BenchOptions): string | undefined {
  let file: string
  try {
    file = findConfigFile(options)
  } catch {
    return (options.env ?? process.env).TENANCY_SITE?.trim() || undefined
  }
  return defaultSite(dirname(file), options.env)
}

/** The global flags every command sees (before or after the subcommand). */
export interface GlobalOptions {
  json?: boolean
  yes?: boolean
  /** The one --site of a command (the last one given). */
  site?: string
  /** Every --site given (migrate takes several). */
  sites?: string[]
  config?: string
  verbose?: boolean
}

/**
 * What a command action gets: its output, the global flags, and a signal that SIGINT/SIGTERM
 * abort. A command's own flags come from `command.opts<Flags>()`, typed by the interface next
 * to its registration.
 */
export interface CommandContext {
  out: Output
  opts: GlobalOptions
  signal: AbortSignal
  benchOptions: BenchOptions
  withBench<T>(fn: (bench: Bench) => Promise<T>): Promise<T>
  requireSite(): string
  /** --site, else the default site (`tenancy use`, TENANCY_SITE), else none: for commands that also work without one. */
  optionalSite(): string | undefined
  /** The site a command acts on: its argument, else --site, else the default site (unless `noDefault`: new-site, drop-site). */
  siteArgument(positional: string | undefined, options?: { noDefault?: boolean }): string
  /** Asks for confirmation unless --yes; with no terminal and no --yes, a usage error. */
  confirm(question: string, refusal: string): Promise<void>
}

export const interruption = new AbortController()

/**
 * The commands that act on a site (or, for `tenant create`, name the new tenant's site):
 * every other command refuses --site.
 */
const TAKES_SITE = new Set([
  'new-site',
  'drop-site',
  'install-app',
  'list-apps',
  'set-config',
  'show-config',
  'add-system-manager',
  'add-user',
  'set-admin-password',
  'generate-keys',
  'verify-key',
  'migrate',
  'backup',
  'execute',
  'list-backups',
  'run',
  'tenant create',
  'tenant rename',
  'rollback',
  'uninstall-app',
])

/** The fleet commands, which take several --site (or --site all). */
const TAKES_SITES = new Set(['migrate', 'backup', 'rollback', 'run', 'execute'])

/** A command's full name as typed: `tenant create`, `doctor`. */
export function commandPath(command: Command): string {
  const names: string[] = []
  for (let c: Command | null = command; c?.parent; c = c.parent) names.unshift(c.name())
  return names.join(' ')
}

/** The global flags as commander gives them: --site is repeatable, so every one given, in order. */
type ProgramFlags = Omit<GlobalOptions, 'site' | 'sites'> & { site?: string[] }

/** The context of a command's action; refuses a --site the command does not take. */
export function contextFor(command: Command): CommandContext {
  const raw = command.optsWithGlobals<ProgramFlags>()
  const sites = raw.site ?? []
  const name = commandPath(command)
  // `--site "$SITE"` with SITE unset: never "no --site" (the default site, or every site).
  if (sites.includes(''))
    throw usageError('invalid --site "": give a site name such as acme.localhost (is a shell variable unset?)')
  if (sites.length > 0 && !TAKES_SITE.has(name))
    throw usageError(`"${name}" takes no --site; leave it out (run "tenancy ${name} --help" for its flags)`)
  if (sites.length > 1 && !TAKES_SITES.has(name)) throw usageError(`"${name}" acts on one site; give --site once`)
  const { json, yes, config, verbose } = raw
  const opts: GlobalOptions = { json, yes, site: sites[sites.length - 1], sites, config, verbose }
  const out = new Output({ json: opts.json, verbose: opts.verbose })
  const benchOptions: BenchOptions = {
    config: opts.config,
    passwordFlags: passwordFlagsFrom(command, raw, (m) => out.warn(m)),
  }
  return {
    out,
    opts,
    signal: interruption.signal,
    benchOptions,
    async withBench(fn) {
      const { usingBench, deliverEvents } = await import('./core.js')
      return usingBench(benchOptions, async (bench) => {
        try {
          return await fn(bench)
        } finally {
          // After the command's own work, whatever its outcome: a few due events a crash or a
          // failing receiver left (one index probe when there are none), bounded in time.
          // Failures are logged by the outbox and retried later; they never change the command's result.
          if (bench.registryOpen && !interruption.signal.aborted)
            await deliverEvents(bench, { limit: 5, budgetMs: 2000 }).catch(() => undefined)
        }
      })
    },
    requireSite() {
      const site = opts.site ?? benchDefaultSite(benchOptions)
      if (!site)
        throw usageError(
          `"${command.name()}" needs --site SITE (or a default site: "tenancy use SITE"); ` +
            `run "tenancy list-sites" to see the sites`,
        )
      return site
    },
    optionalSite() {
      return opts.site ?? benchDefaultSite(benchOptions)
    },
    siteArgument(positional, options) {
      if (positional && opts.site && positional !== opts.site)
        throw usageError(`two sites given ("${positional}" and --site "${opts.site}"); give one`)
      const site = positional ?? opts.site ?? (options?.noDefault ? undefined : benchDefaultSite(benchOptions))
      if (!site)
        throw usageError(
          `"${command.name()}" needs a site: tenancy ${command.name()} acme.localhost` +
            (options?.noDefault
              ? ' (it never takes the default site of "tenancy use")'
              : ' (or set a default: tenancy use SITE)'),
        )
      return site
    },
    async confirm(question, refusal) {
      if (opts.yes) return
      const answer = await out.confirm(question)
      if (answer === undefined) throw usageError(`${refusal}: no terminal to confirm on; pass --yes`)
      if (!answer) throw new CancelledError()
    },
  }
}
