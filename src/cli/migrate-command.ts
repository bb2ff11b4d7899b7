import type { Command } from 'commander'
import { usingProgress } from '../output/progress.js'
import { contextFor } from './context.js'
import { addFleetFlags, fleetOptions, setFleetExitCode, type FleetFlags } from './flags.js'
import { describeSiteMigration, renderMigrateSummary, sitesCounter } from './render.js'

interface MigrateFlags extends FleetFlags {
  dryRun?: boolean
}

/** Registers `tenancy migrate`. */
export function registerMigrateCommand(program: Command): void {
  const migrateCommand = program
    .command('migrate')
    .description("apply each installed app's new migrations and fixtures on every site (or --site S ...), in parallel")
  addFleetFlags(migrateCommand, 'migrate.concurrency, else CPU count; 8 when every site is on a server')
    .option('--dry-run', 'list pending migrations per site; change nothing')
    .addHelpText('after', '\nExit 1 if any site failed; the summary names each failed site, app, migration and error.')
    .action(async (_o, command: Command) => {
      const ctx = contextFor(command)
      const flags = command.opts<MigrateFlags>()
      const selection = fleetOptions(ctx.opts.sites, flags, ctx.signal)
      await ctx.withBench(async (bench) => {
        const { migrate } = await import('./core.js')
        // Every site's line, above the one progress line on a terminal (a plain line each otherwise).
        const result = await usingProgress(ctx.out, sitesCounter, (progress) =>
          migrate(bench, {
            ...selection,
            dryRun: Boolean(flags.dryRun),
            onSite: progress.siteLines(describeSiteMigration),
          }),
        )
        ctx.out.result(result, () => renderMigrateSummary(result, Boolean(flags.dryRun)))
        setFleetExitCode(result)
      })
    })
}
