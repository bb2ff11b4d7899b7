import type { Command } from 'commander'
import { EXIT_FAILED, usageError } from '../errors.js'
import { usingProgress } from '../output/progress.js'
import { contextFor } from './context.js'
import { addPasswordFlags, adminPasswordFromFlags } from './password-flags.js'
import {
  addFleetFlags,
  addPageFlags,
  fleetOptions,
  integerFlag,
  pageOptions,
  pathFlag,
  setFleetExitCode,
  type FleetFlags,
  type PageFlags,
} from './flags.js'
import { printListing } from './listing.js'
import { BACKUPS_FORM, describeSiteBackup, renderBackupSummary, renderRestore, sitesCounter } from './render.js'

interface BackupFlags extends FleetFlags {
  encrypt?: boolean
  keep?: number
  backupPath?: string
}

interface RestoreFlags {
  force?: boolean
  backup?: boolean
  backupPath?: string
  rehome?: boolean
}

interface ListBackupsFlags extends PageFlags {
  backupPath?: string
}

/** Registers `tenancy backup` and `tenancy list-backups`. */
export function registerBackupCommands(program: Command): void {
  const backupCommand = program
    .command('backup')
    .description("back up sites (--site S ..., or --site all): each one's database snapshot and config, in one set")
  addFleetFlags(backupCommand, '1')
    .option('--encrypt', 'encrypt the sets with AES-256-GCM (bench key, or backups.key_file; default backups.encrypt)')
    .option(
      '--keep <n>',
      "after each site's backup, keep only its newest N sets (default backups.keep: all)",
      integerFlag('--keep', { min: 1, max: 100_000, unit: 'sets' }),
    )
    .option(
      '--backup-path <dir>',
      'where sets go (default backups.path: backups/ in the bench)',
      pathFlag('--backup-path'),
    )
    .addHelpText(
      'after',
      '\nEach set is <backup-path>/<site>/<UTC stamp>/ with manifest.json, the database and site_config.json ' +
        '(without db_* keys).\nExamples:\n  tenancy backup --site acme.localhost\n' +
        '  tenancy backup --site all --skip-failing --keep 7 --encrypt\nExit 1 if any site failed.',
    )
    .action(async (_o, command: Command) => {
      const ctx = contextFor(command)
      const flags = command.opts<BackupFlags>()
      const selection = fleetOptions(ctx.opts.sites, flags, ctx.signal)
      await ctx.withBench(async (bench) => {
        const { backupSites } = await import('./core.js')
        const result = await usingProgress(ctx.out, sitesCounter, (progress) =>
          backupSites(bench, {
            ...selection,
            encrypt: flags.encrypt,
            keep: flags.keep,
            backupPath: flags.backupPath,
            onStart: (total) => progress.update(0, total),
            onSite: progress.siteLines(describeSiteBackup),
          }),
        )
        ctx.out.result(result, () => renderBackupSummary(result))
        setFleetExitCode(result)
      })
    })

  const listBackupsCommand = program
    .command('list-backups')
    .description('list complete backup sets (of one site with --site), by site then time: when, size, encrypted, apps')
    .option('--backup-path <dir>', 'where sets are (default backups.path)', pathFlag('--backup-path'))
  addPageFlags(listBackupsCommand, 'sets').action(async (_o, command: Command) => {
    const ctx = contextFor(command)
    const flags = command.opts<ListBackupsFlags>()
    await ctx.withBench(async (bench) => {
      const { backupListing } = await import('./core.js')
      const listing = backupListing(bench, {
        site: ctx.opts.site,
        root: flags.backupPath ? bench.path(flags.backupPath) : undefined,
        ...pageOptions(flags, ctx.out),
      })
      await printListing(ctx.out, listing, { key: 'backups', what: 'sets', form: BACKUPS_FORM, empty: 'No backups.' })
    })
  })

  const restoreCommand = program
    .command('restore')
    .description("replace a site's database with a backup set's, then migrate the site")
    .argument('<site>', 'the site to restore')
    .argument('<backup-dir>', 'the backup set: a directory holding manifest.json (see list-backups)')
    .option('--force', "restore a set of another site, or one holding migrations the bench's apps do not have")
    .option('--no-backup', "do not back the site's current state up first")
    .option('--backup-path <dir>', 'where that backup goes (default backups.path)', pathFlag('--backup-path'))
    .option(
      '--rehome',
      'move a site whose machine is gone for good (no live worker) to this one: restored here, homed here',
    )
    .addHelpText(
      'after',
      '\nThe set is checked whole first (manifest, every sha256, the key, the database type): a bad one is exit 2 ' +
        'with the site untouched.\nThe site is backed up first, then switched to a fresh database holding the set in one ' +
        'step; the old one is dropped.\nWith --rehome (a shared registry), the site is made here from the set and its home ' +
        'switched to this machine in the same step; nothing on the old machine is touched.\nExamples:\n' +
        '  tenancy restore acme.localhost backups/acme.localhost/20261201T020000000Z --yes\n' +
        '  tenancy restore acme.localhost /mnt/web-2-backups/acme.localhost/20261201T020000000Z --rehome --yes',
    )
  // bench's restore takes --admin-password too: the restored site's Administrator gets it.
  addPasswordFlags(restoreCommand, { admin: true })
  restoreCommand.action(async (site: string, backupDir: string, _o, command: Command) => {
    const ctx = contextFor(command)
    const flags = command.opts<RestoreFlags>()
    await ctx.withBench(async (bench) => {
      const { assertRehomable, finishRestoredRename, rehomeSite, restoreSite, verifyBackupSet } =
        await import('./core.js')
      if (flags.rehome && flags.backupPath !== undefined)
        throw usageError(
          "--rehome takes no backup first (the site's current state is on the machine it leaves); leave out --backup-path",
        )
      if (flags.rehome) await assertRehomable(bench, site, backupDir)
      const adminPassword = await adminPasswordFromFlags(bench.passwordFlags)
      // The set is checked before asking, so a bad one is refused without a question.
      const set = await verifyBackupSet(bench, backupDir, { force: flags.force })
      await ctx.confirm(
        flags.rehome
          ? `Move site ${site} to this machine (${bench.host}), from the backup of ${set.manifest.site} taken ${set.manifest.created_at}?`
          : `Replace the data of site ${site} with the backup of ${set.manifest.site} taken ${set.manifest.created_at}?`,
        `restore of "${site}" replaces its data`,
      )
      const task = await ctx.out.task(`restoring ${site}`)
      let result
      try {
        const common = {
          force: flags.force,
          verified: set,
          signal: ctx.signal,
          onPhase: (phase: keyof typeof PHASES) => task.update(`restoring ${site}: ${PHASES[phase]}`),
        }
        result = flags.rehome
          ? await rehomeSite(bench, site, backupDir, common)
          : await restoreSite(bench, site, backupDir, {
              ...common,
              noBackup: flags.backup === false,
              backupPath: flags.backupPath,
            })
      } catch (error) {
        task.fail(`restoring ${site}`)
        throw error
      }
      task.succeed(`restored ${site} from ${result.from}`)
      // Data taken under another name: its API user and apps' data follow the site's name now.
      const renamed = result.rename_from
        ? ((await finishRestoredRename(bench, site, { signal: ctx.signal })) ?? null)
        : null
      if (adminPassword !== undefined) {
        const { setAdminPassword } = await import('./core.js')
        await setAdminPassword(bench, { site, password: adminPassword })
        if (!ctx.out.json) ctx.out.success(`set the Administrator password of ${site}`)
      }
      const done = { ...result, renamed, admin_password_set: adminPassword !== undefined }
      ctx.out.result(done, () => renderRestore(done))
      if (done.migrate.status === 'failed') process.exitCode = EXIT_FAILED
    })
  })
}

const PHASES = {
  verify: 'checking the backup',
  backup: 'backing up its current state',
  load: 'loading the backup into a fresh database',
  switch: 'switching the site',
  migrate: 'migrating',
} as const
