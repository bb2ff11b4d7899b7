import { createHash } from 'node:crypto'
import type { Kysely } from 'kysely'
import { ownerAlive } from '../util/process-owner.js'
import { now } from './registry.js'
import type { RegistrySchema } from './schema.js'

/**
 * The machines of a shared registry (SPEC §10). A machine is live while one of its workers'
 * heartbeat leases is fresh: each `tenancy worker` holds `worker:<host>:<owner>` and renews it,
 * so a fleet command knows which machines will run the jobs it sends them.
 */

/** The lease a worker of `host` holds while it runs. */
export function workerLeaseName(host: string, owner: string): string {
  return `${WORKER_LEASE_PREFIX}${host}:${owner}`
}

const WORKER_LEASE_PREFIX = 'worker:'

/** The machine a worker lease names; undefined for a lease of a version that did not name it. */
export function workerLeaseHost(name: string): string | undefined {
  if (!name.startsWith(WORKER_LEASE_PREFIX)) return undefined
  const rest = name.slice(WORKER_LEASE_PREFIX.length)
  const colon = rest.indexOf(':')
  // Before machines were named, the lease was `worker:<pid>@<hostname>#…`.
  return colon > 0 && !rest.slice(0, colon).includes('@') ? rest.slice(0, colon) : undefined
}

/** The lease a process takes to start `host`'s background worker, until the worker registers. */
export function workerStartingLeaseName(host: string): string {
  return `worker-starting:${host}`
}

/** The pattern (for `like`) of the leases of `host`'s workers, or of every worker. */
export function workerLeasePattern(host?: string): string {
  return `${WORKER_LEASE_PREFIX}${host === undefined ? '' : `${host}:`}%`
}

/**
 * The machines with a live worker: a fresh lease whose process (when it runs on this very
 * host) is still there, so a worker killed a moment ago does not count.
 */
export async function liveWorkerHosts(db: Kysely<RegistrySchema>, host?: string): Promise<Set<string>> {
  const rows = await db
    .selectFrom('leases')
    .select(['name', 'owner'])
    .where('name', 'like', workerLeasePattern(host))
    .where('expires_at', '>', now())
    .execute()
  const hosts = new Set<string>()
  for (const row of rows) {
    const name = workerLeaseHost(row.name)
    if (name !== undefined && ownerAlive(row.owner) !== false) hosts.add(name)
  }
  return hosts
}

/** The PostgreSQL channel that wakes `host`'s idle workers when a job is queued for it. */
export function jobChannel(host: string): string {
  return `tenancy_jobs_${channelSafe(host)}`
}

/**
 * The PostgreSQL channel that wakes the command `sender` (its lease owner name) waiting on the
 * results of the jobs it sent: listened to before the first job is queued, so no result is missed.
 */
export function resultChannel(sender: string): string {
  return `tenancy_results_${createHash('sha256').update(sender).digest('hex').slice(0, 24)}`
}

/** A channel name is an identifier (quoted, at most 63 bytes): keep it plain and short. */
function channelSafe(host: string): string {
  return host
    .toLowerCase()
    .replace(/[^a-z0-9_]/g, '_')
    .slice(0, 40)
}
