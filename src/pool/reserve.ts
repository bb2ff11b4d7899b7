import { randomBytes } from 'node:crypto'
import type { Kysely } from 'kysely'
import type { Bench } from '../bench.js'
import { TenancyError, TenantNotFoundError } from '../errors.js'
import { assertSiteName } from '../names.js'
import { now } from '../registry/registry.js'
import type { RegistrySchema } from '../registry/schema.js'
import { provisionTenant, type ProvisionResult, type StepEvent } from '../provisioning/runner.js'
import { preflight, type PlannedStep } from '../provisioning/steps.js'
import { EarlyHashes } from '../provisioning/steps/create-site.js'
import { requireTenant } from '../provisioning/tenant-record.js'
import { tenantJson, type TenantJson } from '../registry/tenants.js'
import { insertTenant } from '../provisioning/tenants.js'
import { poolStatus, poolTarget, type PoolStatus } from './status.js'
import { placementHost } from '../sites/site-home.js'
import { onMachine } from '../registry/placement.js'
import { liveWorkerHosts } from '../registry/hosts.js'
import { inFuture } from '../registry/leases.js'
import type { RegistryKind } from '../registry/registry-migrations.js'
import { faultPoint } from '../util/fault.js'

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

/**
 * How long a reservation's job waits before this machine's worker may take it: the run that
 * reserved it provisions it meanwhile, so only a reservation whose run stopped is left to the worker.
 */
export const RESERVATION_GRACE_MS = 600_000

/**
 * Where a reservation is placed on a shared registry: a job for `host`'s workers, so every
 * machine counts and finishes only its own pool. For another machine the job is due at once
 * (its worker provisions it); for this one after `RESERVATION_GRACE_MS` (this run does).
 */
interface ReservationPlace {
  host: string
  dueAt?: string
}

/** Inserts one pending tenant under a new placeholder name, inside the caller's write transaction; returns the name. */
async function insertPending(
  trx: Kysely<RegistrySchema>,
  bench: Bench,
  data: Record<string, unknown>,
  steps: PlannedStep[],
  place?: ReservationPlace,
): Promise<string> {
  const { name, site } = placeholder(bench)
  await insertTenant(
    trx,
    {
      name,
      site,
      data,
      provisioningStatus: 'queued',
      pendingSince: now(),
      queueJob: place !== undefined,
      jobHost: place?.host,
      jobDueAt: place?.dueAt,
    },
    steps,
  )
  return name
}

/** Where this machine's reservations go on a shared registry (undefined on SQLite: one machine, no job). */
function placeHere(bench: Bench, kind: RegistryKind): ReservationPlace | undefined {
  return kind === 'postgres' ? { host: bench.host, dueAt: inFuture(RESERVATION_GRACE_MS) } : undefined
}

/** The placeholder name a pending tenant had, from its placeholder site (`pending-….<domain>`). */
export function placeholderName(site: string): string {
  return site.split('.')[0]!
}

/**
 * Reserves the shortfall of `host`'s pool (this machine's by default) in one write
 * transaction: counts its pending tenants (ready or not) and inserts only what is missing, so
 * overlapping runs never push the pool over `target`. On a shared registry each machine keeps
 * its own pool: a pending tenant counts for the machine it belongs to (`onMachine`), and a
 * reservation is placed on `host` by its job. Returns the names reserved.
 */
export async function reservePending(
  bench: Bench,
  target: number,
  options: PoolOptions = {},
  host = bench.host,
): Promise<string[]> {
  const here = host === bench.host
  const steps = await preflight(bench, { provisionsHere: here })
  const data = await defaultAttributes(bench, options)
  const registry = await bench.registry()
  const place = here ? placeHere(bench, registry.kind) : { host }
  return registry.writeTransaction(async (trx) => {
    const row = await trx
      .selectFrom('tenants')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('pending_since', 'is not', null)
      .$if(registry.kind === 'postgres', (q) => q.where(onMachine(host, here)))
      .executeTakeFirst()
    const shortfall = Math.max(0, target - Number(row?.n ?? 0))
    const names: string[] = []
    for (let i = 0; i < shortfall; i++) names.push(await insertPending(trx, bench, data, steps, place))
    return names
  })
}

/**
 * After this run provisioned one of this machine's reservations: done, its job goes (the site's
 * row says where it lives now); failed, its job is marked failed as a worker's last attempt
 * would be (the next pending-create or doctor takes it up). A job a worker is running is its own.
 */
async function settleReservationJob(db: Kysely<RegistrySchema>, tenant: string, result: ProvisionResult) {
  const ofTenant = db.selectFrom('tenants').select('id').where('name', '=', tenant)
  if (result.status === 'completed' || result.status === 'already_active')
    await db.deleteFrom('jobs').where('tenant_id', 'in', ofTenant).where('status', '!=', 'running').execute()
  else if (result.status === 'failed')
    await db
      .updateTable('jobs')
      .set({ status: 'failed', last_error: result.error, updated_at: now() })
      .where('tenant_id', 'in', ofTenant)
      .where('status', 'in', ['queued', 'retry'])
      .execute()
}

