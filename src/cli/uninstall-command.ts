import type { Command } from 'commander'
import { contextFor } from './context.js'

/** Registers `tenancy uninstall-app`. */
export function registerUninstallCommand(program: Command): void {
  program
    .command('uninstall-app')
    .description("remove an app from a site: backs it up, runs before_uninstall, reverts the app's migrations")
    .argument('<app>', 'the app to remove')
    .option('--no-backup', 'do not back the site up first')
    .addHelpText(
      'after',
      '\nRefused while another installed app requires it, or while one of its applied migrations has no down.\n' +
        'Examples:\n  tenancy uninstall-app tenant_ops --site acme.localhost --yes\n' +
        '  tenancy uninstall-app tenant_ops --site scratch.localhost --yes --no-backup',
    )
    .action(async (app: string, _o, command: Command) => {
      const ctx = contextFor(command)
      const site = ctx.requireSite()
      const flags = command.opts<{ backup: boolean }>()
      await ctx.withBench(async (bench) => {
        const { uninstallApp, requireSite } = await import('./core.js')
        await requireSite(bench, site)
        await ctx.confirm(
          `Uninstall app ${app} from site ${site}? Its tables and their data are removed`,
          `uninstall-app "${app}" removes its tables from "${site}"`,
        )
        const result = await uninstallApp(bench, app, site, { noBackup: flags.backup === false, signal: ctx.signal })
        ctx.out.result(result, () =>
          [
            `uninstalled ${app} from ${site} (${result.reverted.length} migration(s) reverted, ${result.duration_ms} ms)`,
            ...(result.backup ? [`the site was backed up first to ${result.backup}`] : []),
          ].join('\n'),
        )
      })
    })
}
