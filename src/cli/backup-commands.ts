import type { Command } from 'commander'
import { EXIT_FAILED, EXIT_INTERRUPTED } from '../errors.js'
import { contextFor } from './context.js'
import { addFleetFlags, collect, integerFlag, parsePendingFlag, type FleetFlags } from './flags.js'
import { describeSiteBackup, renderBackups, renderBackupSummary } from './render.js'

interface BackupFlags extends FleetFlags {
  skipSite?: string[]
  encrypt?: boolean
  keep?: number
  backupPath?: string
}

interface ListBackupsFlags {
  backupPath?: string
}

/** Registers `tenancy backup` and `tenancy list-backups`. */
export function registerBackupCommands(program: Command): void {
  const backupCommand = program
    .command('backup')
    .description("back up sites (--site S ..., or --site all): each one's database snapshot and config, in one set")
    .option('--skip-site <site>', 'leave this site out (repeatable)', collect)
  addFleetFlags(backupCommand, '1')
    .option('--encrypt', 'encrypt the sets with AES-256-GCM (bench key, or backups.key_file; default backups.encrypt)')
    .option(
      '--keep <n>',
      "after each site's backup, keep only its newest N sets (default backups.keep: all)",
      integerFlag('--keep', { min: 1, max: 100_000, unit: 'sets' }),
    )
    .option('--backup-path <dir>', 'where sets go (default backups.path: backups/ in the bench)')
    .addHelpText(
      'after',
      '\nEach set is <backup-path>/<site>/<UTC stamp>/ with manifest.json, the database and site_config.json ' +
        '(without db_* keys).\nExamples:\n  tenancy backup --site acme.localhost\n' +
        '  tenancy backup --site all --skip-failing --keep 7 --encrypt\nExit 1 if any site failed.',
    )
    .action(async (_o, command: Command) => {
      const ctx = contextFor(command)
      const flags = command.opts<BackupFlags>()
      const withPending = parsePendingFlag(flags.withPending)
      await ctx.withBench(async (bench) => {
        const { backupSites } = await import('./core.js')
        const result = await backupSites(bench, {
          sites: ctx.opts.sites,
          skipSites: flags.skipSite,
          withPending,
          concurrency: flags.concurrency,
          skipFailing: Boolean(flags.skipFailing),
          encrypt: flags.encrypt,
          keep: flags.keep,
          backupPath: flags.backupPath,
          signal: ctx.signal,
          onSite: (r) => {
            if (!ctx.out.json) ctx.out.info(`${r.site}: ${describeSiteBackup(r)}`)
          },
        })
        ctx.out.result(result, () => renderBackupSummary(result))
        if (result.interrupted) process.exitCode = EXIT_INTERRUPTED
        else if (result.failed > 0) process.exitCode = EXIT_FAILED
      })
    })

  program
    .command('list-backups')
    .description('list complete backup sets (of one site with --site): site, when, size, encrypted, apps')
    .option('--backup-path <dir>', 'where sets are (default backups.path)')
    .action(async (_o, command: Command) => {
      const ctx = contextFor(command)
      const flags = command.opts<ListBackupsFlags>()
      await ctx.withBench(async (bench) => {
        const { listBackups } = await import('./core.js')
        const sets = listBackups(bench, {
          site: ctx.opts.site,
          root: flags.backupPath ? bench.path(flags.backupPath) : undefined,
        })
        ctx.out.result({ backups: sets }, () => renderBackups(sets))
      })
    })
}
