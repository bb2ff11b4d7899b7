import type { Command } from 'commander'
import type { StatusChange, StatusChangeResult } from '../provisioning/tenant-status.js'
import { contextFor, type CommandContext } from './context.js'
import { collect } from './flags.js'

interface SuspendFlags {
  reason?: string
}

interface UpdateFlags {
  data?: string[]
  unset?: string[]
}

/** What a suspend or resume says, after its result: done, or already so. */
function describeChange(result: StatusChangeResult, change: StatusChange): string {
  if (!result.changed) return `Tenant ${result.name} is already ${result.status}; its site config is in line`
  return change === 'suspend'
    ? `Suspended tenant ${result.name}: site ${result.site} is in maintenance mode and refuses its API keys` +
        `${result.suspend_reason ? ` (${result.suspend_reason})` : ''}`
    : `Resumed tenant ${result.name}: site ${result.site} accepts its API keys again`
}

/** Runs `tenant suspend` or `tenant resume` and renders it. */
async function statusCommand(ctx: CommandContext, name: string, change: StatusChange, reason?: string): Promise<void> {
  await ctx.withBench(async (bench) => {
    const { changeTenantStatus } = await import('./core.js')
    const result = await changeTenantStatus(bench, name, change, { reason })
    ctx.out.result(result, () => describeChange(result, change))
    if (result.notify_error) ctx.out.warn(result.notify_error)
  })
}

/** Registers `tenant suspend`, `tenant resume` and `tenant update` on the `tenant` group. */
export function registerTenantLifecycleCommands(tenant: Command): void {
  tenant
    .command('suspend')
    .description('suspend an active tenant: its site goes into maintenance mode and refuses its API keys')
    .argument('<name>', 'tenant name')
    .option('--reason <text>', 'why, kept on the tenant and sent with the tenant.suspended event')
    .addHelpText(
      'after',
      '\nFleet commands (migrate, run, execute, backup) still reach a suspended site.\n' +
        'Example:\n  tenancy tenant suspend acme --reason "invoice 1042 unpaid"',
    )
    .action(async (name: string, _o, command: Command) => {
      await statusCommand(contextFor(command), name, 'suspend', command.opts<SuspendFlags>().reason)
    })

  tenant
    .command('resume')
    .description('resume a suspended tenant: maintenance mode is lifted and its API keys work again')
    .argument('<name>', 'tenant name')
    .action(async (name: string, _o, command: Command) => {
      await statusCommand(contextFor(command), name, 'resume')
    })

  tenant
    .command('update')
    .description("change a tenant's attributes (data): set some, remove others")
    .argument('<name>', 'tenant name')
    .option('--data <key=value>', 'set an attribute (repeatable); integers and true/false are typed', collect)
    .option('--unset <key>', 'remove an attribute (repeatable)', collect)
    .addHelpText('after', '\nExample:\n  tenancy tenant update acme --data plan=pro --data seats=25 --unset trial')
    .action(async (name: string, _o, command: Command) => {
      const ctx = contextFor(command)
      const flags = command.opts<UpdateFlags>()
      await ctx.withBench(async (bench) => {
        const { parseDataPairs, updateTenantData } = await import('./core.js')
        const result = await updateTenantData(bench, name, {
          set: parseDataPairs(flags.data ?? []),
          unset: flags.unset ?? [],
        })
        ctx.out.result(result, () =>
          result.changed
            ? `Updated tenant ${name}: data ${JSON.stringify(result.data)}`
            : `Tenant ${name}'s data is already so; nothing changed`,
        )
      })
    })
}
