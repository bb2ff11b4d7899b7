// How results and progress read for humans. Type imports only: these run in the CLI's
// first chunk, which must not pull in what the commands do (see cli/core.ts).
import type { ChalkInstance } from 'chalk'
import type { AppInstallResult, InstallProgress } from '../apps/install.js'
import type { BenchAppListing, SiteAppListing } from '../apps/list-apps.js'
import type { BackupResult, SiteBackupResult } from '../backups/backup.js'
import type { BackupListing } from '../backups/list-backups.js'
import type { EventListing } from '../events/list-events.js'
import type { ExecuteResult, SiteExecuteResult } from '../fleet/execute.js'
import type { RestoreResult } from '../backups/restore.js'
import type { RunResult, SiteRunResult } from '../fleet/run.js'
import type { MigrateResult } from '../migrate/migrate.js'
import type { SiteResult } from '../migrate/site-migrator.js'
import type { TaskView } from '../output/progress.js'
import type { ErrorEntry } from '../provisioning/error-log.js'
import type { RenameSiteResult } from '../provisioning/rename-site.js'
import type { StepEvent } from '../provisioning/runner.js'
import type { ShowTenantResult } from '../provisioning/tenants.js'
import type { StepJson, TenantJson } from '../registry/tenants.js'
import type { SiteListing } from '../sites/list-sites.js'

/** A plain aligned table for humans. */
export function table(header: string[], rows: string[][]): string {
  return tableLines([header, ...rows], []).join('\n')
}

/**
 * Rows laid out in columns at least `widths` wide, which grow (in place) to fit them; `below(i)`
 * gives lines printed under row `i` (an event's error). A listing lays a long page out a chunk
 * at a time with the same `widths`. Counted in a loop: 100,000 rows are too many to spread
 * into `Math.max`.
 */
export function tableLines(rows: string[][], widths: number[], below?: (i: number) => string[]): string[] {
  // A cell of several lines (a step's error with a command's output) keeps its first: the
  // rows stay rows, and the whole text is in --json and `tenancy errors`.
  for (const row of rows)
    row.forEach((cell, i) => {
      const end = cell.indexOf('\n')
      if (end >= 0) row[i] = `${cell.slice(0, end).trimEnd()} …`
    })
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)))
  const lines: string[] = []
  rows.forEach((row, i) => {
    lines.push(row.map((c, j) => (j === row.length - 1 ? c : c.padEnd(widths[j]!))).join('  '))
    if (below) lines.push(...below(i))
  })
  return lines
}

/**
 * How a listing reads for humans, made a row at a time as the rows are read (so that a page of
 * 100,000 is held as text, not as records): a table (`header`, each row's `cells`, lines
 * `below` a row), or one `entry` of text a row.
 */
export type ListingForm<T> =
  { header: string[]; cells(row: T): string[]; below?(row: T): string[] } | { entry(row: T): string }

/** `list-sites`: one row a site. */
export const SITES_FORM: ListingForm<SiteListing> = {
  header: ['SITE', 'DB', 'APPS', 'TENANT', 'STATE', 'HOST'],
  cells: (s) => [
    s.site,
    s.db_type,
    s.apps.map((a) => a.name).join(',') || '-',
    s.tenant ? `${s.tenant}${s.pending ? ' (pending)' : ''}` : '-',
    s.state,
    s.host ?? '-',
  ],
}

/** `list-apps`: the apps in the bench. */
export function renderBenchApps(apps: BenchAppListing[]): string {
  return table(
    ['APP', 'VERSION', 'REQUIRES', 'MIGRATIONS', 'FIXTURES'],
    apps.map((a) => [a.app, a.version, a.requires.join(',') || '-', String(a.migrations), String(a.fixtures)]),
  )
}

/** `list-apps --site S`: the apps installed on a site, with their migrations. */
export function renderSiteApps(apps: SiteAppListing[]): string {
  return table(
    ['APP', 'VERSION', 'APPLIED', 'PENDING'],
    apps.map((a) => [a.app, a.version, String(a.applied_migrations.length), a.pending_migrations.join(',') || '-']),
  )
}

