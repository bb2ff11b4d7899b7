import type { Command } from 'commander'
import type { ForgetHostResult } from '../sites/forget-host.js'
import { contextFor } from './context.js'

/** `host forget`'s result for humans: what went, and what the operator may still have to do. */
function renderForgetHost(result: ForgetHostResult): string {
  const lines = [`forgot machine ${result.host}`]
  lines.push(`  worker leases removed: ${result.leases_removed.length}`)
  if (result.site_jobs_cancelled.length > 0)
    lines.push(`  fleet jobs sent to it, cancelled: ${result.site_jobs_cancelled.length}`)
  if (result.jobs_unplaced.length > 0)
    lines.push(
      `  provisioning jobs placed on it, now for the first machine whose worker takes them: ` +
        result.jobs_unplaced.map((j) => `${j.tenant} (job ${j.id})`).join(', '),
    )
  for (const s of result.sites_removed)
    lines.push(
      `  removed the row of failed site ${s.site} (${s.db_type} database ${s.db_name}` +
        `${s.db_host ? ` on ${s.db_host}: drop it there by hand if that server still runs` : ''})`,
    )
  return lines.join('\n')
}

/** Registers `tenancy host` and its subcommands: the machines sharing a registry (SPEC §10). */
export function registerHostCommands(program: Command): void {
  const host = program.command('host').description('the machines that share a PostgreSQL registry')

  host
    .command('forget')
    .description('remove a machine that is gone for good from the registry (its sites moved elsewhere first)')
    .argument('<machine>', "the machine's name (TENANCY_HOST there; the HOST column of list-sites)")
    .addHelpText(
      'after',
      "\nRemoves the machine's worker leases, cancels the fleet jobs sent to it, hands the provisioning\n" +
        'jobs placed on it to whichever machine takes them first, and removes the rows of sites whose\n' +
        'creation failed there. Refused (exit 2) while the registry homes a live site on it (move them with\n' +
        '"tenancy restore SITE SET --rehome" on another machine), while it has a live worker, and for this machine.\n' +
        'Examples:\n  tenancy list-sites --host web-2\n  tenancy host forget web-2 --yes --json',
    )
    .action(async (machine: string, _o, command: Command) => {
      const ctx = contextFor(command)
      await ctx.withBench(async (bench) => {
        const { forgetHost } = await import('./core.js')
        const result = await forgetHost(bench, machine, {
          confirm: (p) =>
            ctx.confirm(
              `Forget machine ${p.host}? ${p.site_jobs} fleet job(s) sent to it are cancelled, ` +
                `${p.jobs} provisioning job(s) placed on it go to other machines, ` +
                `${p.failed_sites} failed site row(s) of it are removed.`,
              `host forget ${p.host} changes the registry`,
            ),
        })
        ctx.out.result(result, () => renderForgetHost(result))
      })
    })
}
