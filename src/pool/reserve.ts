import { randomBytes } from 'node:crypto'
import type { Kysely } from 'kysely'
import type { Bench } from '../bench.js'
import { TenancyError, TenantNotFoundError } from '../errors.js'
import { assertSiteName } from '../names.js'
import { now } from '../registry/registry.js'
import type { RegistrySchema } from '../registry/schema.js'
import { provisionTenant, type ProvisionResult } from '../provisioning/runner.js'
import { preflight, type PlannedStep } from '../provisioning/steps.js'
import { requireTenant } from '../provisioning/tenant-record.js'
import { tenantJson, type TenantJson } from '../registry/tenants.js'
import { insertTenant } from '../provisioning/tenants.js'
import { poolStatus, poolTarget, type PoolStatus } from './status.js'
import { notHomedElsewhere } from '../sites/site-home.js'

/** Default attributes for pending tenants: a function in code, or `pending.attributes` in the config. */
export type PendingAttributesHook = () => Record<string, unknown> | Promise<Record<string, unknown>>

export interface PoolOptions {
  getPendingAttributes?: PendingAttributesHook
}

async function defaultAttributes(bench: Bench, options: PoolOptions): Promise<Record<string, unknown>> {
  return { ...(bench.config.pending.attributes ?? {}), ...((await options.getPendingAttributes?.()) ?? {}) }
}

function placeholder(bench: Bench): { name: string; site: string } {
  const name = `pending-${randomBytes(5).toString('hex')}`
  return { name, site: assertSiteName(`${name}.${bench.config.default_site_domain}`) }
}

/** Inserts one pending tenant under a new placeholder name, inside the caller's write transaction; returns the name. */
async function insertPending(
  trx: Kysely<RegistrySchema>,
  bench: Bench,
  data: Record<string, unknown>,
  steps: PlannedStep[],
): Promise<string> {
  const { name, site } = placeholder(bench)
  await insertTenant(
    trx,
    { name, site, data, provisioningStatus: 'queued', pendingSince: now(), queueJob: false },
    steps,
  )
  return name
}

/** The placeholder name a pending tenant had, from its placeholder site (`pending-….<domain>`). */
export function placeholderName(site: string): string {
  return site.split('.')[0]!
}

/**
 * Reserves the shortfall of the pool in one write transaction: counts pending tenants
 * (ready or not) and inserts only what is missing, so overlapping runs never push the pool
 * over `target`. Returns the names reserved.
 */
export async function reservePending(bench: Bench, target: number, options: PoolOptions = {}): Promise<string[]> {
  const steps = await preflight(bench, { provisionsHere: true })
  const data = await defaultAttributes(bench, options)
  const registry = await bench.registry()
  return registry.writeTransaction(async (trx) => {
    const row = await trx
      .selectFrom('tenants')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('pending_since', 'is not', null)
      .executeTakeFirst()
    const shortfall = Math.max(0, target - Number(row?.n ?? 0))
    const names: string[] = []
    for (let i = 0; i < shortfall; i++) names.push(await insertPending(trx, bench, data, steps))
    return names
  })
}

export interface PendingCreateResult {
  target: number
  reserved: string[]
  provisioned: string[]
  failed: { tenant: string; error: string }[]
  pool: PoolStatus
}

/**
 * `tenancy pending-create`: keeps `target` pending tenants. Reserves the shortfall, then
 * provisions what it reserved and any reservation a run that died left behind (skipping
 * tenants another live process is provisioning), `concurrency` at a time.
 */
export async function pendingCreate(
  bench: Bench,
  options: PoolOptions & {
    count?: number
    concurrency?: number
    signal?: AbortSignal
    onProvisioned?: (r: ProvisionResult) => void
  } = {},
): Promise<PendingCreateResult> {
  const target = poolTarget(bench, options.count)
  const reserved = await reservePending(bench, target, options)
  const registry = await bench.registry()
  const unfinished = await registry.db
    .selectFrom('tenants')
    .select('name')
    .where('pending_since', 'is not', null)
    .where('provisioning_status', 'in', ['not_started', 'queued', 'in_progress', 'failed'])
    // Another machine's pool tenants are its to finish (their sites are out of reach here).
    .$if(registry.kind === 'postgres', (q) => q.where(notHomedElsewhere(bench.host)))
    .orderBy('pending_since')
    .execute()
  const queue = [...new Set([...reserved, ...unfinished.map((t) => t.name)])]
  const provisioned: string[] = []
  const failed: { tenant: string; error: string }[] = []
  const lane = async () => {
    for (let name = queue.shift(); name !== undefined && !options.signal?.aborted; name = queue.shift()) {
      let result: ProvisionResult
      try {
        result = await provisionTenant(bench, name, { signal: options.signal, waitForLease: false })
      } catch (error) {
        // Cleared or pulled meanwhile: nothing to do for it here.
        if (error instanceof TenantNotFoundError) continue
        throw error
      }
      options.onProvisioned?.(result)
      if (result.status === 'completed') provisioned.push(name)
      else if (result.status === 'failed') failed.push({ tenant: name, error: result.error ?? 'unknown error' })
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, options.concurrency ?? 1) }, lane))
  return { target, reserved, provisioned, failed, pool: await poolStatus(bench) }
}

/** `createPending(attrs)`: adds one pending tenant to the pool now, whatever the pool's size. */
export async function createPending(
  bench: Bench,
  attrs: Record<string, unknown> = {},
  options: PoolOptions = {},
): Promise<TenantJson> {
  const steps = await preflight(bench, { provisionsHere: true })
  const data = { ...(await defaultAttributes(bench, options)), ...attrs }
  const registry = await bench.registry()
  const name = await registry.writeTransaction((trx) => insertPending(trx, bench, data, steps))
  const result = await provisionTenant(bench, name)
  if (result.status !== 'completed')
    throw new TenancyError(
      `creating a pending tenant failed: ${result.error}; ` +
        `it stays in the pool, run "tenancy pending-create" to finish it`,
    )
  return tenantJson(await requireTenant(bench, name))
}
