import type { Bench } from '../bench.js'
import { checkIntegerOption } from '../util/integer-range.js'
import { onMachine } from '../registry/placement.js'

/** The pool's pending tenants by state (`poolStatus`). */
export interface PoolStatus {
  ready: number
  provisioning: number
  failed: number
}

/**
 * The pool size to maintain: `--count`, else TENANCY_PENDING_COUNT / `pending.count` (already merged
 * into the config).
 */
export function poolTarget(bench: Bench, count?: number): number {
  if (count === undefined) return bench.config.pending.count
  return checkIntegerOption('--count', count, { min: 0, max: 100_000 })
}

/**
 * Counts of the pool: ready to pull, and still being provisioned (or waiting to be); with
 * `host`, of that machine's pool only (on a shared registry, see `reservePending`).
 */
export async function poolStatus(bench: Bench, host?: string): Promise<PoolStatus> {
  const registry = await bench.registry()
  const rows = await registry.db
    .selectFrom('tenants')
    .select(['provisioning_status', (eb) => eb.fn.countAll<number>().as('n')])
    .where('pending_since', 'is not', null)
    .$if(host !== undefined && registry.kind === 'postgres', (q) => q.where(onMachine(host!, host === bench.host)))
    .groupBy('provisioning_status')
    .execute()
  const count = (statuses: string[]) =>
    rows.filter((r) => statuses.includes(r.provisioning_status)).reduce((n, r) => n + Number(r.n), 0)
  return {
    ready: count(['completed']),
    provisioning: count(['not_started', 'queued', 'in_progress']),
    failed: count(['failed']),
  }
}

/** `pendingCount()`: how many pending tenants there are, ready or still being provisioned. */
export async function pendingCount(bench: Bench): Promise<number> {
  const status = await poolStatus(bench)
  return status.ready + status.provisioning + status.failed
}
