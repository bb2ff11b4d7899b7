import type { Bench } from '../../bench.js'
import { deliverEvents, undeliveredEvents } from '../../events/outbox.js'
import type { Diagnosis } from '../finding.js'

/** Events not yet delivered to `provision.notify` (`undelivered_event`): delivered now. */
export async function* checkEvents(bench: Bench): AsyncGenerator<Diagnosis> {
  const undelivered = await undeliveredEvents(bench)
  if (undelivered.length === 0) return
  const oldest = undelivered[0]!
  yield {
    finding: {
      kind: 'undelivered_event',
      subject: 'events',
      problem:
        `${undelivered.length} event(s) not yet delivered to provision.notify, ` +
        `the oldest ${oldest.type} of ${oldest.created_at}${oldest.last_error ? ` (${oldest.last_error})` : ''}`,
      fix: bench.config.provision.notify ? 'deliver them now' : 'nothing: set provision.notify to deliver them',
    },
    // With no provision.notify there is nothing --fix can do: the events wait for one.
    repair: bench.config.provision.notify
      ? async () => {
          const { failed } = await deliverEvents(bench, { evenIfNotDue: true })
          if (failed.length > 0) throw new Error(failed.map((f) => f.error).join('; '))
        }
      : undefined,
  }
}
