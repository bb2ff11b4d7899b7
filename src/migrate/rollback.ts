import type { Bench } from '../bench.js'
import { listBenchApps, resolveInstallOrder } from '../apps/manifest.js'
import { usageError } from '../errors.js'
import { overSites, selectSites, type FleetOptions } from '../sites/site-selection.js'
import {
  rollbackSite,
  type BenchMigrations,
  type RollbackJob,
  type RollbackTarget,
  type SiteRollbackResult,
} from './site-rollback.js'
import { SiteThreads, threadCount } from './site-threads.js'

export type { RollbackTarget, SiteRollbackResult } from './site-rollback.js'

export interface RollbackOptions extends FleetOptions<SiteRollbackResult>, RollbackTarget {
  /** List what would be reverted, changing nothing. */
  dryRun?: boolean
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
  /** Sites on a machine with no live worker (SPEC §10): not touched. */
  unreachable: number
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
  const known = benchMigrations(bench)
  checkTarget(known, options)
  const selected = await selectSites(bench, options)
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
  try {
    return await overSites<
      SiteRollbackResult,
      'rolled_back' | 'planned' | 'failed' | 'nothing_to_roll_back' | 'skipped' | 'unreachable'
    >(
      bench,
      { ...options, concurrency: size || options.concurrency },
      {
        name: 'rollback',
        sites: selected,
        run: ({ name }) => rollbackOne({ site: name, path: bench.sitePath(name) }),
        blank: (site, status, error, duration_ms) => ({ site, status, reverted: [], error, duration_ms }),
        remote: { command: 'rollback', payload: { ...target, skipFailing: options.skipFailing } },
      },
      ['rolled_back', 'planned', 'failed', 'nothing_to_roll_back', 'skipped', 'unreachable'],
    )
  } finally {
    await threads?.close()
  }
}
