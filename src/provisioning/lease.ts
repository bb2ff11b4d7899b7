import { randomBytes } from 'node:crypto'
import type { Bench } from '../bench.js'
import { usageError } from '../errors.js'
import { now } from '../registry/registry.js'
import { PROCESS_OWNER, ownerAlive } from '../util/process-owner.js'

/** How long a lease lasts without renewal; renewed every third of it while work runs. */
export const LEASE_MS = 30_000

export const inFuture = (ms: number): string => new Date(Date.now() + ms).toISOString()

/**
 * A lease owner name unique to this holder: `pid@host#tag`, so liveness can be checked on
 * this host; with a `purpose`, `pid@host#purpose-tag`, so others can tell what holds it.
 */
export function newOwner(purpose?: 'migrate'): string {
  return `${PROCESS_OWNER}#${purpose ? `${purpose}-` : ''}${randomBytes(3).toString('hex')}`
}

/** The purpose a lease owner was named with (`newOwner('migrate')`), if any. */
export function ownerPurpose(owner: string): 'migrate' | undefined {
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

export interface TenantLease {
  owner: string
  /** True once a renewal found the lease taken: stop after the current step. */
  readonly lost: boolean
  release(): Promise<void>
}

/**
 * Takes the provisioning lease of a tenant with one conditional update: free, expired, or
 * held by a process on this host that is no longer alive. Returns undefined (with the
 * holder) when another live process holds it.
 */
export async function tryTenantLease(
  bench: Bench,
  tenantId: number,
  purpose?: 'migrate',
): Promise<TenantLease | { heldBy: string; until: string | null }> {
  const registry = await bench.registry()
  const owner = newOwner(purpose)
  const at = now()
  const taken = await registry.db
    .updateTable('tenants')
    .set({ lease_owner: owner, lease_expires_at: inFuture(LEASE_MS) })
    .where('id', '=', tenantId)
    .where((eb) => eb.or([eb('lease_owner', 'is', null), eb('lease_expires_at', '<', at)]))
    .executeTakeFirst()
  if (Number(taken.numUpdatedRows) !== 1) {
    const row = await registry.db
      .selectFrom('tenants')
      .select(['name', 'lease_owner', 'lease_expires_at'])
      .where('id', '=', tenantId)
      .executeTakeFirst()
    if (!row) throw usageError('the tenant no longer exists (it was deleted or cleared from the pool meanwhile)')
    const holder = row.lease_owner
    if (!holder) return { heldBy: 'another process', until: null }
    if (ownerAlive(holder) !== false) return { heldBy: holder, until: row.lease_expires_at }
    // The holder died on this host: take over from exactly that holder.
    const stolen = await registry.db
      .updateTable('tenants')
      .set({ lease_owner: owner, lease_expires_at: inFuture(LEASE_MS) })
      .where('id', '=', tenantId)
      .where('lease_owner', '=', holder)
      .executeTakeFirst()
    if (Number(stolen.numUpdatedRows) !== 1) return { heldBy: 'another process', until: null }
  }
  let lost = false
  const timer = setInterval(() => {
    registry.db
      .updateTable('tenants')
      .set({ lease_expires_at: inFuture(LEASE_MS) })
      .where('id', '=', tenantId)
      .where('lease_owner', '=', owner)
      .executeTakeFirst()
      .then((r) => {
        if (Number(r.numUpdatedRows) !== 1) lost = true
      })
      .catch(() => {})
  }, LEASE_MS / 3)
  timer.unref()
  return {
    owner,
    get lost() {
      return lost
    },
    async release() {
      clearInterval(timer)
      await registry.db
        .updateTable('tenants')
        .set({ lease_owner: null, lease_expires_at: null })
        .where('id', '=', tenantId)
        .where('lease_owner', '=', owner)
        .execute()
    },
  }
}