/** One app install: `installed tenant_ops 1.0.0 (6 migrations, 33 fixture rows)`. */
function describeApp(r: AppInstallResult): string {
  if (r.status === 'already_installed') return `${r.app} is already installed`
  const parts = [
    `${r.migrations.length} migration${r.migrations.length === 1 ? '' : 's'}`,
    `${r.fixtures} fixture row${r.fixtures === 1 ? '' : 's'}`,
  ]
  return `installed ${r.app} ${r.version} (${parts.join(', ')})`
}

/**
 * Each app install as a task (the core tables first, as "creating site S"; from a backup, the
 * database and the backup's data).
 */
export function appTaskView(
  site: string,
  options: { fromBackup?: boolean } = {},
): (event: Parameters<InstallProgress>[0]) => TaskView {
  const core = options.fromBackup ? 'database and the backup' : 'database and core tables'
  return (event) => {
    const label = event.app === 'core' ? `creating site ${site}: ${core}` : `installing ${event.app}`
    if (event.phase === 'start') return { show: 'start', label }
    if (event.phase === 'skip') return { show: 'line', line: `- ${event.app} is already installed` }
    if (event.phase === 'done')
      return { show: 'succeed', text: event.result ? describeApp(event.result) : label.replace(/^creating/, 'created') }
    return { show: 'fail', text: `${label}: failed` }
  }
}

/** Each pipeline step as a task; a step done by an earlier run gets a line of its own. */
export function stepTaskView(event: StepEvent): TaskView | undefined {
  if (event.phase === 'start') return { show: 'start', label: event.step }
  if (event.phase === 'already_done') return { show: 'line', line: `- ${event.step} (done before)` }
  if (event.phase === 'done')
    return { show: 'succeed', text: event.outcome?.output ? `${event.step}: ${event.outcome.output}` : event.step }
  if (event.phase === 'skipped')
    return { show: 'skip', text: `${event.step}${event.outcome?.output ? `: ${event.outcome.output}` : ''}` }
  if (event.phase === 'failed') return { show: 'fail', text: `${event.step} failed` }
  return undefined
}

/**
 * One ended step of one of several tenants provisioned at once, as `stepTaskView` shows it for
 * one tenant but prefixed with the tenant: `✔ pending-3f2a: create-site (120 ms)`; undefined
 * for a start. `ms` is how long the step took.
 */
export function tenantStepLine(tenant: string, event: StepEvent, ms: number, color: ChalkInstance): string | undefined {
  const view = stepTaskView(event)
  if (view === undefined || view.show === 'start') return undefined
  if (view.show === 'line') return `- ${tenant}: ${view.line.replace(/^- /, '')}`
  if (view.show === 'succeed') return `${color.green('✔')} ${tenant}: ${view.text} ${color.dim(`(${ms} ms)`)}`
  if (view.show === 'fail') return `${color.red('✖')} ${tenant}: ${view.text}`
  return `- ${tenant}: ${view.text} ${color.dim('(skipped)')}`
}

/** A tenant's provisioning steps as a table. */
function renderSteps(steps: StepJson[]): string {
  return table(
    ['STEP', 'STATUS', 'ATTEMPTS', 'TIME', 'ERROR'],
    steps.map((s) => [
      s.name,
      s.status,
      String(s.attempts),
      s.duration_ms === null ? '-' : `${s.duration_ms} ms`,
      s.error ?? '',
    ]),
  )
}

/** `tenant list`: one row a tenant. */
export const TENANTS_FORM: ListingForm<TenantJson> = {
  header: ['TENANT', 'SITE', 'STATUS', 'PROVISIONING', 'PENDING', 'CREATED'],
  cells: (t) => [t.name, t.site ?? '-', t.status, t.provisioning_status, t.pending_since ? 'yes' : '-', t.created_at],
}

