import { CompiledQuery, type Kysely } from 'kysely'
import { fixturesDigest } from '../apps/fixtures.js'
import type { MigrationFile } from '../apps/manifest.js'
import { LEDGER_TABLE, MigrationError, addToLedger } from '../apps/migrations.js'
import { upgradeSchema } from '../apps/upgrade-schema.js'
import { getDriver } from '../databases/index.js'
import type { DatabaseDriver, SiteConnection } from '../databases/driver.js'
import { messageOf } from '../errors.js'
import { now, type InstalledAppSummary } from '../registry/registry.js'
import { CORE_APP, CORE_MIGRATIONS } from '../apps/core-app.js'
import { readSiteConfig, type SiteConfig } from '../sites/site.js'

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
  /**
   * No read before the site's transaction: the caller has just read it (`checkSite` found work)
   * or expects work there. The state is read inside the transaction, as always.
   */
  skipFirstRead?: boolean
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
  /** Name to version, in the order the site installed them (`installed_at`, then name). */
  installed: Map<string, string>
  digests: Map<string, string>
}

interface StateRow {
  kind: 'app' | 'ledger' | 'digest'
  /** An installed app's name, or the app of a ledger row or fixture digest. */
  a: string
  /** An installed app's version, a ledger row's migration, or a fixture digest. */
  b: string
  /** An installed app's `installed_at`. */
  c: string | null
}

// The installed apps, the ledger and (where the site has them: core migration 0002) the
// fixture digests in one statement, compiled once: one prepare and one step on each site (a
// consistent snapshot on every database), so a site with nothing pending costs one read.
const APPS_AND_LEDGER =
  `select 'app' as kind, name as a, version as b, installed_at as c from installed_apps ` +
  `union all select 'ledger', app, name, null from ${LEDGER_TABLE}`
const STATE_QUERY = CompiledQuery.raw(
  `${APPS_AND_LEDGER} union all select 'digest', app, digest, null from tenancy_fixtures`,
)
const STATE_QUERY_WITHOUT_DIGESTS = CompiledQuery.raw(APPS_AND_LEDGER)
const DIGESTS_QUERY = CompiledQuery.raw("select 'digest' as kind, app as a, digest as b from tenancy_fixtures")

const byInstallOrder = (x: StateRow, y: StateRow) =>
  x.c! < y.c! ? -1 : x.c! > y.c! ? 1 : x.a < y.a ? -1 : x.a > y.a ? 1 : 0

/**
 * The state of a site. Outside a transaction, in one statement, or two where the site has no
 * fixture digests yet (the first fails then); inside one, where a failed statement would end
 * the transaction on PostgreSQL, the digests are read only when the ledger says they exist.
 */
async function readState(db: Kysely<any>, inTransaction = false): Promise<SiteState> {
  if (!inTransaction)
    return stateOf(
      await db.executeQuery<StateRow>(STATE_QUERY).then(
        (r) => r.rows,
        async () => (await db.executeQuery<StateRow>(STATE_QUERY_WITHOUT_DIGESTS)).rows,
      ),
    )
  const rows = (await db.executeQuery<StateRow>(STATE_QUERY_WITHOUT_DIGESTS)).rows
  if (!rows.some((r) => r.kind === 'ledger' && r.a === CORE_APP && r.b === '0002_fixture_digests')) return stateOf(rows)
  return stateOf([...rows, ...(await db.executeQuery<StateRow>(DIGESTS_QUERY)).rows])
}

/** `readState` outside a transaction through the driver's `readOnce`: no connection, no query builder. */
async function readStateOnce(driver: DatabaseDriver, config: SiteConfig, path: string): Promise<SiteState> {
  const read = (query: CompiledQuery) => driver.readOnce!(config, path, query) as Promise<StateRow[]>
  return stateOf(await read(STATE_QUERY).catch(() => read(STATE_QUERY_WITHOUT_DIGESTS)))
}

function stateOf(rows: readonly StateRow[]): SiteState {
  const ledger = new Map<string, Set<string>>()
  const apps: StateRow[] = []
  const digests = new Map<string, string>()
  for (const row of rows) {
    if (row.kind === 'app') apps.push(row)
    else if (row.kind === 'ledger') addToLedger(ledger, row.a, row.b)
    else digests.set(row.a, row.b)
  }
  apps.sort(byInstallOrder)
  return { ledger, installed: new Map(apps.map((r) => [r.a, r.b])), digests }
}

const summaryOf = (installed: ReadonlyMap<string, string>): InstalledAppSummary[] =>
  Array.from(installed, ([name, version]) => ({ name, version }))

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

/** How a site went, and the apps it has installed when it could be read (what the registry's summary should say). */
export interface SiteOutcome {
  result: SiteResult
  apps?: InstalledAppSummary[]
}

/** What one read of a site found: an outcome without a result when something is pending. */
export interface SiteCheck extends Omit<SiteOutcome, 'result'> {
  /** Undefined: something is pending, and `migrateSite` (with `skipFirstRead`) applies it. */
  result?: SiteResult
}

/** Opens the site of `job`, calls `fn` on it and closes it; a site that cannot be opened is `failed(error)`. */
async function onSite<T>(job: SiteJob, fn: (conn: SiteConnection) => Promise<T>, failed: (error: unknown) => T) {
  let conn: SiteConnection | undefined
  try {
    const config = readSiteConfig(job.path)
    conn = await (await getDriver(config.db_type)).connect(config, job.path)
  } catch (error) {
    return failed(error)
  }
  try {
    return await fn(conn)
  } finally {
    await conn.close().catch(() => {})
  }
}

