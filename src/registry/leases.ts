import { randomBytes } from 'node:crypto'
import { TenantNotFoundError } from '../errors.js'
import { PROCESS_OWNER, ownerAlive } from '../util/process-owner.js'
import { Registry, now } from './registry.js'

/** How long a lease lasts without renewal; renewed every third of it while work runs. */
export const LEASE_MS = 30_000

export const inFuture = (ms: number): string => new Date(Date.now() + ms).toISOString()

/** What a lease is taken for, when others must tell it apart: `migrate` waits for another `migrate`. */
export type LeasePurpose = 'migrate'

/**
 * A lease owner name unique to this holder: `pid@host#tag`, so liveness can be checked on
 * this host; with a `purpose`, `pid@host#purpose-tag`, so others can tell what holds it.
 */
export function newOwner(purpose?: LeasePurpose): string {
  return `${PROCESS_OWNER}#${purpose ? `${purpose}-` : ''}${randomBytes(3).toString('hex')}`
}

/** The purpose a lease owner was named with (`newOwner('migrate')`), if any. */
export function ownerPurpose(owner: string): LeasePurpose | undefined {
  return /#migrate-[0-9a-f]+$/.test(owner) ? 'migrate' : undefined
}

/** Whether a lease's holder is gone: none, its lease ran out, or its process died on this host. */
export function leaseHolderGone(
  row: { lease_owner: string | null; lease_expires_at: string | null },
  at = now(),
): boolean {
  return (
    !row.lease_owner ||
    (row.lease_expires_at !== null && row.lease_expires_at < at) ||
    ownerAlive(row.lease_owner) === false
  )
}

/** A lease being kept alive; see `keepAlive`. */
export interface KeepAlive {
  /**
   * Aborted once the lease is lost: a renewal found it taken (reason `'taken'`) or failed
   * (reason: the error). Its holder stops at its next safe point.
   */
  readonly signal: AbortSignal
  /** Stops renewing: the holder is done with the lease. */
  stop(): void
}

/**
 * Renews a lease every third of `LEASE_MS` until `stop()`: `renew` extends it and answers
 * whether it is still this holder's. A renewal that finds it taken marks the lease lost
 * (`signal` aborts with `'taken'`) and renewing ends. A renewal that fails (a busy or
 * vanished database) is tried again at the next tick while the lease is still safely
 * ours; once the next try would come after the last good renewal's expiry, the lease
 * counts as lost too (`signal` aborts with the error): a holder that cannot keep its lease
 * must not go on as if it could.
 *
 * @example
 * const renewal = keepAlive(() => renewLease(registry, 'jobs', job.id, owner))
 * try { await work(renewal.signal) } finally { renewal.stop() }
 */
export function keepAlive(renew: () => Promise<boolean>): KeepAlive {
  const lost = new AbortController()
  const every = LEASE_MS / 3
  let stopped = false
  let inFlight = false
  // The lease was taken or extended just before: it holds until LEASE_MS from now.
  let renewedAt = Date.now()
  const markLost = (reason: unknown) => {
    clearInterval(timer)
    // A renewal that was under way when the holder stopped says nothing about the lease.
    if (!stopped) lost.abort(reason)
  }
  const timer = setInterval(() => {
    // One renewal at a time: a slow one (waiting on a lock) is not stacked on.
    if (inFlight) {
      if (Date.now() + every >= renewedAt + LEASE_MS) markLost(new Error('the lease renewal did not finish in time'))
      return
    }
    inFlight = true
    const started = Date.now()
    renew()
      .then(
        (held) => {
          if (!held) return markLost('taken')
          renewedAt = started
        },
        (error: unknown) => {
          if (Date.now() + every >= renewedAt + LEASE_MS) markLost(error)
        },
      )
      .finally(() => {
        inFlight = false
      })
  }, every)
  timer.unref()
  return {
    signal: lost.signal,
    stop() {
      stopped = true
      clearInterval(timer)
    },
  }
}

/** Extends the lease on a tenant or a job; false when it is no longer `owner`'s (another process took it). */
export async function renewLease(
  registry: Registry,
  table: 'tenants' | 'jobs',
  id: number,
  owner: string,
): Promise<boolean> {
  const renewed = await registry.db
    .updateTable(table)
    .set({ lease_expires_at: inFuture(LEASE_MS) })
    .where('id', '=', id)
    .where('lease_owner', '=', owner)
    .executeTakeFirst()
  return Number(renewed.numUpdatedRows) === 1
}

/** A registry, or what opens one (a bench): the lease functions take either. */
export type RegistrySource = Registry | { registry(): Promise<Registry> }

const registryOf = async (source: RegistrySource): Promise<Registry> =>
  source instanceof Registry ? source : source.registry()

/** A tenant's provisioning lease, held by this process. */
export interface TenantLease {
  owner: string
  /** Aborted once the lease is lost (see `KeepAlive.signal`): stop after the current step. */
  readonly signal: AbortSignal
  release(): Promise<void>
}

