import type { Selectable } from 'kysely'
import type { StepsTable, TenantsTable } from './schema.js'

// A tenant's row and its steps as the registry stores them, and the JSON shapes commands and
// events show them in.

export type TenantRow = Selectable<TenantsTable>
export type StepRow = Selectable<StepsTable>

export type TenantStatus = 'inactive' | 'active' | 'suspended'
export type ProvisioningStatus = 'not_started' | 'queued' | 'in_progress' | 'completed' | 'failed'
export type StepStatus = 'pending' | 'running' | 'done' | 'failed' | 'skipped'

/** A tenant as the SPEC shows it in JSON. */
export interface TenantJson {
  name: string
  site: string | null
  status: TenantStatus
  provisioning_status: ProvisioningStatus
  pending_since: string | null
  data: Record<string, unknown>
  api_key: string | null
  created_at: string
  updated_at: string
  provisioned_at: string | null
  error: string | null
  /** When `tenant suspend` suspended it, and why (`--reason`); null while it is not suspended. */
  suspended_at: string | null
  suspend_reason: string | null
}

export interface StepJson {
  name: string
  status: StepStatus
  attempts: number
  started_at: string | null
  finished_at: string | null
  duration_ms: number | null
  error: string | null
  output: string | null
}

export function parseData(text: string): Record<string, unknown> {
  try {
    const value = JSON.parse(text) as unknown
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : {}
  } catch {
    return {}
  }
}

export function tenantJson(row: TenantRow): TenantJson {
  // While a pull is unfinished the stored keys are still the placeholder's: not the tenant's to show.
  const pulling = row.pull_from !== null
  return {
    name: row.name,
    site: row.site,
    status: (pulling ? 'inactive' : row.status) as TenantStatus,
    provisioning_status: (pulling ? 'in_progress' : row.provisioning_status) as ProvisioningStatus,
    pending_since: row.pending_since,
    data: parseData(row.data),
    api_key: pulling ? null : row.api_key,
    created_at: row.created_at,
    updated_at: row.updated_at,
    provisioned_at: row.provisioned_at,
    error: row.error,
    suspended_at: row.suspended_at,
    suspend_reason: row.suspend_reason,
  }
}

export function stepJson(row: StepRow): StepJson {
  const duration = row.started_at && row.finished_at ? Date.parse(row.finished_at) - Date.parse(row.started_at) : null
  return {
    name: row.name,
    status: row.status as StepStatus,
    attempts: row.attempts,
    started_at: row.started_at,
    finished_at: row.finished_at,
    duration_ms: duration,
    error: row.error,
    output: row.output,
  }
}
