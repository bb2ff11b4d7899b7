import type { Command } from 'commander'
import type { RollbackResult, SiteRollbackResult } from '../migrate/rollback.js'
import { usingProgress } from '../output/progress.js'
import { contextFor } from './context.js'
import { addFleetFlags, fleetOptions, integerFlag, setFleetExitCode, type FleetFlags } from './flags.js'
import { sitesCounter } from './render.js'

interface RollbackFlags extends FleetFlags {
  app?: string
  step?: number
  to?: string
  dryRun?: boolean
}

function describeSite(r: SiteRollbackResult): string {
  if (r.status === 'rolled_back') return `rolled back ${r.reverted.join(', ')}`
  if (r.status === 'planned') return `would roll back ${r.reverted.join(', ')}`
  if (r.status === 'nothing_to_roll_back') return 'nothing to roll back'
  return `${r.status}: ${r.error}`
}

function renderSummary(result: RollbackResult): string {
  const lines = [
    `${result.sites.length} site(s): ${result.rolled_back} rolled back, ${result.failed} failed, ` +
      `${result.nothing_to_roll_back} with nothing to roll back, ${result.skipped} skipped` +
      `${result.planned ? `, ${result.planned} to roll back (dry run)` : ''}` +
      `${result.interrupted ? ' (interrupted)' : ''} in ${result.duration_ms} ms`,
  ]
  for (const f of result.sites.filter((s) => s.status === 'failed')) lines.push(`  failed: ${f.site}: ${f.error}`)
  return lines.join('\n')
}

/** Registers `tenancy rollback`. */
export function registerRollbackCommand(program: Command): void {
  const command = program
    .command('rollback')
    .description(
      'revert the newest applied migration(s) of sites (--site S ..., or --site all; default: the default site)',
    )
  addFleetFlags(command, '1; from 16 sites with SQLite ones, migrate.concurrency, else CPU count')
    .option('--app <app>', "only this app's migrations")
    .option(
      '--step <n>',
      'revert the newest N applied migrations (default 1)',
      integerFlag('--step', { min: 1, max: 100_000, unit: 'migrations' }),
    )
    .option('--to <app/migration>', 'revert every migration applied after this one (it stays applied)')
    .option('--dry-run', 'list what would be reverted on each site, changing nothing')
    .addHelpText(
      'after',
      '\nEach migration is reverted through its down() (.mjs/.js) or its sibling NNNN_name.down.sql, newest first, ' +
        'in one transaction per site where the database allows.\nA migration without a down fails that site, changing ' +
        'nothing there.\nExamples:\n  tenancy rollback --site acme.localhost\n  tenancy rollback --site all --app tenant_ops ' +
        '--step 2 --dry-run\n  tenancy rollback --site all --to tenant_ops/0004_project_templates --skip-failing',
    )
    .action(async (_o, cmd: Command) => {
      const ctx = contextFor(cmd)
      const flags = cmd.opts<RollbackFlags>()
      const selection = fleetOptions(ctx.opts.sites, flags, ctx.signal)
      await ctx.withBench(async (bench) => {
        const { rollback } = await import('./core.js')
        const result = await usingProgress(ctx.out, sitesCounter, (progress) =>
          rollback(bench, {
            ...selection,
            app: flags.app,
            step: flags.step,
            to: flags.to,
            dryRun: Boolean(flags.dryRun),
            onStart: (total) => progress.update(0, total),
            onSite: progress.siteLines(describeSite),
          }),
        )
        ctx.out.result(result, () => renderSummary(result))
        setFleetExitCode(result)
      })
    })
}
