/** One thing doctor found, and what `--fix` did about it. */
export interface Finding {
  kind:
    | 'stray_directory'
    | 'unregistered_site'
    | 'unreadable_site'
    | 'missing_site'
    | 'damaged_site'
    | 'unfinished_site'
    | 'stuck_tenant'
    | 'failed_tenant'
    | 'tenant_without_site'
    | 'stuck_pull'
    | 'stuck_rename'
    | 'unfinished_rename'
    | 'lost_job'
    | 'orphan_job'
    | 'no_worker'
    | 'queued_without_job'
    | 'undelivered_event'
    | 'maintenance_mismatch'
    | 'abandoned_backup'
    | 'interrupted_restore'
    | 'empty_archive'
  subject: string
  problem: string
  fix: string
  /** Whether `--fix` repaired it (false: not repaired, or no `--fix`); every finding reports it. */
  fixed?: boolean
  /** Why a repair failed or was refused; null when none did. */
  fix_error?: string | null
}

/**
 * What a check yields: a finding and the repair `--fix` runs for it. A finding without a
 * repair is only reported (it says why in its `fix`, and when refused, in `fix_error`).
 */
export interface Diagnosis {
  finding: Finding
  repair?: () => Promise<unknown>
  /** The repair runs under `--adopt` as well as `--fix` (registering a site directory). */
  adopt?: boolean
}