const unopened = (job: SiteJob, error: unknown): SiteResult => ({
  site: job.site,
  status: 'failed',
  applied: [],
  error: messageOf(error),
  duration_ms: 0,
})

/** A site's result so far, timed from `started`. */
function resultOf(job: SiteJob, started: number) {
  return (status: SiteStatus, extra: Partial<SiteResult> = {}): SiteResult => ({
    site: job.site,
    status,
    applied: [],
    error: null,
    ...extra,
    duration_ms: Math.round(performance.now() - started),
  })
}

function failure(result: ReturnType<typeof resultOf>, error: unknown): SiteResult {
  if (error instanceof MigrationError)
    return result('failed', { error: error.detail, app: error.app, migration: error.migration })
  return result('failed', { error: messageOf(error) })
}

/** The result of a site whose state `state` needs no transaction (nothing pending, or a dry run); else undefined. */
function settled(plan: MigrationPlan, job: SiteJob, state: SiteState, result: ReturnType<typeof resultOf>) {
  const first = whatIsPending(plan, state)
  if (first.migrations.length === 0 && first.fixtures.length === 0 && first.versions.length === 0)
    return result('up_to_date')
  if (job.dryRun)
    return result(first.migrations.length > 0 ? 'pending' : 'up_to_date', {
      pending: first.migrations,
      fixtures_synced: [],
    })
  return undefined
}

/**
 * One read-only look at a site (its installed apps, ledger and fixture digests, no write
 * lock): its result when nothing is pending or the run is a dry run, or no result when
 * `migrateSite` has work to do there. Runs no migration code, so `migrate` does it on its own
 * thread and hands only sites with work to worker threads. Never throws.
 */
export async function checkSite(plan: MigrationPlan, job: SiteJob): Promise<SiteCheck> {
  const result = resultOf(job, performance.now())
  const look = (state: SiteState): SiteCheck => ({
    result: settled(plan, job, state, result),
    apps: summaryOf(state.installed),
  })
  let config: SiteConfig
  let driver: DatabaseDriver
  try {
    config = readSiteConfig(job.path)
    driver = await getDriver(config.db_type)
  } catch (error) {
    return { result: unopened(job, error) }
  }
  if (driver.readOnce)
    return readStateOnce(driver, config, job.path).then(look, (error: unknown) => ({ result: failure(result, error) }))
  return onSite(
    job,
    async (conn) => {
      try {
        return look(await readState(conn.db))
      } catch (error) {
        return { result: failure(result, error) }
      }
    },
    (error) => ({ result: unopened(job, error) }),
  )
}

/**
 * Brings one site up to date: one cheap read of its ledger, installed apps and fixture
 * digests (skipped with `job.skipFirstRead`); when
 * something is pending, one transaction (holding the site's write lock, the state read again
 * inside it) applies the core's and each installed app's new migrations in requirement order,
 * syncs changed fixtures and records new app versions. A failure rolls the whole site back
 * where the database allows (SQLite, PostgreSQL). Never throws.
 */
export async function migrateSite(plan: MigrationPlan, job: SiteJob): Promise<SiteOutcome> {
  return onSite(
    job,
    (conn) => migrateOpen(plan, job, conn),
    (error) => ({ result: unopened(job, error) }),
  )
}

/**
 * `migrateSite` on a connection the caller holds (and closes), with the site's installed apps
 * after it (in install order; undefined when it failed), which the caller need not read again.
 */
export async function migrateOpenSite(plan: MigrationPlan, job: SiteJob, conn: SiteConnection): Promise<SiteOutcome> {
  return migrateOpen(plan, job, conn)
}

async function migrateOpen(plan: MigrationPlan, job: SiteJob, conn: SiteConnection): Promise<SiteOutcome> {
  const result = resultOf(job, performance.now())
  try {
    if (!job.skipFirstRead) {
      const state = await readState(conn.db)
      const done = settled(plan, job, state, result)
      if (done) return { result: done, apps: summaryOf(state.installed) }
    }
    const bumped: string[] = []
    // The ledger exists: a read before this one found it.
    const done = await conn.transaction(async (tx) => {
      const { trx } = tx
      const state = await readState(trx, true)
      const versions = new Map(state.installed)
      const applied: string[] = []
      const synced: string[] = []
      await upgradeSchema(tx, job.site, state.ledger, plan.apps, {
        coreDone: async (names) => {
          for (const name of names) applied.push(`${CORE_APP}/${name}`)
        },
        start: (app) => state.installed.has(app.name),
        fixturesDue: (app, names) =>
          names.length > 0 || (app.digest !== null && state.digests.get(app.name) !== app.digest),
        recordedDigest: (app) => state.digests.get(app.name),
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
            versions.set(app.name, app.version)
            bumped.push(`${app.name} ${version} -> ${app.version}`)
          }
        },
      })
      // Migrate installs nothing: the installed apps are the ones read, with their new versions.
      return { applied, synced, apps: summaryOf(versions) }
    })
    const changed = done.applied.length > 0 || done.synced.length > 0 || bumped.length > 0
    return {
      result: result(changed ? 'migrated' : 'up_to_date', {
        applied: done.applied,
        fixtures_synced: done.synced,
        ...(changed ? { apps: done.apps } : {}),
        ...(bumped.length ? { versions: bumped } : {}),
      }),
      apps: done.apps,
    }
  } catch (error) {
    return { result: failure(result, error) }
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
