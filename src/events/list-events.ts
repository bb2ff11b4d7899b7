import type { Bench } from '../bench.js'
import { checkIntegerOption } from '../util/integer-range.js'
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

export interface ListEventsOptions {
  /** Only events not yet delivered. */
  undelivered?: boolean
  /** At most this many (default: all). */
  limit?: number
  /** Skip this many of the newest first. */
  offset?: number
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
 * `tenancy events`: the outbox, newest first: each event's id, type, tenant and time, and its
 * delivery (when, attempts, next attempt, last error). Reads one page of rows.
 *
 * @example
 * const { events, total } = await listEvents(bench, { undelivered: true, limit: 20 })
 */
export async function listEvents(bench: Bench, options: ListEventsOptions = {}): Promise<ListEventsResult> {
  const registry = await bench.registry()
  const base = registry.db
    .selectFrom('events')
    .$if(options.undelivered === true, (q) => q.where('next_attempt_at', 'is not', null))
  const counted = await base.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirst()
  let page = base.selectAll().orderBy('seq', 'desc')
  if (options.limit !== undefined)
    page = page.limit(checkIntegerOption('--limit', options.limit, { min: 1, max: 1_000_000 }))
  if (options.offset) {
    const offset = checkIntegerOption('--offset', options.offset, { min: 0, max: Number.MAX_SAFE_INTEGER })
    // SQLite takes OFFSET only after a LIMIT, and PostgreSQL no negative one: "no limit" is a huge one.
    page = (options.limit === undefined ? page.limit(Number.MAX_SAFE_INTEGER) : page).offset(offset)
  }
  return {
    events: (await page.execute()).map(listing),
    total: Number(counted?.n ?? 0),
    notify: bench.config.provision.notify !== undefined,
  }
}
