import type { Bench } from '../bench.js'
import { TenancyError } from '../errors.js'
import { signBody } from '../secrets/hashing.js'
import { resolveSecret, type SecretSources } from '../secrets/resolve-secret.js'
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
 * Where the webhook signing secret is looked for, in the project's order for secrets: the
 * environment (`TENANCY_NOTIFY_SECRET`), then `provision.notify.secret` in the config. It is
 * only ever used to sign: never logged, never passed to a child (a notify command's
 * environment drops every variable named like a secret).
 */
function signingSecretSources(bench: Bench): SecretSources {
  return {
    label: 'webhook signing secret',
    envVar: 'TENANCY_NOTIFY_SECRET',
    env: bench.env,
    configKey: 'provision.notify.secret',
    config: bench.rawConfig,
  }
}

/**
 * The `X-Tenancy-Signature` header of a webhook body, or none when no signing secret is set.
 * A secret that is set but empty is refused (an empty HMAC key signs nothing): the event
 * stays in the outbox until the secret is fixed.
 */
async function signatureHeader(bench: Bench, body: string): Promise<Record<string, string>> {
  const secret = await resolveSecret(signingSecretSources(bench))
  if (!secret) return {}
  if (secret.value === '')
    throw new TenancyError(`the webhook signing secret from ${secret.where} is empty; set a non-empty one or unset it`)
  return { 'x-tenancy-signature': signBody(secret.value, body) }
}

/**
 * Sends one event to `provision.notify`, throwing when the receiver does not take it: a
 * webhook gets the event JSON as a POST body with an `X-Tenancy-Event-Id` header, and
 * `X-Tenancy-Signature: sha256=<hex HMAC-SHA256 of the body>` when a signing secret is set
 * (10 s timeout); a command gets the JSON on stdin and in `TENANCY_EVENT_JSON`, the type in
 * `TENANCY_EVENT` and the id in `TENANCY_EVENT_ID` (60 s timeout, or `provision.step_timeout` when that is less).
 */
export async function sendEvent(bench: Bench, target: NotifyTarget, event: OutgoingEvent): Promise<void> {
  if (target.webhook) {
    const response = await fetch(target.webhook, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'user-agent': 'tenancy',
        'x-tenancy-event-id': event.id,
        'x-tenancy-event-type': event.type,
        ...(await signatureHeader(bench, event.payload)),
      },
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
