import type { SiteTx } from '../databases/driver.js'
import { CORE_APP, CORE_MIGRATIONS } from './core-app.js'
import { fixturesDigest, recordFixtureDigest, syncFixtures } from './fixtures.js'
import type { MigrationFile } from './manifest.js'
import { applyMigrations } from './migrations.js'

/** An app as a schema upgrade sees it: an app's manifest, or its entry in a migration plan. */
export interface SchemaApp {
  name: string
  migrations: readonly MigrationFile[]
  fixtures: readonly string[]
  /** The fixture files' digest when known already (null or absent: computed when they are synced). */
  digest?: string | null
}

/** What one app's turn did: the migrations it applied, and how many fixture rows it wrote (undefined: none synced). */
export interface AppTurn {
  migrations: string[]
  fixtures: number | undefined
}

/** What a caller of `upgradeSchema` decides, and hears, along the way. */
export interface UpgradeTurns<A extends SchemaApp> {
  /** Once the core schema is current (its tables can be read now), with the core migrations applied. */
  coreDone?(migrations: string[]): Promise<void>
  /** Before an app's turn: whether it takes one (install: it is not installed yet; migrate: it is). */
  start(app: A): boolean
  /** After an app's migrations: whether its fixtures are synced now (default: yes). */
  fixturesDue?(app: A, migrations: readonly string[]): boolean
  /**
   * The fixture digest the site has recorded for `app`, when known: synced fixtures whose
   * digest is the one recorded already leave the record as it is (one write less per site).
   */
  recordedDigest?(app: A): string | undefined
  /** After an app's turn. */
  done(app: A, turn: AppTurn): Promise<void>
}

/**
 * The one order a site's schema moves in, inside the site transaction `tx`: the core schema's
 * pending migrations first, then each of `apps` in turn (in requirement order) with its
 * pending migrations and then its fixtures, whose digest is recorded with them. `ledger` is
 * the site's, read inside `tx`. Installs and `migrate` both go through here; `turns` says
 * which apps take a turn and when fixtures are due, and hears how each turn went.
 */
export async function upgradeSchema<A extends SchemaApp>(
  tx: SiteTx,
  site: string,
  ledger: ReadonlyMap<string, ReadonlySet<string>>,
  apps: readonly A[],
  turns: UpgradeTurns<A>,
): Promise<void> {
  const core = await applyMigrations(tx, site, CORE_APP, CORE_MIGRATIONS, ledger.get(CORE_APP) ?? new Set())
  await turns.coreDone?.(core)
  for (const app of apps) {
    if (!turns.start(app)) continue
    const migrations = await applyMigrations(tx, site, app.name, app.migrations, ledger.get(app.name) ?? new Set())
    let fixtures: number | undefined
    if (turns.fixturesDue?.(app, migrations) ?? true) {
      fixtures = await syncFixtures(tx, app.name, app.fixtures)
      const digest = app.digest ?? fixturesDigest(app.fixtures)
      if (turns.recordedDigest?.(app) !== digest) await recordFixtureDigest(tx, app.name, digest)
    }
    await turns.done(app, { migrations, fixtures })
  }
}
