import type { Selectable } from 'kysely'
import type { Bench } from '../bench.js'
import { now, type Registry, type SiteRecord } from '../registry/registry.js'
import type { JobsTable } from '../registry/schema.js'
import { isHomedHere } from '../sites/site-home.js'
import { onMachine } from '../registry/placement.js'
import type { TenantRow } from '../registry/tenants.js'

/** What the checks read from the registry, once, before any of them runs. */
export interface DoctorInputs {
  bench: Bench
  registry: Registry
  /** `--fix` and `--adopt`, for the findings that say a repair was refused. */
  fix?: boolean
  adopt?: boolean
  /** Every registered site name; adopting a directory adds its name. */
  known: Set<string>
  /** The registered sites homed on this machine: the only ones judged here. */
  sites: SiteRecord[]
  /** The registered sites homed on other machines. */
  elsewhere: SiteRecord[]
  /** The names of `elsewhere`. */
  remote: Set<string>
  tenants: TenantRow[]
  tenantById: Map<number, TenantRow>
  /** Tenants that belong to another machine (their site's home, or before it exists their job's `--host`). */
  placedElsewhere: Set<number>
  /** The old names of sites being renamed or pulled from the pool (their directories are on the move). */
  pulling: Set<string>
}

/** Reads the sites and tenants every check starts from. */
export async function gatherInputs(
  bench: Bench,
  registry: Registry,
  options: { fix?: boolean; adopt?: boolean },
): Promise<DoctorInputs> {
  const all = await registry.listSites()
  const known = new Set(all.map((s) => s.name))
  // With a shared registry, only sites homed on this machine are judged (SPEC §10).
  const sites = all.filter((s) => isHomedHere(bench, registry.kind, s))
  const elsewhere = all.filter((s) => !sites.includes(s))
  const remote = new Set(elsewhere.map((s) => s.name))
  const tenants = await registry.db.selectFrom('tenants').selectAll().execute()
  const pulling = new Set([
    ...tenants.flatMap((t) => (t.pull_from ? [t.pull_from] : [])),
    ...all.flatMap((s) => (s.state === 'renaming' && s.rename_from ? [s.rename_from] : [])),
  ])
  const tenantById = new Map(tenants.map((t) => [t.id, t]))
  const placedElsewhere = new Set(
    registry.kind === 'postgres'
      ? (
          await registry.db
            .selectFrom('tenants')
            .select('id')
            .where((eb) => eb.not(onMachine(bench.host, true)(eb)))
            .execute()
        ).map((t) => t.id)
      : [],
  )
  return {
    bench,
    registry,
    fix: options.fix,
    adopt: options.adopt,
    known,
    sites,
    elsewhere,
    remote,
    tenants,
    tenantById,
    placedElsewhere,
    pulling,
  }
}

/** The jobs still to run, and the moment every lease of the tenant and job checks is judged at. */
export interface QueueInputs {
  jobs: Selectable<JobsTable>[]
  /** The tenants those jobs are for. */
  jobTenants: Set<number>
  at: string
}

/** Reads the queue; after the site repairs, which may provision tenants. */
export async function readQueue(registry: Registry): Promise<QueueInputs> {
  const jobs = await registry.db
    .selectFrom('jobs')
    .selectAll()
    .where('status', 'in', ['queued', 'retry', 'running'])
    .execute()
  const jobTenants = new Set(jobs.map((j) => j.tenant_id))
  return { jobs, jobTenants, at: now() }
}