/** `tenant show`: one field a line, then the provisioning steps. */
export function renderTenant(tenant: ShowTenantResult): string {
  const { steps, data, ...fields } = tenant
  // A value of several lines (an error with a command's output) goes on under its own column.
  const lines = Object.entries(fields).map(
    ([k, v]) => `${k.padEnd(20)} ${String(v ?? '-').replaceAll('\n', `\n${' '.repeat(21)}`)}`,
  )
  lines.push(`${'data'.padEnd(20)} ${JSON.stringify(data)}`)
  return `${lines.join('\n')}\n\n${renderSteps(steps)}`
}

/** The error log, newest first: where each error happened, then its message indented. */
export const ERRORS_FORM: ListingForm<ErrorEntry> = {
  entry: (e) => {
    const where = [
      e.tenant && `tenant ${e.tenant}`,
      e.site && `site ${e.site}`,
      e.step && `step ${e.step}`,
      e.job_id && `job ${e.job_id}`,
    ]
    return `${e.at}  ${where.filter(Boolean).join(', ')}\n  ${e.message.replace(/\n/g, '\n  ')}`
  },
}

/** `tenancy events`: one row an event, newest first; the last error of a failing one indented below it. */
export const EVENTS_FORM: ListingForm<EventListing> = {
  header: ['AT', 'TYPE', 'TENANT', 'DELIVERY', 'ATTEMPTS', 'ID'],
  cells: (e) => [
    e.at,
    e.type,
    e.tenant ?? '-',
    e.delivered ? `delivered ${e.delivered_at}` : `next try ${e.next_attempt_at ?? '-'}`,
    String(e.attempts),
    e.id,
  ],
  below: (e) => (e.last_error && !e.delivered ? [`  ${e.last_error}`] : []),
}

/** What migrate did on one site: `migrated (tenant_ops/0007_x)`, `up to date`, `FAILED at …`. */
export function describeSiteMigration(r: SiteResult): string {
  switch (r.status) {
    case 'migrated':
      return (
        `migrated${r.applied.length ? ` (${r.applied.join(', ')})` : ''}` +
        `${r.fixtures_synced?.length ? `; fixtures synced: ${r.fixtures_synced.join(', ')}` : ''}` +
        `${r.versions?.length ? `; versions: ${r.versions.join(', ')}` : ''}`
      )
    case 'up_to_date':
      return 'up to date'
    case 'pending':
      return `would apply ${r.pending?.join(', ')}`
    case 'skipped':
      return `skipped: ${r.error ?? 'not started'}`
    case 'interrupted':
      return 'not started (interrupted)'
    case 'failed':
      return `FAILED${r.app ? ` at ${r.app}/${r.migration}` : ''}: ${r.error}`
    case 'unreachable':
      return `UNREACHABLE: ${r.error}`
  }
}

/** Seconds for humans: `8 s`, `12 min`, `2 h 5 min`. */
function secondsText(seconds: number): string {
  const s = Math.round(seconds)
  if (s < 90) return `${s} s`
  const min = Math.round(s / 60)
  return min < 90 ? `${min} min` : `${Math.floor(min / 60)} h ${min % 60} min`
}

/**
 * The progress line of a command over many sites or tenants: `12/40 sites, 30/s, ETA 1 s`,
 * then what runs now when `now` names it (`now: pending-3f2a create-site, …`).
 */
export function fleetCounter(done: number, total: number, seconds: number, noun: string, now: string[] = []): string {
  const rate = done / Math.max(seconds, 0.001)
  const eta = done === 0 ? '?' : secondsText((total - done) / Math.max(rate, 0.001))
  const rateText = done === 0 ? '-' : rate >= 10 ? rate.toFixed(0) : rate.toFixed(1)
  return `${done}/${total} ${noun}, ${rateText}/s, ETA ${eta}${now.length ? `, now: ${now.join(', ')}` : ''}`
}

