import { randomUUID } from 'node:crypto'
import type { Kysely, Selectable, SelectQueryBuilder } from 'kysely'
import type { Bench } from '../bench.js'
import { messageOf } from '../errors.js'
import { claimOneRow } from '../registry/claim-row.js'
import { inFuture, leaseHolderGone, newOwner } from '../registry/leases.js'
import { now } from '../registry/registry.js'
import type { EventsTable, RegistrySchema } from '../registry/schema.js'
import { tenantJson, type TenantRow } from '../registry/tenants.js'
import { faultPoint } from '../util/fault.js'
import { sendEvent } from './send-event.js'

/**
 * What `provision.notify` hears (SPEC §9). A pending tenant is nobody's yet: it is announced
 * once as `pending.created` when the pool has it ready, and then as `tenant.pulled` and
 * `tenant.active` when a sign-up takes it; a pool tenant that fails or is cleared says nothing.
 */
export type EventType =
  /** A tenant finished provisioning, or a sign-up took it from the pool. */
  | 'tenant.active'
  /** A tenant's provisioning failed (the worker: after its last retry). */
  | 'tenant.failed'
  /** A sign-up took a tenant from the pool (`pulled_from` names its placeholder site). */
  | 'tenant.pulled'
  /** `tenant suspend` (`reason` carries `--reason`). */
  | 'tenant.suspended'
  /** `tenant resume`. */
  | 'tenant.resumed'
  /** `tenant delete`: the tenant as it was. */
  | 'tenant.deleted'
  /** `pending-create` (or `createPending`) made a pool tenant ready. */
  | 'pending.created'

export type EventRow = Selectable<EventsTable>

/** Longer than the slowest send (a 60 s notify command), so a live sender never loses its claim. */
const SEND_LEASE_MS = 120_000

/** Seconds before retry `attempt` (1-based): 10 s, doubled each time, at most an hour. */
function retryDelayMs(attempt: number): number {
  return Math.min(3_600_000, 10_000 * 2 ** Math.max(0, attempt - 1))
}

/**
 * Writes an event to the outbox inside the caller's transaction, the one that makes the
 * change it announces, so the change and its announcement commit (or vanish) together.
 * Nothing is written when `provision.notify` is not set. The body is fixed here:
 * `{"id", "type", "at", "tenant": {…}}` (`event` repeats `type`, the name older receivers read).
 */
export async function recordEvent(
  bench: Bench,
  trx: Kysely<RegistrySchema>,
  type: EventType,
  tenant: TenantRow,
  extra: Record<string, unknown> = {},
): Promise<string | undefined> {
  if (!bench.config.provision.notify) return undefined
  const id = randomUUID()
  const at = now()
  const payload = JSON.stringify({ id, type, event: type, at, tenant: tenantJson(tenant), ...extra })
  await trx
    .insertInto('events')
    .values({
      id,
      type,
      tenant_id: tenant.id,
      payload,
      created_at: at,
      delivered_at: null,
      attempts: 0,
      next_attempt_at: at,
      last_error: null,
      lease_owner: null,
      lease_expires_at: null,
    })
    .execute()
  return id
}

export interface DeliverOptions {
  /** Only this tenant's events (a command delivering what it just did). */
  tenantId?: number
  /** Also events still backing off from a failure (`doctor --fix`). */
  evenIfNotDue?: boolean
  /** At most this many sends. */
  limit?: number
  /** No new send starts after this many milliseconds. */
  budgetMs?: number
}

export interface DeliveryResult {
  delivered: number
  failed: { id: string; type: string; error: string }[]
}

/** Narrows a query of the outbox to the events `options` asks to deliver. */
function pendingFor<O>(
  query: SelectQueryBuilder<RegistrySchema, 'events', O>,
  options: DeliverOptions,
  at: string,
): SelectQueryBuilder<RegistrySchema, 'events', O> {
  const narrowed = options.evenIfNotDue
    ? query.where('next_attempt_at', 'is not', null)
    : query.where('next_attempt_at', '<=', at)
  return options.tenantId === undefined ? narrowed : narrowed.where('tenant_id', '=', options.tenantId)
}