/** Who holds a tenant's lease that could not be taken, and until when (null: not known). */
export interface LeaseHeld {
  heldBy: string
  until: string | null
}

/**
 * Takes the provisioning lease of a tenant with one conditional update: free, expired, or
 * held by a process on this host that is no longer alive; it is kept alive until released.
 * Returns the holder instead when another live process holds it. Prefer `usingTenantLease`,
 * which always releases.
 */
async function tryTenantLease(
  source: RegistrySource,
  tenantId: number,
  purpose?: LeasePurpose,
  site?: string,
): Promise<TenantLease | LeaseHeld> {
  const registry = await registryOf(source)
  const owner = newOwner(purpose)
  const at = now()
  const taken = await registry.db
    .updateTable('tenants')
    .set({ lease_owner: owner, lease_expires_at: inFuture(LEASE_MS) })
    .where('id', '=', tenantId)
    .$if(site !== undefined, (q) => q.where('site', '=', site!))
    .where((eb) => eb.or([eb('lease_owner', 'is', null), eb('lease_expires_at', '<', at)]))
    .executeTakeFirst()
  if (Number(taken.numUpdatedRows) !== 1) {
    const row = await registry.db
      .selectFrom('tenants')
      .select(['name', 'site', 'lease_owner', 'lease_expires_at'])
      .where('id', '=', tenantId)
      .executeTakeFirst()
    if (!row) {
      throw new TenantNotFoundError(
        undefined,
        'the tenant no longer exists (it was deleted or cleared from the pool meanwhile)',
      )
    }
    if (site !== undefined && row.site !== site) throw siteMovedOn(site, row.site)
    const holder = row.lease_owner
    if (!holder) return { heldBy: 'another process', until: null }
    if (ownerAlive(holder) !== false) return { heldBy: holder, until: row.lease_expires_at }
    // The holder died on this host: take over from exactly that holder.
    const stolen = await registry.db
      .updateTable('tenants')
      .set({ lease_owner: owner, lease_expires_at: inFuture(LEASE_MS) })
      .where('id', '=', tenantId)
      .$if(site !== undefined, (q) => q.where('site', '=', site!))
      .where('lease_owner', '=', holder)
      .executeTakeFirst()
    if (Number(stolen.numUpdatedRows) !== 1) return { heldBy: 'another process', until: null }
  }
  const renewal = keepAlive(() => renewLease(registry, 'tenants', tenantId, owner))
  return {
    owner,
    signal: renewal.signal,
    async release() {
      renewal.stop()
      await registry.db
        .updateTable('tenants')
        .set({ lease_owner: null, lease_expires_at: null })
        .where('id', '=', tenantId)
        .where('lease_owner', '=', owner)
        .execute()
    },
  }
}

/** The error for a tenant leased for its site `site` whose site is now `now` (a pull renamed it meanwhile) or none. */
function siteMovedOn(site: string, now: string | null): TenantNotFoundError {
  return new TenantNotFoundError(
    undefined,
    now
      ? `site "${site}" was just renamed to "${now}" (its pending tenant was taken from the pool); nothing was changed`
      : `site "${site}" no longer belongs to its tenant; nothing was changed`,
  )
}

export interface TenantLeaseOptions {
  purpose?: LeasePurpose
  /**
   * The tenant's site as the caller read it before asking for the lease: the lease is taken
   * only while the tenant's site is still this one, else a `TenantNotFoundError` (a pull can
   * rename a pending tenant's site in between, and the caller would act on the new customer's).
   */
  site?: string
  /**
   * Asked each time another live process holds the lease: true waits a moment and tries
   * again, false gives up (the result is the holder). Without it, gives up at once.
   */
  waitWhile?: (held: LeaseHeld) => boolean
}

/** What `usingTenantLease` gives back: `fn`'s value, or the holder of a lease it could not take. */
export type LeaseOutcome<T> = { taken: true; value: T } | ({ taken: false } & LeaseHeld)

/**
 * Runs `fn` holding a tenant's provisioning lease (see `tryTenantLease`), and always
 * releases it. When another live process holds it, waits while `options.waitWhile` says so,
 * then gives the holder back instead of running `fn`.
 *
 * @example
 * const outcome = await usingTenantLease(bench, tenant.id, {}, (lease) => clear(tenant, lease.owner))
 * if (!outcome.taken) skipped.push({ tenant: tenant.name, reason: `held by ${outcome.heldBy}` })
 */
export async function usingTenantLease<T>(
  source: RegistrySource,
  tenantId: number,
  options: TenantLeaseOptions,
  fn: (lease: TenantLease) => Promise<T>,
): Promise<LeaseOutcome<T>> {
  for (;;) {
    const lease = await tryTenantLease(source, tenantId, options.purpose, options.site)
    if ('owner' in lease) {
      try {
        return { taken: true, value: await fn(lease) }
      } finally {
        await lease.release()
      }
    }
    if (!options.waitWhile?.(lease)) return { taken: false, ...lease }
    await new Promise((resolve) => setTimeout(resolve, 100 + Math.random() * 100))
  }
}
