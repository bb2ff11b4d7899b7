import type { MigrationFile } from '../apps/manifest.js'
import { CORE_APP } from '../apps/core-app.js'
import { LEDGER_TABLE, missingDown, revertMigrations, type RevertStep } from '../apps/migrations.js'
import { getDriver } from '../databases/index.js'
import type { SiteConnection } from '../databases/driver.js'
import { TenancyError, messageOf } from '../errors.js'
import { readSiteConfig } from '../sites/site.js'

/** What `tenancy rollback` reverts on each site: `--app`, `--step N` or `--to app/migration`. */
export interface RollbackTarget {
  /** Only this app's migrations. */
  app?: string
  /** The newest N applied migrations (default 1). */
  step?: number
  /** Every migration applied after this one (`app/migration`), which stays applied. */
  to?: string
}

/** What one site's rollback needs to know: the target, and with `dryRun` only list. Plain data (crosses to threads). */
export interface SiteRollbackTarget extends RollbackTarget {
  dryRun?: boolean
}

/** One site's line of `tenancy rollback --json`. */
export interface SiteRollbackResult {
  site: string
  status: 'rolled_back' | 'planned' | 'nothing_to_roll_back' | 'failed' | 'skipped' | 'interrupted' | 'unreachable'
  /** `app/migration`, newest first: reverted (or, with --dry-run, to be reverted). */
  reverted: string[]
  error: string | null
  duration_ms: number
}

/** The bench's migration files by app and name, and each app's place in requirement order. Plain data. */
export interface BenchMigrations {
  files: Map<string, Map<string, MigrationFile>>
  order: Map<string, number>
}

/** `app/name` as its two parts. */
function splitTarget(to: string): [string, string] {
  const slash = to.indexOf('/')
  return [to.slice(0, slash), to.slice(slash + 1)]
}

/** The site a rollback works on: its name and directory. */
export interface RollbackJob {
  site: string
  path: string
}

/**
 * The migrations to revert on a site, newest first: its applied ones (never the core's), in
 * the order they were applied (time, then requirement order, then name), cut by the target.
 */
async function plan(db: SiteConnection['db'], known: BenchMigrations, target: RollbackTarget): Promise<RevertStep[]> {
  const rows = (await db.selectFrom(LEDGER_TABLE).select(['app', 'name', 'applied_at']).execute()) as {
    app: string
    name: string
    applied_at: string
  }[]
  const applied = rows
    .filter((r) => r.app !== CORE_APP && (target.app === undefined || r.app === target.app))
    .sort(
      (a, b) =>
        b.applied_at.localeCompare(a.applied_at) ||
        (known.order.get(b.app) ?? 0) - (known.order.get(a.app) ?? 0) ||
        b.name.localeCompare(a.name),
    )
  let chosen = applied
  if (target.to !== undefined) {
    const at = applied.findIndex((r) => `${r.app}/${r.name}` === target.to)
    if (at < 0) {
      // Not applied, and nothing of its app after it either (the app is not on this site, or the
      // site is older): the site is already where the target is, as every site of a fleet rollback
      // without that app is.
      const [app, name] = splitTarget(target.to)
      if (!applied.some((r) => r.app === app && r.name > name)) return []
      throw new TenancyError(`${target.to} is not applied on this site, so there is nothing to roll back to`)
    }
    chosen = applied.slice(0, at)
  } else chosen = applied.slice(0, target.step ?? 1)
  return chosen.map((r) => {
    const migration = known.files.get(r.app)?.get(r.name)
    if (!migration)
      throw new TenancyError(`${r.app}/${r.name} is applied, but the bench's apps have no such migration to revert`)
    return { app: r.app, migration }
  })
}

/**
 * One site: the plan read and every down checked (a missing one fails the site, changing
 * nothing), then one transaction reverting them newest first (where DDL is transactional, a
 * failure leaves the site as it was; on MariaDB the reverted ones stay reverted and the
 * failing one resumes on the next rollback). Runs here or on a worker thread
 * (`migrate/worker-entry.ts`). Never throws.
 */
export async function rollbackSite(
  job: RollbackJob,
  known: BenchMigrations,
  target: SiteRollbackTarget,
): Promise<SiteRollbackResult> {
  const { site, path } = job
  const started = performance.now()
  const result = (status: SiteRollbackResult['status'], reverted: string[], error: string | null = null) => ({
    site,
    status,
    reverted,
    error,
    duration_ms: Math.round(performance.now() - started),
  })
  let conn: SiteConnection | undefined
  try {
    const config = readSiteConfig(path)
    conn = await (await getDriver(config.db_type)).connect(config, path)
    const open = conn
    const first = await plan(open.db, known, target)
    const names = (steps: RevertStep[]) => steps.map((s) => `${s.app}/${s.migration.name}`)
    if (first.length === 0) return result('nothing_to_roll_back', [])
    const missing = (await Promise.all(first.map(missingDown))).filter((m) => m !== undefined)
    if (missing.length > 0) return result('failed', [], `cannot roll back, nothing was changed: ${missing.join('; ')}`)
    if (target.dryRun) return result('planned', names(first))
    // Planned again inside the transaction, holding the site's write lock: what it reverts is what is applied now.
    const reverted = await open.transaction(async (tx) => revertMigrations(tx, site, await plan(tx.trx, known, target)))
    return result('rolled_back', reverted)
  } catch (error) {
    return result('failed', [], messageOf(error))
  } finally {
    await conn?.close().catch(() => {})
  }
}
