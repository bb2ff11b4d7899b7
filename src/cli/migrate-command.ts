import type { Command } from 'commander'
import { EXIT_FAILED, EXIT_INTERRUPTED } from '../errors.js'
import { statusLine } from '../output/progress.js'
import { contextFor } from './context.js'
import { addFleetFlags, collect, parsePendingFlag, type FleetFlags } from './flags.js'
import { describeSiteMigration, migrateCounter, renderMigrateSummary } from './render.js'

interface MigrateFlags extends FleetFlags {
  dryRun?: boolean
  skipSite?: string[]
}

/** Registers `tenancy migrate`. */
export function registerMigrateCommand(program: Command): void {
  const migrateCommand = program
    .command('migrate')
    .description("apply each installed app's new migrations and fixtures on every site (or --site S ...), in parallel")
    .option('--skip-site <site>', 'leave this site out (repeatable)', collect)
  addFleetFlags(migrateCommand, 'migrate.concurrency, else CPU count')
    .option('--dry-run', 'list pending migrations per site; change nothing')
    .addHelpText('after', '\nExit 1 if any site failed; the summary names each failed site, app, migration and error.')
    .action(async (_o, command: Command) => {
      const ctx = contextFor(command)
      const flags = command.opts<MigrateFlags>()
      const withPending = parsePendingFlag(flags.withPending)
      await ctx.withBench(async (bench) => {
        const { migrate } = await import('./core.js')
        const line = statusLine(ctx.out)
        const started = performance.now()
        const result = await migrate(bench, {
          sites: ctx.opts.sites?.length ? ctx.opts.sites : undefined,
          skipSites: flags.skipSite,
          withPending,
          concurrency: flags.concurrency,
          skipFailing: Boolean(flags.skipFailing),
          dryRun: Boolean(flags.dryRun),
          signal: ctx.signal,
          onSite: (r, done, total) => {
            if (ctx.out.json) return
            if (line) {
              line.update(migrateCounter(done, total, (performance.now() - started) / 1000))
              // A terminal gets the one progress line; only failures (and a dry run's findings) get
              // lines of their own.
              if (r.status === 'failed' || r.status === 'pending' || r.status === 'interrupted')
                line.print(`${r.site}: ${describeSiteMigration(r)}`)
            } else {
              ctx.out.info(`${r.site}: ${describeSiteMigration(r)}`)
            }
          },
        })
        line?.clear()
        ctx.out.result(result, () => renderMigrateSummary(result, Boolean(flags.dryRun)))
        if (result.interrupted) process.exitCode = EXIT_INTERRUPTED
        else if (result.sites.some((s) => s.status === 'failed')) process.exitCode = EXIT_FAILED
      })
    })
}
