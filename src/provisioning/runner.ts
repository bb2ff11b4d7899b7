import type { Bench } from '../bench.js'
import { failedCommandOutput } from '../util/run-command.js'
import { InterruptedError, TenancyError, messageOf } from '../errors.js'
import { assertHomedHere, assertPlacedHere } from '../sites/site-home.js'
import { machineOfTenant } from '../registry/placement.js'
import { now } from '../registry/registry.js'
import { usingTenantLease, type LeaseHeld, type TenantLease } from '../registry/leases.js'
import { markStep, pendingStepRow, replaceSteps } from '../registry/steps.js'
import { stepJson, type StepJson, type StepRow, type StepStatus, type TenantRow } from '../registry/tenants.js'
import { deliverEvents, recordEvent } from '../events/outbox.js'
import {
  planSteps,
  prefetchStep,
  runStep,
  type PlannedStep,
  type PlannedStepSpec,
  type StepContext,
  type StepOutcome,
} from './steps.js'
import { requireTenant, tenantSteps } from './tenant-record.js'

export type StepEvent =
  | { step: string; phase: 'start' }
  | { step: string; phase: 'done' | 'skipped' | 'already_done'; outcome?: StepOutcome }
  | { step: string; phase: 'failed'; error: string }

export interface ProvisionOptions {
  /** Stops the run: between steps always; inside a step only with `interruptSteps`. */
  signal?: AbortSignal
  /** Ctrl-C at a terminal stops the running step too; SIGTERM to a worker lets it finish. */
  interruptSteps?: boolean
  onStep?: (event: StepEvent) => void
  /** Called once when another live process holds the lease and this one waits for it. */
  onWait?: (holder: string) => void
  /** Send `tenant.failed` when a step fails (the worker does that only after its last retry). */
  notifyFailure?: boolean
  /** false: when another live process holds the tenant, return `busy` instead of waiting. */
  waitForLease?: boolean
  /** Another lease the run depends on (the worker's job lease): once lost, the run stops between steps, `busy`. */
  alsoHeld?: AbortSignal
}

export interface ProvisionResult {
  tenant: string
  site: string | null
  status: 'completed' | 'already_active' | 'failed' | 'interrupted' | 'busy'
  steps: StepJson[]
  error: string | null
  notify_error?: string
}

/**
 * Delivers the events a command just wrote for a tenant, so its receiver hears at once; a
 * failure is a warning for the command's output (the outbox sends it again later).
 */
export async function deliverNow(bench: Bench, tenantId: number): Promise<{ notify_error?: string }> {
  const { failed } = await deliverEvents(bench, { tenantId, limit: 10 })
  return failed.length > 0 ? { notify_error: failed.map((f) => f.error).join('; ') } : {}
}

/**
 * Steps not yet done follow the current `provision.steps`: an operator who fixes a failing
 * `run` command (or removes or adds a step) and runs `provision` again gets what the config
 * now says. A removed step is marked `skipped`; an added one is placed just before the next
 * step of the config the tenant already has, and runs in that order; done steps are history
 * and stay as they are.
 */
async function refreshSteps(bench: Bench, tenantId: number): Promise<void> {
  const registry = await bench.registry()
  const plan = planSteps(bench.config)
  const current = new Map(plan.map((s) => [s.name, JSON.stringify(s.spec)]))
  const rows = await tenantSteps(bench, tenantId)
  const have = new Set(rows.map((r) => r.name))
  const added = new Map<string, PlannedStep[]>()
  let waiting: PlannedStep[] = []
  for (const step of plan) {
    if (!have.has(step.name)) waiting.push(step)
    else if (waiting.length > 0) {
      added.set(step.name, waiting)
      waiting = []
    }
  }
  const updated = rows.map((row) => {
    if (row.status === 'done' || row.status === 'skipped') return row
    const spec = current.get(row.name)
    if (spec === undefined) return { ...row, status: 'skipped', output: 'removed from provision.steps', error: null }
    // Unchanged (as the steps of a tenant recorded a moment ago are): nothing to write.
    return row.spec === spec ? row : { ...row, spec }
  })
  const fresh = (s: PlannedStep) => pendingStepRow(tenantId, s)
  const ordered = [...updated.flatMap((row) => [...(added.get(row.name) ?? []).map(fresh), row]), ...waiting.map(fresh)]
  if (ordered.length === rows.length) {
    for (const [i, row] of updated.entries()) {
      if (row === rows[i]) continue
      const { status, output, error, spec } = row
      await markStep(registry.db, tenantId, row.idx, { status: status as StepStatus, output, error, spec })
    }
    return
  }
  // Steps are numbered by their place in the pipeline: renumbered in one transaction.
  await replaceSteps(registry, tenantId, ordered)
}

