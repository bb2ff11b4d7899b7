import type { Command } from 'commander'
import { contextFor } from './context.js'
import { integerFlag } from './flags.js'
import { renderEvents } from './render.js'

interface EventsFlags {
  undelivered?: boolean
  limit?: number
  offset?: number
}

/** A listing's page on a terminal when --limit is not given (SPEC §11); piped or --json, all of it. */
const TERMINAL_PAGE = 100

/** Registers `tenancy events`. */
export function registerEventsCommand(program: Command): void {
  program
    .command('events')
    .description('the events sent to provision.notify, newest first, with their delivery')
    .option('--undelivered', 'only events not yet delivered (still being retried)')
    .option(
      '--limit <n>',
      'at most N (default: 100 on a terminal, all otherwise)',
      integerFlag('--limit', { min: 1, max: 1_000_000, unit: 'events' }),
    )
    .option(
      '--offset <n>',
      'skip the newest N',
      integerFlag('--offset', { min: 0, max: 1_000_000_000, unit: 'events' }),
    )
    .addHelpText('after', '\nExamples:\n  tenancy events --undelivered\n  tenancy events --limit 20 --json')
    .action(async (_o, command: Command) => {
      const ctx = contextFor(command)
      const flags = command.opts<EventsFlags>()
      const limit = flags.limit ?? (ctx.out.json || !process.stdout.isTTY ? undefined : TERMINAL_PAGE)
      await ctx.withBench(async (bench) => {
        const { listEvents } = await import('./core.js')
        const result = await listEvents(bench, { undelivered: flags.undelivered, limit, offset: flags.offset })
        const { events, total } = result
        ctx.out.result({ events, total }, () => {
          if (events.length > 0) return renderEvents(events)
          if (!result.notify) return 'No events: provision.notify is not set, so none are recorded'
          return flags.undelivered ? 'Every event is delivered' : 'No events yet'
        })
        const offset = flags.offset ?? 0
        const more = total - offset - events.length
        if (!ctx.out.json && more > 0 && events.length > 0)
          ctx.out.info(`${more} more; see them with --offset ${offset + events.length}`)
      })
    })
}
