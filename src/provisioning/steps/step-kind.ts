import type { Bench } from '../../bench.js'
import type { BenchConfig, PipelineStepConfig } from '../../config/config.js'
import type { TenantRow } from '../../registry/tenants.js'

export interface StepContext {
  bench: Bench
  tenant: TenantRow & { site: string }
  signal?: AbortSignal
}

export interface StepOutcome {
  skipped?: boolean
  output?: string
}

/**
 * A kind of pipeline step: how `provision.steps` names it, what the pipeline asks of its
 * place, and how it runs. Each kind is one file in this folder with one entry in
 * `STEP_KINDS` (../steps.ts); `S` is what a planned step of it stores with the tenant.
 */
export interface StepKind<S extends { kind: string }> {
  /** How `provision.steps` writes it, for the message that names the known steps. */
  usage: string[]
  /**
   * The steps one `provision.steps` entry stands for, or undefined when the entry is not of
   * this kind. A bad entry of this kind is a usage error.
   */
  plan(item: PipelineStepConfig, config: BenchConfig): { name: string; spec: S }[] | undefined
  /** A pipeline lists it at most once (the built-in steps). */
  once?: boolean
  /** A kind that must come before it in the pipeline, and why. */
  after?: { kind: string; because: string }
  /**
   * Starts loading, without waiting, what running it will need (an app's migrations), as the pipeline
   * begins: it then loads while earlier steps wait. Never throws; `run` meets any failure.
   */
  prefetch?(ctx: StepContext, spec: S): void
  /** Runs it. Safe to run again after a partial run (check, act, re-check). */
  run(ctx: StepContext, spec: S): Promise<StepOutcome>
}

/** The `plan` of a kind written in `provision.steps` as its bare name, such as `"activate"`. */
export function planByName<K extends string>(kind: K): StepKind<{ kind: K }>['plan'] {
  return (item) => (item === kind ? [{ name: kind, spec: { kind } }] : undefined)
}
