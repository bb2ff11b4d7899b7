import type { Command } from 'commander'
import { EXIT_FAILED, EXIT_INTERRUPTED } from '../errors.js'
import type { SiteResult } from '../migrate/site-migrator.js'
import { contextFor } from './context.js'
import { integerFlag } from './flags.js'
import { parsePendingFlag } from './tenant-commands.js'

function describe(r: SiteResult): string {
  switch (r.status) {
    case 'migrated':
      return `migrated${r.applied.length ? ` (${r.applied.join(', ')})` : ''}${r.fixtures_synced?.length ? `; fixtures synced: ${r.fixtures_synced.join(', ')}` : ''}${r.versions?.length ? `; versions: ${r.versions.join(', ')}` : ''}`
    case 'up_to_date':
      return 'up to date'
    case 'pending':
      return `would apply ${r.pending?.join(', ')}`
    case 'skipped':
      return `skipped: ${r.error ?? 'not started'}`
    case 'interrupted':
      return 'not started (interrupted)'
    case 'failed':
      return `FAILED${r.app ? ` at ${r.app}/${r.migration}` : ''}: ${r.error}`
  }
}

/** Registers `tenancy migrate`. */
export function registerMigrateCommand(program: Command): void {
  program
    .command('migrate')
    .description("apply each installed app's new migrations and fixtures on every site (or --site S ...), in parallel")
    .option('--with-pending [bool]', 'include sites of pending tenants (true/1/false/0)')
    .option(
      '--concurrency <n>',
      'sites at once (default: migrate.concurrency, else CPU count)',
      integerFlag('--concurrency', { min: 1, max: 1024, unit: 'sites' }),
    )
    .option('--skip-failing', 'try every site even after one fails')
    .option('--dry-run', 'list pending migrations per site; change nothing')
    .addHelpText('after', '\nExit 1 if any site failed; the summary names each failed site, app, migration and error.')
    .action(async (_o, command: Command) => {
      const ctx = contextFor(command)
      const o = ctx.opts as Record<string, any>
      const withPending = parsePendingFlag(o.withPending)
      await ctx.withBench(async (bench) => {
        const { migrate } = await import('./core.js')
        const tty = ctx.out.stderr.isTTY && !ctx.out.json
        const started = performance.now()
        const result = await migrate(bench, {
          sites: ctx.opts.sites?.length ? ctx.opts.sites : undefined,
          withPending,
          concurrency: o.concurrency,
          skipFailing: Boolean(o.skipFailing),
          dryRun: Boolean(o.dryRun),
          signal: ctx.signal,
          onSite: (r, done, total) => {
            if (ctx.out.json) return
            if (tty) {
              const seconds = (performance.now() - started) / 1000
              const rate = done / Math.max(seconds, 0.001)
              const eta = (total - done) / Math.max(rate, 0.001)
              ctx.out.stderr.write(`\r\u001b[2K${done}/${total} sites, ${rate.toFixed(0)}/s, ETA ${eta.toFixed(0)} s`)
              // A terminal gets the one progress line; only failures (and a dry run's findings) get lines of their own.
              if (r.status === 'failed' || r.status === 'pending' || r.status === 'interrupted')
                ctx.out.stderr.write(`\r\u001b[2K${r.site}: ${describe(r)}\n`)
            } else {
              ctx.out.info(`${r.site}: ${describe(r)}`)
            }
          },
        })
        if (tty) ctx.out.stderr.write('\r\u001b[2K')
        const failed = result.sites.filter((s) => s.status === 'failed')
        ctx.out.result(result, () => {
          const lines = [
            `${o.dryRun ? 'Dry run: ' : ''}${result.sites.length} site(s): ${result.migrated} migrated, ${result.up_to_date} up to date, ${result.failed} failed, ${result.skipped} skipped${result.interrupted ? `, ${result.sites.filter((s) => s.status === 'interrupted').length} not started (interrupted)` : ''}${o.dryRun ? `, ${result.sites.filter((s) => s.status === 'pending').length} with pending migrations` : ''} in ${result.duration_ms} ms`,
          ]
          for (const f of failed)
            lines.push(`  failed: ${f.site}${f.app ? ` (${f.app}/${f.migration})` : ''}: ${f.error}`)
          return lines.join('\n')
        })
        if (result.interrupted) process.exitCode = EXIT_INTERRUPTED
        else if (failed.length > 0) process.exitCode = EXIT_FAILED
      })
    })
}