export interface PendingCreateResult {
  target: number
  /** The machine whose pool this is. */
  host: string
  /** `--host` another machine: whether a worker of it is running to provision what was reserved. */
  worker_live?: boolean
  reserved: string[]
  provisioned: string[]
  failed: { tenant: string; error: string }[]
  pool: PoolStatus
}

/**
 * `tenancy pending-create`: keeps `target` pending tenants on this machine. Reserves the
 * shortfall, then provisions what it reserved and any reservation a run that died left behind
 * (skipping tenants another live process is provisioning), `concurrency` at a time. With
 * `host` another machine (a shared registry), it only reserves that machine's shortfall,
 * queued for its workers: nothing is provisioned here.
 */
export async function pendingCreate(
  bench: Bench,
  options: PoolOptions & {
    count?: number
    concurrency?: number
    signal?: AbortSignal
    /** Called once with the tenants this run provisions (what it reserved, then what earlier runs left), before the first starts. */
    onStart?: (tenants: readonly string[]) => void
    /** Each step event of each tenant provisioned, as `provisionTenant` gives them (tenants run `concurrency` at once). */
    onStep?: (tenant: string, event: StepEvent) => void
    /** Called as each tenant's provisioning ends: `done` of `total` ended (one cleared or pulled meanwhile counts as ended). */
    onProvisioned?: (r: ProvisionResult, done: number, total: number) => void
    host?: string
  } = {},
): Promise<PendingCreateResult> {
  const target = poolTarget(bench, options.count)
  const registry = await bench.registry()
  const host = options.host === undefined ? bench.host : placementHost(bench, registry.kind, options.host)
  const reserved = await reservePending(bench, target, options, host)
  faultPoint('pending-after-reserve')
  if (host !== bench.host) {
    const worker_live = (await liveWorkerHosts(registry.db, host)).has(host)
    return { target, host, worker_live, reserved, provisioned: [], failed: [], pool: await poolStatus(bench, host) }
  }
  const unfinished = await registry.db
    .selectFrom('tenants')
    .select('name')
    .where('pending_since', 'is not', null)
    .where('provisioning_status', 'in', ['not_started', 'queued', 'in_progress', 'failed'])
    // Another machine's pool tenants are its to finish (their sites are, or will be, out of reach here).
    .$if(registry.kind === 'postgres', (q) => q.where(onMachine(bench.host, true)))
    .orderBy('pending_since')
    .execute()
  const queue = [...new Set([...reserved, ...unfinished.map((t) => t.name)])]
  const total = queue.length
  options.onStart?.(queue.slice())
  let done = 0
  const provisioned: string[] = []
  const failed: { tenant: string; error: string }[] = []
  // Each tenant's Administrator hash is started as the tenant before it starts (the first ones'
  // at once): its scrypt runs on the thread pool while that tenant is provisioned.
  const early = new EarlyHashes(bench)
  const lane = async () => {
    for (let name = queue.shift(); name !== undefined && !options.signal?.aborted; name = queue.shift()) {
      const tenant = name
      await early.prepare(tenant)
      await early.prepare(queue[0])
      faultPoint('pending-after-prepare')
      let result: ProvisionResult
      try {
        result = await provisionTenant(bench, tenant, {
          signal: options.signal,
          waitForLease: false,
          onStep: options.onStep && ((event) => options.onStep!(tenant, event)),
        })
      } catch (error) {
        // Cleared or pulled meanwhile: nothing to do for it here.
        if (error instanceof TenantNotFoundError) {
          done++
          continue
        }
        throw error
      }
      if (registry.kind === 'postgres') await settleReservationJob(registry.db, name, result)
      options.onProvisioned?.(result, ++done, total)
      if (result.status === 'completed') provisioned.push(name)
      else if (result.status === 'failed') failed.push({ tenant: name, error: result.error ?? 'unknown error' })
    }
  }
  try {
    await Promise.all(Array.from({ length: Math.max(1, options.concurrency ?? 1) }, lane))
  } finally {
    // Those started for tenants not provisioned after all (stopped, cleared, made already).
    await early.discardAll()
  }
  return { target, host, reserved, provisioned, failed, pool: await poolStatus(bench, host) }
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
  const name = await registry.writeTransaction((trx) =>
    insertPending(trx, bench, data, steps, placeHere(bench, registry.kind)),
  )
  const result = await provisionTenant(bench, name)
  if (registry.kind === 'postgres') await settleReservationJob(registry.db, name, result)
  if (result.status !== 'completed')
    throw new TenancyError(
      `creating a pending tenant failed: ${result.error}; ` +
        `it stays in the pool, run "tenancy pending-create" to finish it`,
    )
  return tenantJson(await requireTenant(bench, name))
}