/** Claims the next undelivered event for `owner`: atomically, so two processes never send one at once. */
async function claimEvent(
  bench: Bench,
  owner: string,
  after: number,
  options: DeliverOptions,
): Promise<EventRow | undefined> {
  return claimOneRow(await bench.registry(), {
    candidates: (trx: Kysely<RegistrySchema>, at: string) =>
      pendingFor(trx.selectFrom('events').selectAll(), options, at).where('seq', '>', after).orderBy('seq').limit(20),
    table: 'events',
    only: (candidates, event) => candidates.where('seq', '=', event.seq),
    free: (event, at) => leaseHolderGone(event, at),
    take: async (trx, event) => {
      const taken = await trx
        .updateTable('events')
        .set({ lease_owner: owner, lease_expires_at: inFuture(SEND_LEASE_MS) })
        .where('seq', '=', event.seq)
        .where('next_attempt_at', 'is not', null)
        .where((eb) =>
          event.lease_owner === null ? eb('lease_owner', 'is', null) : eb('lease_owner', '=', event.lease_owner),
        )
        .executeTakeFirst()
      return Number(taken.numUpdatedRows) === 1 ? event : undefined
    },
  })
}

/**
 * Delivers undelivered events to `provision.notify`, oldest first, each at least once: it is
 * claimed, sent, then marked delivered; a crash in between leaves it to be sent again, with
 * the same id. A failed send is logged and retried later with backoff. Cheap when nothing
 * is due: one probe of an index.
 */
export async function deliverEvents(bench: Bench, options: DeliverOptions = {}): Promise<DeliveryResult> {
  const result: DeliveryResult = { delivered: 0, failed: [] }
  const target = bench.config.provision.notify
  if (!target) return result
  const registry = await bench.registry()
  // The usual case, nothing due: one probe of the index, no write lock taken.
  if (!(await pendingFor(registry.db.selectFrom('events').select('seq').limit(1), options, now()).executeTakeFirst()))
    return result
  const owner = newOwner()
  const started = performance.now()
  const limit = options.limit ?? Number.POSITIVE_INFINITY
  // Each event once per call: one that fails here waits for a later call.
  let after = 0
  for (
    let sent = 0;
    sent < limit && performance.now() - started < (options.budgetMs ?? Number.POSITIVE_INFINITY);
    sent++
  ) {
    const event = await claimEvent(bench, owner, after, options)
    if (!event) break
    after = event.seq
    const attempts = event.attempts + 1
    try {
      faultPoint('event-before-send')
      await sendEvent(bench, target, event)
      faultPoint('event-after-send')
      await registry.db
        .updateTable('events')
        .set({
          delivered_at: now(),
          next_attempt_at: null,
          attempts,
          last_error: null,
          lease_owner: null,
          lease_expires_at: null,
        })
        .where('seq', '=', event.seq)
        .where('lease_owner', '=', owner)
        .execute()
      result.delivered++
    } catch (error) {
      const tenant = (JSON.parse(event.payload) as { tenant?: { name?: string; site?: string | null } }).tenant
      const cause = error instanceof Error && error.cause ? ` (${messageOf(error.cause)})` : ''
      const message =
        `notifying ${event.type} for tenant "${tenant?.name ?? '?'}" failed: ${messageOf(error)}${cause}; ` +
        `it is sent again later (event ${event.id})`
      await registry.db
        .updateTable('events')
        .set({
          attempts,
          next_attempt_at: inFuture(retryDelayMs(attempts)),
          last_error: message,
          lease_owner: null,
          lease_expires_at: null,
        })
        .where('seq', '=', event.seq)
        .where('lease_owner', '=', owner)
        .execute()
      await registry.logError({ tenant: tenant?.name ?? null, site: tenant?.site ?? null, step: 'notify', message })
      result.failed.push({ id: event.id, type: event.type, error: message })
    }
  }
  return result
}

/** Events not yet delivered, oldest first (for `doctor`). */
export async function undeliveredEvents(bench: Bench): Promise<EventRow[]> {
  const registry = await bench.registry()
  return registry.db.selectFrom('events').selectAll().where('next_attempt_at', 'is not', null).orderBy('seq').execute()
}