/** A fleet command's progress line over its sites (see `fleetCounter`). */
export const sitesCounter = (done: number, total: number, seconds: number): string =>
  fleetCounter(done, total, seconds, 'sites')

/** migrate's summary: the counts, then one line per failed site. */
export function renderMigrateSummary(result: MigrateResult, dryRun: boolean): string {
  const count = (status: SiteResult['status']) => result.sites.filter((s) => s.status === status).length
  const lines = [
    `${dryRun ? 'Dry run: ' : ''}${result.sites.length} site(s): ${result.migrated} migrated, ` +
      `${result.up_to_date} up to date, ${result.failed} failed, ${result.skipped} skipped` +
      `${result.unreachable ? `, ${result.unreachable} unreachable` : ''}` +
      `${result.interrupted ? `, ${count('interrupted')} not started (interrupted)` : ''}` +
      `${dryRun ? `, ${count('pending')} with pending migrations` : ''} in ${result.duration_ms} ms`,
  ]
  for (const f of result.sites.filter((s) => s.status === 'failed'))
    lines.push(`  failed: ${f.site}${f.app ? ` (${f.app}/${f.migration})` : ''}: ${f.error}`)
  lines.push(...unreachableLines(result.sites))
  return lines.join('\n')
}

/** One line per machine whose sites were unreachable: which, how many, and why. */
function unreachableLines(sites: readonly { site: string; status: string; error: string | null }[]): string[] {
  const byReason = new Map<string, string[]>()
  for (const s of sites.filter((r) => r.status === 'unreachable'))
    byReason.set(s.error ?? '', [...(byReason.get(s.error ?? '') ?? []), s.site])
  return [...byReason].map(
    ([why, names]) =>
      `  unreachable: ${names.length > 3 ? `${names.slice(0, 3).join(', ')} and ${names.length - 3} more` : names.join(', ')}: ${why}`,
  )
}

