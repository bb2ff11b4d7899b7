import type { Kysely } from 'kysely'
import { fixturesDigest } from '../apps/fixtures.js'
import type { MigrationFile } from '../apps/manifest.js'
import { MigrationError, readLedger } from '../apps/migrations.js'
import { upgradeSchema } from '../apps/upgrade-schema.js'
import { getDriver } from '../databases/index.js'
import type { SiteConnection } from '../databases/driver.js'
import { messageOf } from '../errors.js'
import { now } from '../registry/registry.js'
import { CORE_APP, CORE_MIGRATIONS } from '../apps/core-app.js'
import { readSiteConfig } from '../sites/site.js'

/** What a migrating process needs to know about one app; plain data, so it crosses to worker threads. */
export interface PlannedApp {
  name: string
  version: string
  migrations: MigrationFile[]
  fixtures: string[]
  /** The fixture files' digest; null: not checked (fixtures are synced only with new migrations). */
  digest: string | null
}

/** Every app of the bench, requirements first. */
export interface MigrationPlan {
  apps: PlannedApp[]
}

export interface SiteJob {
  site: string
  path: string
  dryRun?: boolean
}

/** `interrupted`: not started because the run was stopped by a signal. */
export type SiteStatus = 'migrated' | 'up_to_date' | 'failed' | 'skipped' | 'pending' | 'interrupted' | 'unreachable'

/** One site's outcome, in the SPEC's `--json` shape plus where a failure happened. */
export interface SiteResult {
  site: string
  status: SiteStatus
  applied: string[]
  /** With --dry-run: what would be applied. */
  pending?: string[]
  /** The site's installed apps after the run, when they changed (for the registry's summary). */
  apps?: { name: string; version: string }[]
  fixtures_synced?: string[]
  /** App versions recorded anew: `tenant_ops 1.0.0 -> 1.1.0`. */
  versions?: string[]
  error: string | null
  app?: string
  migration?: string
  duration_ms: number
}

interface SiteState {
  ledger: Map<string, Set<string>>
  installed: Map<string, string>
  digests: Map<string, string>
}

async function readState(db: Kysely<any>): Promise<SiteState> {
  const ledger = await readLedger(db)
  const installed = new Map(
    (
      (await db.selectFrom('installed_apps').select(['name', 'version']).execute()) as {
        name: string
        version: string
      }[]
    ).map((r) => [r.name, r.version]),
  )
  const digests = new Map<string, string>()
  if (ledger.get(CORE_APP)?.has('0002_fixture_digests')) {
    for (const row of (await db.selectFrom('tenancy_fixtures').select(['app', 'digest']).execute()) as {
      app: string
      digest: string
    }[])
      digests.set(row.app, row.digest)
  }
  return { ledger, installed, digests }
}

/** What a site lacks: pending migrations (`app/name`), apps whose fixtures changed, apps whose version changed. */
function whatIsPending(plan: MigrationPlan, state: SiteState) {
  const migrations: string[] = CORE_MIGRATIONS.filter((m) => !state.ledger.get(CORE_APP)?.has(m.name)).map(
    (m) => `${CORE_APP}/${m.name}`,
  )
  const fixtures: string[] = []
  const versions: PlannedApp[] = []
  for (const app of plan.apps) {
    const version = state.installed.get(app.name)
    if (version === undefined) continue
    const applied = state.ledger.get(app.name)
    for (const m of app.migrations) if (!applied?.has(m.name)) migrations.push(`${app.name}/${m.name}`)
    if (app.digest !== null && state.digests.get(app.name) !== app.digest) fixtures.push(app.name)
    if (version !== app.version) versions.push(app)
  }
  return { migrations, fixtures, versions }
}

/**
 * Brings one site up to date: one cheap read of its ledger, installed apps and fixture
 * digests; when something is pending, one transaction (holding the site's write lock, the
 * ledger read again inside it) applies the core's and each installed app's new migrations in
 * requirement order, syncs changed fixtures and records new app versions. A failure rolls
 * the whole site back where the database allows (SQLite, PostgreSQL). Never throws.
 */
