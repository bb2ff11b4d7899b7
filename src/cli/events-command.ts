import type { Command } from 'commander'
import { contextFor } from './context.js'
import { addPageFlags, pageOptions, type PageFlags } from './flags.js'
import { printListing } from './listing.js'
import { EVENTS_FORM } from './render.js'

interface EventsFlags extends PageFlags {
  undelivered?: boolean
}

/** Registers `tenancy events`. */
export function registerEventsCommand(program: Command): void {
  const command = program
    .command('events')
    .description('the events sent to provision.notify, newest first, with their delivery')
    .option('--undelivered', 'only events not yet delivered (still being retried)')
  addPageFlags(command, 'events')
    .addHelpText(
      'after',
      '\nExamples:\n  tenancy events --undelivered\n  tenancy events --limit 20 --offset 20\n  tenancy events --limit 20 --json',
    )
    .action(async (_o, command: Command) => {
      const ctx = contextFor(command)
      const flags = command.opts<EventsFlags>()
      await ctx.withBench(async (bench) => {
        const { eventListing } = await import('./core.js')
        const listing = await eventListing(bench, { undelivered: flags.undelivered, ...pageOptions(flags, ctx.out) })
        await printListing(ctx.out, listing, {
          key: 'events',
          what: 'events',
          form: EVENTS_FORM,
          empty: !listing.notify
            ? 'No events: provision.notify is not set, so none are recorded'
            : flags.undelivered
              ? 'Every event is delivered'
              : 'No events yet',
        })
      })
    })
}
