import type { Bench } from '../bench.js'
import { pageByKey } from '../registry/paged-rows.js'
import { checkPage, collect, mapRows, type Listing, type PageOptions } from '../util/listing.js'
import type { EventRow } from './outbox.js'

/** One event as `tenancy events` shows it. */
export interface EventListing {
  id: string
  type: string
  /** The tenant's name and site as the event names them (the tenant may be gone since). */
  tenant: string | null
  site: string | null
  at: string
  delivered: boolean
  delivered_at: string | null
  attempts: number
  /** When it is tried again; null once delivered. */
  next_attempt_at: string | null
  last_error: string | null
}

export interface ListEventsOptions extends PageOptions {
  /** Only events not yet delivered. */
  undelivered?: boolean
}

export interface ListEventsResult {
  events: EventListing[]
  /** How many events match, beyond the page shown too. */
  total: number
  /** Whether `provision.notify` is set (without it, no event is recorded). */
  notify: boolean
}

function listing(row: EventRow): EventListing {
  let tenant: { name?: unknown; site?: unknown } | undefined
  try {
    tenant = (JSON.parse(row.payload) as { tenant?: { name?: unknown; site?: unknown } }).tenant
  } catch {
    tenant = undefined
  }
  return {
    id: row.id,
    type: row.type,
    tenant: typeof tenant?.name === 'string' ? tenant.name : null,
    site: typeof tenant?.site === 'string' ? tenant.site : null,
    at: row.created_at,
    delivered: row.delivered_at !== null,
    delivered_at: row.delivered_at,
    attempts: row.attempts,
    next_attempt_at: row.next_attempt_at,
    last_error: row.last_error,
  }
}

/**
 * `tenancy events`: how many events of the outbox match, and one page of them (`limit`,
 * `offset`), newest first: each event's id, type, tenant and time, and its delivery (when,
 * attempts, next attempt, last error), read in batches as they are iterated; `notify` says
 * whether `provision.notify` is set (without it, no event is recorded).
 */
export async function eventListing(
  bench: Bench,
  options: ListEventsOptions = {},
): Promise<Listing<EventListing> & { notify: boolean }> {
  const page = checkPage(options)
  const registry = await bench.registry()
  const matching = registry.db
    .selectFrom('events')
    .$if(options.undelivered === true, (q) => q.where('next_attempt_at', 'is not', null))
  const counted = await matching.select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()
  const rows = pageByKey(matching.selectAll(), { column: 'seq', order: 'desc' }, page)
  return {
    total: Number(counted.n),
    offset: page.offset,
    rows: mapRows(rows, listing),
    notify: bench.config.provision.notify !== undefined,
  }
}

/**
 * `tenancy events` as one result: the page `eventListing` reads (every match without `limit`).
 *
 * @example
 * const { events, total } = await listEvents(bench, { undelivered: true, limit: 20 })
 */
export async function listEvents(bench: Bench, options: ListEventsOptions = {}): Promise<ListEventsResult> {
  const { total, rows, notify } = await eventListing(bench, options)
  return { events: await collect(rows), total, notify }
}
