import type { Bench } from '../bench.js'
import { listBenchApps, resolveInstallOrder } from '../apps/manifest.js'
import { messageOf, usageError } from '../errors.js'
import {
  forEachSite,
  holdingPendingTenant,
  notStartedReason,
  pendingTenants,
  selectSites,
  type SiteRunOptions,
  type SiteSelection,
} from '../sites/site-selection.js'
import {
  rollbackSite,
  type BenchMigrations,
  type RollbackJob,
  type RollbackTarget,
  type SiteRollbackResult,
} from './site-rollback.js'
import { SiteThreads, threadCount } from './site-threads.js'

export type { RollbackTarget, SiteRollbackResult } from './site-rollback.js'

export interface RollbackOptions extends SiteSelection, SiteRunOptions, RollbackTarget {
  /** List what would be reverted, changing nothing. */
  dryRun?: boolean
  onSite?: (result: SiteRollbackResult, done: number, total: number) => void
}

/** `tenancy rollback --json`: migrate's shape. */
export interface RollbackResult {
  sites: SiteRollbackResult[]
  rolled_back: number
  /** With --dry-run: sites with something to revert. */
  planned: number
  failed: number
  nothing_to_roll_back: number
  skipped: number
  interrupted: boolean
  duration_ms: number
}

/** The bench's migration files by app and name, and each app's place in requirement order. */
function benchMigrations(bench: Bench): BenchMigrations {
  const apps = resolveInstallOrder(
    bench,
    listBenchApps(bench).map((a) => a.name),
  )
  return {
    files: new Map(apps.map((a) => [a.name, new Map(a.migrations.map((m) => [m.name, m]))])),
    order: new Map(apps.map((a, i) => [a.name, i + 1])),
  }
}

/** Checks the target against the bench before any site is touched (exit 2 naming what is wrong). */
function checkTarget(known: BenchMigrations, target: RollbackTarget): void {
  if (target.step !== undefined && target.to !== undefined)
    throw usageError('give --step N or --to APP/MIGRATION, not both')
  if (target.app !== undefined && !known.files.has(target.app))
    throw usageError(`app "${target.app}" is not in this bench; run "tenancy list-apps"`)
  if (target.to !== undefined) {
    const [app, migration, ...rest] = target.to.split('/')
    if (!app || !migration || rest.length > 0)
      throw usageError(`invalid --to "${target.to}": give APP/MIGRATION, e.g. tenant_ops/0004_project_templates`)
    if (!known.files.get(app)?.has(migration))
      throw usageError(`--to ${target.to}: the bench's app "${app}" has no migration "${migration}"`)
    if (target.app !== undefined && target.app !== app)
      throw usageError(`--to ${target.to} is not a migration of --app ${target.app}`)
  }
}

/**
 * `tenancy rollback`: over the selected sites (`concurrency` at a time), reverts the newest
 * applied migration of each (or `step` of them, or those after `to`, of every app or of
 * `app`), through each migration's `down()` or `.down.sql`. A pending tenant's site is
 * reverted holding its lease. A fleet with SQLite sites runs on worker threads as migrate's
 * does (`threadCount`: `concurrency`, default `migrate.concurrency`, from 16 sites on), since
 * each site's commit waits on the disk.
 */
export async function rollback(bench: Bench, options: RollbackOptions = {}): Promise<RollbackResult> {
  const started = performance.now()
  const known = benchMigrations(bench)
  checkTarget(known, options)
  const selected = await selectSites(bench, options)
  const sites = selected.map((s) => s.name)
  const pending = await pendingTenants(bench, selected)
  const target = { app: options.app, step: options.step, to: options.to, dryRun: options.dryRun }
  const size = await threadCount(bench, selected, options.concurrency)
  const threads =
    size > 0
      ? new SiteThreads({ task: 'rollback', known, target }, size, (job, error) => ({
          site: job.site,
          status: 'failed',
          reverted: [],
          error: `rollback worker crashed: ${error.message}`,
          duration_ms: 0,
        }))
      : undefined
  const rollbackOne = (job: RollbackJob) => (threads ? threads.run(job) : rollbackSite(job, known, target))
  let done = 0
  const { results, interrupted } = await forEachSite<SiteRollbackResult>(
    sites,
    { ...options, concurrency: size || options.concurrency },
    async (site) => {
      const tenantId = pending.get(site)
      const run = () => rollbackOne({ site, path: bench.sitePath(site) })
      let result: SiteRollbackResult
      try {
        result = tenantId === undefined ? await run() : await holdingPendingTenant(bench, site, tenantId, run)
      } catch (error) {
        result = { site, status: 'failed', reverted: [], error: messageOf(error), duration_ms: 0 }
      }
      options.onSite?.(result, ++done, sites.length)
      return result
    },
    (site, why) => ({
      site,
      status: why,
      reverted: [],
      error: notStartedReason('rollback', why),
      duration_ms: 0,
    }),
  ).finally(() => threads?.close())
  const count = (status: SiteRollbackResult['status']) => results.filter((r) => r.status === status).length
  return {
    sites: results,
    rolled_back: count('rolled_back'),
    planned: count('planned'),
    failed: count('failed'),
    nothing_to_roll_back: count('nothing_to_roll_back'),
    skipped: count('skipped'),
    interrupted,
    duration_ms: Math.round(performance.now() - started),
  }
}
