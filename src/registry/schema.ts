import type { Generated } from 'kysely'
import type { DbType } from '../config/config.js'

/**
 * Where a site is in its life: intent first (`creating`), then `ready`; `failed` kept for debugging;
 * `dropping` while it is removed; `renaming` from the moment its row takes the new name until its
 * directory, backups, API user and apps follow (`rename_from` names the old one).
 */
export type SiteState = 'creating' | 'ready' | 'failed' | 'dropping' | 'renaming'

export interface SitesTable {
  name: string
  state: SiteState
  db_type: DbType
  db_name: string
  db_host: string | null
  db_port: number | null
  db_user: string | null
  /** JSON array of `{name, version}`: the installed apps summary. */
  apps: string
  tenant_id: number | null
  /** `pid@hostname` of the process that wrote the intent row. */
  owner: string | null
  /**
   * The machine the site lives on (`TENANCY_HOST`, `host` in the config, or the hostname); NULL in rows
   * older than schema 6.
   */
  host: string | null
  /**
   * The name the site had before a rename (or a pool pull) that is not finished: set with the new
   * name in one transaction, cleared when everything bound to the old name follows. Left set on a
   * `ready` site whose apps' `after_rename` hooks failed, until they are run again.
   */
  rename_from: string | null
  created_at: string
  updated_at: string
}

export interface TenantsTable {
  id: Generated<number>
  name: string
  site: string | null
  status: string
  provisioning_status: string
  pending_since: string | null
  data: string
  api_key: string | null
  api_secret_enc: string | null
  admin_password_enc: string | null
  lease_owner: string | null
  lease_expires_at: string | null
  pull_from: string | null
  error: string | null
  created_at: string
  updated_at: string
  provisioned_at: string | null
  /** When the tenant was suspended (null unless `status` is `suspended`). */
  suspended_at: string | null
  /** The `--reason` of the suspension, if one was given. */
  suspend_reason: string | null
  /** 1 while `site_config.json` (`maintenance_mode`) is still to be made to match `status`; else null. */
  config_sync: number | null
}

export interface StepsTable {
  tenant_id: number
  idx: number
  name: string
  status: string
  attempts: number
  started_at: string | null
  finished_at: string | null
  error: string | null
  output: string | null
  /** JSON of the step's spec (for `run` steps: the command and timeout). */
  spec: string | null
}

export interface JobsTable {
  id: Generated<number>
  tenant_id: number
  kind: string
  status: string
  attempts: number
  run_at: string
  lease_owner: string | null
  lease_expires_at: string | null
  last_error: string | null
  created_at: string
  updated_at: string
  /** The machine that must run it (`tenant create --host H`); null: the first worker to claim it. */
  host: string | null
}

/** What a site job is doing: waiting for its machine, running there, finished, or called off by its sender. */
export type SiteJobStatus = 'queued' | 'running' | 'done' | 'failed' | 'cancelled'

/**
 * Work a fleet command (`migrate`, `rollback`, `run`, `execute`, `backup`) sent to another
 * machine's workers: the sites of one machine, and the command's options.
 */
export interface SiteJobsTable {
  id: Generated<number>
  /** The machine whose worker runs it. */
  host: string
  command: string
  /** JSON of the command's options (never a secret). */
  payload: string
  /** JSON array of site names, in the order the command reports them. */
  sites: string
  status: SiteJobStatus
  /** The sending process (`pid@hostname#…`). */
  requested_by: string
  lease_owner: string | null
  lease_expires_at: string | null
  error: string | null
  created_at: string
  updated_at: string
  finished_at: string | null
}

/** One site's result of a site job, written as the site finishes (JSON of the command's per-site result). */
export interface SiteJobResultsTable {
  job_id: number
  seq: number
  site: string
  result: string
  created_at: string
}

export interface ErrorLogTable {
  id: Generated<number>
  at: string
  tenant: string | null
  site: string | null
  step: string | null
  job_id: number | null
  message: string
}

export interface LeasesTable {
  name: string
  owner: string
  expires_at: string
}

export interface MetaTable {
  key: string
  value: string
}

/** The outbox: one row per event, delivered at least once to `provision.notify`. */
export interface EventsTable {
  seq: Generated<number>
  /** A UUID, the same on every delivery attempt, so receivers can drop duplicates. */
  id: string
  type: string
  tenant_id: number | null
  /** The event's JSON, as delivered: `{"id", "type", "at", "tenant": {…}}`. */
  payload: string
  created_at: string
  delivered_at: string | null
  attempts: number
  /** When to try (again); null once delivered. */
  next_attempt_at: string | null
  last_error: string | null
  /** The process sending it right now, so two never send one event at once. */
  lease_owner: string | null
  lease_expires_at: string | null
}

export interface RegistryMigrationsTable {
  version: number
  applied_at: string
}

/** The registry's tables, as Kysely sees them. */
export interface RegistrySchema {
  sites: SitesTable
  tenants: TenantsTable
  steps: StepsTable
  jobs: JobsTable
  error_log: ErrorLogTable
  leases: LeasesTable
  meta: MetaTable
  events: EventsTable
  site_jobs: SiteJobsTable
  site_job_results: SiteJobResultsTable
  registry_migrations: RegistryMigrationsTable
}