export async function migrateSite(plan: MigrationPlan, job: SiteJob): Promise<SiteResult> {
  let conn: SiteConnection | undefined
  try {
    const config = readSiteConfig(job.path)
    conn = await (await getDriver(config.db_type)).connect(config, job.path)
  } catch (error) {
    return { site: job.site, status: 'failed', applied: [], error: messageOf(error), duration_ms: 0 }
  }
  try {
    return await migrateOpenSite(plan, job, conn)
  } finally {
    await conn.close().catch(() => {})
  }
}

/** `migrateSite` on a connection the caller holds (and closes). */
export async function migrateOpenSite(plan: MigrationPlan, job: SiteJob, conn: SiteConnection): Promise<SiteResult> {
  const started = performance.now()
  const result = (status: SiteStatus, extra: Partial<SiteResult> = {}): SiteResult => ({
    site: job.site,
    status,
    applied: [],
    error: null,
    ...extra,
    duration_ms: Math.round(performance.now() - started),
  })
  try {
    const first = whatIsPending(plan, await readState(conn.db))
    if (first.migrations.length === 0 && first.fixtures.length === 0 && first.versions.length === 0)
      return result('up_to_date')
    if (job.dryRun)
      return result(first.migrations.length > 0 ? 'pending' : 'up_to_date', {
        pending: first.migrations,
        fixtures_synced: [],
      })
    const bumped: string[] = []
    // The ledger exists: readState above read it.
    const done = await conn.transaction(async (tx) => {
      const { trx } = tx
      const state = await readState(trx)
      const applied: string[] = []
      const synced: string[] = []
      await upgradeSchema(tx, job.site, state.ledger, plan.apps, {
        coreDone: async (names) => {
          for (const name of names) applied.push(`${CORE_APP}/${name}`)
        },
        start: (app) => state.installed.has(app.name),
        fixturesDue: (app, names) =>
          names.length > 0 || (app.digest !== null && state.digests.get(app.name) !== app.digest),
        done: async (app, turn) => {
          for (const name of turn.migrations) applied.push(`${app.name}/${name}`)
          if (turn.fixtures !== undefined) synced.push(app.name)
          const version = state.installed.get(app.name)
          if (version !== app.version) {
            await trx
              .updateTable('installed_apps')
              .set({ version: app.version, updated_at: now() })
              .where('name', '=', app.name)
              .execute()
            bumped.push(`${app.name} ${version} -> ${app.version}`)
          }
        },
      })
      const apps = (await trx
        .selectFrom('installed_apps')
        .select(['name', 'version'])
        .orderBy('installed_at')
        .orderBy('name')
        .execute()) as { name: string; version: string }[]
      return { applied, synced, apps }
    })
    const changed = done.applied.length > 0 || done.synced.length > 0 || bumped.length > 0
    return result(changed ? 'migrated' : 'up_to_date', {
      applied: done.applied,
      fixtures_synced: done.synced,
      ...(changed ? { apps: done.apps } : {}),
      ...(bumped.length ? { versions: bumped } : {}),
    })
  } catch (error) {
    if (error instanceof MigrationError)
      return result('failed', { error: error.detail, app: error.app, migration: error.migration })
    return result('failed', { error: messageOf(error) })
  }
}

/** The plan for `apps` (already in requirement order): plain data with each app's fixture digest. */
export function planApps(
  apps: readonly { name: string; version: string; migrations: MigrationFile[]; fixtures: string[] }[],
  options: { checkFixtures?: boolean } = {},
): MigrationPlan {
  const check = options.checkFixtures ?? true
  return {
    apps: apps.map((a) => ({
      name: a.name,
      version: a.version,
      migrations: a.migrations,
      fixtures: a.fixtures,
      digest: check ? fixturesDigest(a.fixtures) : null,
    })),
  }
}
