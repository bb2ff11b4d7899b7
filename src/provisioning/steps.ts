import type { Bench } from '../bench.js'
import { DEFAULT_STEPS, type BenchConfig, type PipelineStepConfig } from '../config/config.js'
import { usageError } from '../errors.js'
import { resolveInstallOrder } from '../apps/manifest.js'
import { resolveServerAdmin } from '../sites/server-admin.js'
import { getDriver } from '../databases/index.js'
import { activate } from './steps/activate.js'
import { apiKeys } from './steps/api-keys.js'
import { apiUser, apiUserFor } from './steps/api-user.js'
import { createSite } from './steps/create-site.js'
import { developerMode } from './steps/developer-mode.js'
import { installApp } from './steps/install-app.js'
import { runCommandStep } from './steps/run.js'
import type { StepContext, StepKind, StepOutcome } from './steps/step-kind.js'

export { apiUserFor } from './steps/api-user.js'
export type { StepContext, StepOutcome } from './steps/step-kind.js'

/**
 * Every kind of pipeline step, by the `kind` its planned steps store. A new kind is one
 * file in `steps/` and one entry here; the order is the one the unknown-step message
 * lists them in.
 */
export const STEP_KINDS = {
  'create-site': createSite,
  'developer-mode': developerMode,
  'install-app': installApp,
  'api-user': apiUser,
  'api-keys': apiKeys,
  activate,
  run: runCommandStep,
}

type SpecOf<K> = K extends StepKind<infer S> ? S : never

/** One step of the pipeline, as stored with the tenant: its kind and what that kind needs. */
export type PlannedStepSpec = {
  [K in keyof typeof STEP_KINDS]: SpecOf<(typeof STEP_KINDS)[K]>
}[keyof typeof STEP_KINDS]

export interface PlannedStep {
  name: string
  spec: PlannedStepSpec
}

/** The table as the pipeline reads it: each kind's spec is its own (the key is its `kind`). */
const KINDS = Object.entries(STEP_KINDS) as [string, StepKind<PlannedStepSpec>][]
const kindOf = (spec: PlannedStepSpec) => STEP_KINDS[spec.kind] as StepKind<PlannedStepSpec>

/** The steps one `provision.steps` entry stands for; undefined when no kind knows it. */
function planEntry(item: PipelineStepConfig, config: BenchConfig): PlannedStep[] | undefined {
  for (const [, kind] of KINDS) {
    const planned = kind.plan(item, config)
    if (planned) return planned
  }
  return undefined
}

/**
 * The pipeline for new tenants: `provision.steps` when set, else the seven default steps
 * with one `install-app` per `provision.apps`. Checked here so a bad list is a usage error
 * before any tenant is recorded.
 */
export function planSteps(config: BenchConfig): PlannedStep[] {
  const items = config.provision.steps ?? DEFAULT_STEPS
  const steps: PlannedStep[] = []
  const names = new Set<string>()
  for (const item of items) {
    const planned = planEntry(item, config)
    if (!planned) {
      const usage = KINDS.flatMap(([, kind]) => kind.usage)
      throw usageError(
        `provision.steps: unknown step "${String(item)}"; use ${usage.slice(0, -1).join(', ')} or ${usage.at(-1)}`,
      )
    }
    for (const { name, spec } of planned) {
      let unique = name
      for (let n = 2; names.has(unique); n++) unique = `${name} (${n})`
      names.add(unique)
      steps.push({ name: unique, spec })
    }
  }
  const once = steps.filter((s) => kindOf(s.spec).once)
  const twice = once.find((s, i) => once.findIndex((t) => t.spec.kind === s.spec.kind) !== i)
  if (twice) throw usageError(`provision.steps: "${twice.spec.kind}" is listed twice; give each built-in step once`)
  const at = (kind: string) => steps.findIndex((s) => s.spec.kind === kind)
  for (const [kind, { after }] of KINDS) {
    if (after && at(kind) !== -1 && (at(after.kind) === -1 || at(after.kind) > at(kind))) {
      throw usageError(`provision.steps: "${kind}" needs "${after.kind}" before it (${after.because})`)
    }
  }
  if (steps[0]?.spec.kind !== 'create-site') throw usageError('provision.steps must start with "create-site"')
  if (steps[steps.length - 1]?.spec.kind !== 'activate') throw usageError('provision.steps must end with "activate"')
  return steps
}

/**
 * Checks a bench config the way the pipeline will use it: the steps, the apps they install
 * (present, with their requirements) and the API user pattern. `set-config -g` runs it on
 * the config it is about to write, so cron's next `pending-create` cannot be broken by it.
 */
export function checkPipeline(config: BenchConfig, apps: { appsPath: string }): PlannedStep[] {
  const steps = planSteps(config)
  resolveInstallOrder(
    apps,
    steps.flatMap((s) => (s.spec.kind === 'install-app' ? [s.spec.app] : [])),
  )
  const template = config.provision.api_user
  try {
    apiUserFor(config, { name: 'acme', site: 'acme.localhost' })
  } catch (error) {
    throw usageError(
      `provision.api_user ${JSON.stringify(template)} does not make an email address; ` +
        `use a pattern such as "api@{site}"`,
      error,
    )
  }
  return steps
}

/**
 * Checks, before a tenant is recorded, what the pipeline will need: a valid pipeline, its
 * apps, a database driver for `db.type`, the right encryption key, and (when this process
 * is about to provision on a database server) the server's admin password.
 */
export async function preflight(bench: Bench, options: { provisionsHere?: boolean } = {}): Promise<PlannedStep[]> {
  const steps = checkPipeline(bench.config, bench)
  const type = bench.config.db.type
  const driver = await getDriver(type)
  if (options.provisionsHere) {
    // The name the new site is recorded under: a bad TENANCY_HOST or "host" is a usage error
    // now, before the tenant is recorded, not a failed create-site step left behind.
    void bench.host
    await resolveServerAdmin(bench, driver, { fileFlag: false })
  }
  await checkEncryptionKey(bench)
  return steps
}

/**
 * Makes sure the key in use is the one the registry's secrets were written with (exit 2
 * otherwise), before a command changes anything: `bench.secretBox()` checks it.
 */
export async function checkEncryptionKey(bench: Bench): Promise<void> {
  await bench.secretBox()
}

/** Starts loading what a step will need, without waiting (its kind's `prefetch`, if any). */
export function prefetchStep(ctx: StepContext, step: PlannedStep): void {
  kindOf(step.spec)?.prefetch?.(ctx, step.spec)
}

/** Runs one step. Every step is safe to run again after a partial run (check, act, re-check). */
export async function runStep(ctx: StepContext, step: PlannedStep): Promise<StepOutcome> {
  const kind = kindOf(step.spec)
  // A spec comes from this version's plan (the runner refreshes stored ones), so this is a bug.
  if (!kind) throw new Error(`step "${step.name}" has kind "${step.spec.kind}", which this version does not know`)
  return kind.run(ctx, step.spec)
}