/**
 * Whether to wait for a tenant's lease another live process holds (it finishes or dies
 * first): not with `waitForLease: false`; told once through `onWait`; Ctrl-C ends the wait.
 */
function waitForLease(tenant: TenantRow, options: ProvisionOptions): (held: LeaseHeld) => boolean {
  let told = false
  return (held) => {
    if (options.waitForLease === false) return false
    if (!told) options.onWait?.(held.heldBy)
    told = true
    if (options.signal?.aborted) throw new InterruptedError(`waiting for tenant "${tenant.name}"`)
    return true
  }
}

/**
 * Runs or resumes a tenant's pipeline: takes the tenant's lease (one process at a time; a
 * dead holder is taken over), then runs every step not yet done, recording status,
 * attempts, timings, output and error of each. Returns a result; a failed step does not
 * throw. An active tenant is a no-op.
 */
export async function provisionTenant(
  bench: Bench,
  name: string,
  options: ProvisionOptions = {},
): Promise<ProvisionResult> {
  const registry = await bench.registry()
  let tenant = await requireTenant(bench, name)
  const done = async (
    status: ProvisionResult['status'],
    error: string | null,
    extra: Partial<ProvisionResult> = {},
  ): Promise<ProvisionResult> => ({
    tenant: name,
    site: tenant.site,
    status,
    steps: (await tenantSteps(bench, tenant.id)).map(stepJson),
    error,
    ...extra,
  })
  if (tenant.provisioning_status === 'completed') return done('already_active', null)
  const site = tenant.site
  if (!site)
    throw new TenancyError(`tenant "${name}" has no site to provision; delete it and create it again with --site`)
  const siteRow = await registry.getSite(site)
  if (siteRow) assertHomedHere(bench, registry.kind, siteRow, `provision ${name}`)
  // Not made yet, it may be placed on another machine (`tenant create --host`): that one makes it.
  else if (registry.kind === 'postgres')
    assertPlacedHere(bench, name, await machineOfTenant(registry.db, tenant.id), `provision ${name}`)
  // The steps write secrets: a wrong key is exit 2 before the tenant is touched.
  await bench.secretBox()

  // The pipeline itself, under the tenant's lease.
  const runPipeline = async (lease: TenantLease): Promise<ProvisionResult> => {
    let current: StepRow | undefined
    try {
      tenant = await requireTenant(bench, name)
      if (tenant.provisioning_status === 'completed') return done('already_active', null)
      await registry.db
        .updateTable('tenants')
        .set({ provisioning_status: 'in_progress', error: null, updated_at: now() })
        .where('id', '=', tenant.id)
        .execute()
      await refreshSteps(bench, tenant.id)
      const steps = await tenantSteps(bench, tenant.id)
      prefetchSteps({ bench, tenant: { ...tenant, site } }, steps)
      for (const row of steps) {
        if (row.status === 'done' || row.status === 'skipped') {
          options.onStep?.({ step: row.name, phase: 'already_done' })
          continue
        }
        if (options.signal?.aborted) throw new InterruptedError(`provisioning of tenant "${name}"`)
        if (lease.signal.aborted) return done('busy', leaseLost(name, lease.signal.reason))
        if (options.alsoHeld?.aborted) return done('busy', leaseLost(name, options.alsoHeld.reason))
        current = row
        const step: PlannedStep = { name: row.name, spec: JSON.parse(row.spec ?? 'null') as PlannedStepSpec }
        if (!step.spec)
          throw new TenancyError(
            `step "${row.name}" of tenant "${name}" has no definition in the registry; run "tenancy doctor"`,
          )
        await markStep(registry.db, tenant.id, row.idx, {
          status: 'running',
          attempts: row.attempts + 1,
          started_at: now(),
          finished_at: null,
          error: null,
        })
        options.onStep?.({ step: row.name, phase: 'start' })
        // Steps that read the tenant (stored secrets, api_key) see the latest row.
        const fresh = { ...(await requireTenant(bench, name)), site }
        const outcome = await runStep(
          { bench, tenant: fresh, signal: options.interruptSteps ? options.signal : undefined },
          step,
        )
        await markStep(registry.db, tenant.id, row.idx, {
          status: outcome.skipped ? 'skipped' : 'done',
          finished_at: now(),
          output: outcome.output ?? null,
        })
        options.onStep?.({ step: row.name, phase: outcome.skipped ? 'skipped' : 'done', outcome })
        current = undefined
      }
      tenant = await requireTenant(bench, name)
      return done('completed', null, await deliverNow(bench, tenant.id))
    } catch (error) {
      const interrupted = error instanceof InterruptedError || options.signal?.aborted === true
      const message = interrupted
        ? `interrupted${current ? ` during step "${current.name}"` : ''}; run "tenancy provision ${name}" to resume`
        : `${current ? `step "${current.name}" failed: ` : ''}${messageOf(error)}`
      if (current) {
        await markStep(registry.db, tenant.id, current.idx, {
          status: interrupted ? 'pending' : 'failed',
          finished_at: now(),
          error: message,
          output: failedCommandOutput(error) ?? null,
        })
        options.onStep?.({ step: current.name, phase: 'failed', error: message })
      }
      // The failure and its `tenant.failed` event commit together.
      await registry.writeTransaction(async (trx) => {
        await trx
          .updateTable('tenants')
          .set({ provisioning_status: 'failed', error: message, updated_at: now() })
          .where('id', '=', tenant.id)
          .execute()
        const row = await trx.selectFrom('tenants').selectAll().where('id', '=', tenant.id).executeTakeFirst()
        if (row && !interrupted && options.notifyFailure !== false && row.pending_since === null)
          await recordEvent(bench, trx, 'tenant.failed', row)
      })
      await registry.logError({ tenant: name, site: tenant.site, step: current?.name ?? null, message })
      tenant = await requireTenant(bench, name)
      return done(interrupted ? 'interrupted' : 'failed', message, await deliverNow(bench, tenant.id))
    }
  }
  const leased = await usingTenantLease(registry, tenant.id, { waitWhile: waitForLease(tenant, options) }, runPipeline)
  return leased.taken ? leased.value : done('busy', null)
}

/**
 * Starts loading what the steps still to run will need (apps' migrations), so that it loads while
 * the steps before them wait (create-site, on the Administrator's password hash). A step
 * whose spec cannot be read is left to the run, which reports it.
 */
function prefetchSteps(ctx: StepContext, rows: readonly StepRow[]): void {
  for (const row of rows) {
    if (row.status === 'done' || row.status === 'skipped') continue
    try {
      const spec = JSON.parse(row.spec ?? 'null') as PlannedStepSpec | null
      if (spec) prefetchStep(ctx, { name: row.name, spec })
    } catch {}
  }
}

/** Why a run stopped that lost its lease: another process took it over, or renewing it failed. */
function leaseLost(name: string, reason: unknown): string {
  // Another process took over (this one looked dead to it): the tenant is left to it.
  if (reason === 'taken') return `another process took over the provisioning of tenant "${name}"`
  return (
    `the lease on tenant "${name}" could not be renewed (${messageOf(reason)}); ` +
    `run "tenancy provision ${name}" to resume`
  )
}
