import type { Bench } from '../bench.js'
import { childEnvironment, runCommand } from '../util/run-command.js'

/** The longest a notify command may run, in seconds (less when `provision.step_timeout` is less). */
const NOTIFY_TIMEOUT_S = 60

/** Where events go: `provision.notify`. */
export type NotifyTarget = NonNullable<Bench['config']['provision']['notify']>

/** An event as it leaves the outbox: its id and type, and the JSON body delivered. */
export interface OutgoingEvent {
  id: string
  type: string
  payload: string
}

/**
 * Sends one event to `provision.notify`, throwing when the receiver does not take it: a
 * webhook gets the event JSON as a POST body with an `X-Tenancy-Event-Id` header (10 s
 * timeout); a command gets the JSON on stdin and in `TENANCY_EVENT_JSON`, the type in
 * `TENANCY_EVENT` and the id in `TENANCY_EVENT_ID` (60 s timeout, or `provision.step_timeout` when that is less).
 */
export async function sendEvent(bench: Bench, target: NotifyTarget, event: OutgoingEvent): Promise<void> {
  if (target.webhook) {
    const response = await fetch(target.webhook, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'user-agent': 'tenancy', 'x-tenancy-event-id': event.id },
      body: event.payload,
      signal: AbortSignal.timeout(10_000),
    })
    if (!response.ok) throw new Error(`the webhook answered HTTP ${response.status}`)
  }
  if (target.run) {
    const tenant = (JSON.parse(event.payload) as { tenant?: { name?: string; site?: string | null } }).tenant
    await runCommand(target.run, {
      cwd: bench.root,
      what: 'the provision.notify command',
      timeoutSeconds: Math.min(NOTIFY_TIMEOUT_S, bench.config.provision.step_timeout),
      input: event.payload,
      env: childEnvironment(bench.env, {
        TENANCY_EVENT: event.type,
        TENANCY_EVENT_ID: event.id,
        TENANCY_TENANT: tenant?.name ?? '',
        TENANCY_SITE: tenant?.site ?? '',
        TENANCY_BENCH_PATH: bench.root,
        TENANCY_EVENT_JSON: event.payload,
      }),
    })
  }
}