/** A byte count for humans: `512 B`, `3.4 MB`. */
export function bytesText(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB']
  let value = bytes
  let unit = 0
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000
    unit++
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`
}

/** One site of `tenancy backup`: `acme.localhost: backed up to … (3.4 MB, 120 ms)`. */
export function describeSiteBackup(r: SiteBackupResult): string {
  if (r.status === 'backed_up') return `backed up to ${r.path} (${bytesText(r.bytes)}, ${r.duration_ms} ms)`
  return `${r.status.replace('_', ' ')}: ${r.error}`
}

/**
 * A fleet command's summary: `3 site(s): 2 succeeded, 1 failed, 0 skipped in 40 ms` (`counts` is
 * the middle), what an interruption left, then one line per failed site.
 */
function renderFleetSummary(
  result: {
    sites: { site: string; status: string; error: string | null }[]
    interrupted: boolean
    duration_ms: number
    unreachable: number
  },
  counts: string,
): string {
  const interrupted = result.sites.filter((s) => s.status === 'interrupted').length
  const lines = [
    `${result.sites.length} site(s): ${counts}` +
      `${result.unreachable ? `, ${result.unreachable} unreachable` : ''}` +
      `${result.interrupted ? `, ${interrupted} interrupted` : ''} in ${result.duration_ms} ms`,
  ]
  for (const f of result.sites.filter((s) => s.status === 'failed')) lines.push(`  failed: ${f.site}: ${f.error}`)
  lines.push(...unreachableLines(result.sites))
  return lines.join('\n')
}

/** backup's summary: the counts, then one line per failed site. */
export function renderBackupSummary(result: BackupResult): string {
  return renderFleetSummary(result, `${result.backed_up} backed up, ${result.failed} failed, ${result.skipped} skipped`)
}

/** One site of `tenancy run` that did not succeed: `failed (exit 3): the command exited with code 3`. */
export function describeSiteRun(r: SiteRunResult): string {
  // A site never started says only that (`not started: run was interrupted`), not its status again.
  if (r.status === 'interrupted' && r.error?.startsWith('not started')) return r.error
  return `${r.status}${r.exit_code === null ? '' : ` (exit ${r.exit_code})`}: ${r.error}`
}

/** run's summary (on stderr, below the commands' output): the counts, then one line per failed site. */
export function renderRunSummary(result: RunResult): string {
  return renderFleetSummary(result, `${result.succeeded} succeeded, ${result.failed} failed, ${result.skipped} skipped`)
}

/** One site of `tenancy execute`: its result as one line of JSON, or why it has none. */
export function describeSiteExecution(r: SiteExecuteResult): string {
  if (r.status === 'succeeded') return JSON.stringify(r.result)
  if (r.status === 'interrupted') return 'not started (interrupted)'
  return `${r.status}: ${oneLine(r.error ?? '')}`
}

/** A message on one line, whatever a thrown error put in it: execute prints one line a site. */
const oneLine = (text: string) => text.replace(/\s*\n\s*/g, ' ')

/** execute's summary: the counts, then one line per failed site. */
export function renderExecuteSummary(result: ExecuteResult): string {
  return renderFleetSummary(result, `${result.succeeded} succeeded, ${result.failed} failed, ${result.skipped} skipped`)
}

/** `list-backups`: one row a set. */
export const BACKUPS_FORM: ListingForm<BackupListing> = {
  header: ['SITE', 'WHEN', 'SIZE', 'ENCRYPTED', 'APPS', 'PATH'],
  cells: (s) => [
    s.site,
    s.created_at,
    bytesText(s.bytes),
    s.encrypted ? 'yes' : 'no',
    s.apps.map((a) => `${a.name} ${a.version}`).join(', ') || '-',
    s.path,
  ],
}

/** restore's result: where the data now is, the backup taken first, and the migrate that followed. */
export function renderRestore(
  result: RestoreResult & { renamed?: RenameSiteResult | null; rehomed_from?: string; host?: string },
): string {
  const lines = [
    result.rehomed_from
      ? `site ${result.site} moved from ${result.rehomed_from} to this machine (${result.host}), on the database ` +
        `${result.db_name} (its old database there, ${result.previous_db_name}, was left as it was)`
      : `site ${result.site} is on the database ${result.db_name} (the old one, ${result.previous_db_name}, was dropped)`,
  ]
  if (result.backup) lines.push(`its state before the restore was backed up to ${result.backup}`)
  const renamed = result.renamed
  if (renamed) {
    lines.push(`its data was taken as ${renamed.previous_site}, so it now follows the name ${renamed.site}:`)
    if (renamed.api_user) lines.push(`  API user ${renamed.api_user} with new keys: api_key ${renamed.api_key}`)
    if (renamed.hooks.length > 0) lines.push(`  after_rename hooks run: ${renamed.hooks.join(', ')}`)
  }
  const m = result.migrate
  lines.push(
    m.status === 'failed'
      ? `migrate failed: ${m.error}; the data is restored, run "tenancy migrate --site ${result.site}" once fixed`
      : m.applied.length > 0
        ? `migrated: ${m.applied.join(', ')}`
        : 'already up to date with the bench',
  )
  return lines.join('\n')
}

/** rename-site's result: the new name, the API user that followed it, the hooks that ran. */
export function renderRename(result: RenameSiteResult): string {
  const lines = [
    `${result.resumed ? 'Finished renaming' : 'Renamed'} site ${result.previous_site} to ${result.site}` +
      (result.tenant ? ` (tenant ${result.tenant})` : ''),
  ]
  if (result.api_user)
    lines.push(
      `API user is now ${result.api_user} with new keys: api_key ${result.api_key} ` +
        `(the secret: "tenancy tenant show ${result.tenant} --show-secrets")`,
    )
  if (result.hooks.length > 0) lines.push(`after_rename hooks run: ${result.hooks.join(', ')}`)
  return lines.join('\n')
}
