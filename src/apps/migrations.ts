import { readFileSync } from 'node:fs'
import { importFile } from '../util/import-file.js'
import { sql, type Kysely } from 'kysely'
import type { DbType } from '../config/config.js'
import { TenancyError, messageOf } from '../errors.js'
import { now } from '../registry/registry.js'
import type { SiteTx } from '../databases/driver.js'
import type { MigrationFile } from './manifest.js'
import { CompiledQuery, clearPosition, ensureProgressTable, runResumable } from './resumable-migration.js'
import { splitSqlScript } from './sql-script.js'

// Why not Kysely's Migrator: it keeps a ledger and a lock table per app, introspects every
// table of the site on each run, wraps each app in its own transaction and takes a
// server-wide GET_LOCK on MySQL. A site here is migrated as one unit: one transaction over
// all apps (so a failing site is left as it was), one ledger read for all apps (so a
// no-op deploy costs one query per site), and the database's own write lock. Migration
// files keep Kysely's shape: `up(db)` / `down(db)`.

/** What a JS migration's `up` and `down` receive besides the Kysely instance. */
export interface MigrationContext {
  sql: typeof sql
  dbType: DbType
  site: string
}

/** A migration module: Kysely's `Migration` shape, with a context argument. */
export interface MigrationModule {
  up(db: Kysely<any>, ctx: MigrationContext): Promise<void>
  down?(db: Kysely<any>, ctx: MigrationContext): Promise<void>
}

/** The per-site ledger of applied migrations, one row per app and migration. */
export const LEDGER_TABLE = 'tenancy_migrations'

/** Creates the ledger when the site has none yet. */
export async function ensureLedger(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable(LEDGER_TABLE)
    .ifNotExists()
    .addColumn('app', 'varchar(64)', (c) => c.notNull())
    .addColumn('name', 'varchar(128)', (c) => c.notNull())
    .addColumn('applied_at', 'varchar(32)', (c) => c.notNull())
    .addPrimaryKeyConstraint(`${LEDGER_TABLE}_pk`, ['app', 'name'])
    .execute()
}

/** Every applied migration on a site, by app, in one query. */
export async function readLedger(db: Kysely<any>): Promise<Map<string, Set<string>>> {
  const rows = (await db.selectFrom(LEDGER_TABLE).select(['app', 'name']).execute()) as { app: string; name: string }[]
  const ledger = new Map<string, Set<string>>()
  for (const row of rows) addToLedger(ledger, row.app, row.name)
  return ledger
}

/** Adds one ledger row (`app`, migration `name`) to a ledger read by app. */
export function addToLedger(ledger: Map<string, Set<string>>, app: string, name: string): void {
  let names = ledger.get(app)
  if (!names) ledger.set(app, (names = new Set()))
  names.add(name)
}

const modules = new Map<string, Promise<MigrationModule>>()
const scripts = new Map<string, string>()

/** Loads a JS migration once per process and checks its shape. */
async function loadModule(file: string): Promise<MigrationModule> {
  let loading = modules.get(file)
  if (!loading) {
    loading = importFile(file).then(
      (mod: Partial<MigrationModule> & { default?: Partial<MigrationModule> }) => {
        const m = typeof mod.up === 'function' ? mod : mod.default
        if (!m || typeof m.up !== 'function')
          throw new TenancyError(`migration ${file} must export an "up(db)" function`)
        return m as MigrationModule
      },
      (error: unknown) => {
        // V8's SyntaxError names neither the file nor the line: at least name the file.
        throw new TenancyError(`${file}: ${messageOf(error)}`, { cause: error })
      },
    )
    modules.set(file, loading)
  }
  return loading
}

/**
 * Starts loading, without waiting, the JS migrations of `apps`. Node's loader reads the files
 * on the thread pool and compiles and evaluates them whenever this thread waits, so a pipeline
 * that prefetches its apps gets their migrations loaded while create-site waits for the
 * Administrator's password hash, instead of each install loading its own on the way. A module
 * that fails to load fails the migration that needs it, with the same message as without a
 * prefetch. (Module hooks are not prefetched: a hook's module is imported when it is called.)
 */
export function prefetchMigrations(apps: readonly { migrations: readonly MigrationFile[] }[]): void {
  for (const app of apps)
    for (const migration of app.migrations) if (migration.kind === 'js') loadModule(migration.file).catch(() => {})
}

function loadScript(file: string): string {
  let text = scripts.get(file)
  if (text === undefined) {
    text = readFileSync(file, 'utf8')
    scripts.set(file, text)
  }
  return text
}

/** The error of a failed migration, naming the app and migration. */
export class MigrationError extends TenancyError {
  readonly app: string
  readonly migration: string
  /** What went wrong, without the "migration app/name failed" prefix (for listings that name it already). */
  readonly detail: string
  /** The message without the database's note: for a caller that drops the site anyway (a failed new-site). */
  readonly withoutNote: string

  /** `note`: what the database adds (without transactional DDL: what stayed in place). */
  constructor(app: string, migration: string, cause: unknown, note?: string) {
    const detail = `${messageOf(cause)}${note ? `; ${note}` : ''}`
    super(`migration ${app}/${migration} failed: ${detail}`, { cause })
    this.name = 'MigrationError'
    this.app = app
    this.migration = migration
    this.detail = detail
    this.withoutNote = `migration ${app}/${migration} failed: ${messageOf(cause)}`
  }
}

/** A migration defined in code, such as the site core schema. */
export interface InlineMigration {
  name: string
  up(db: Kysely<any>, ctx: MigrationContext): Promise<void>
}

/**
 * Applies, inside the site transaction `tx`, every migration of `app` that the ledger does
 * not hold, in order, recording each in the ledger as it completes. Returns the names applied.
 * On a database without transactional DDL (`tx.driver.resumableDdl`), each migration runs one
 * statement at a time with its position recorded, so a rerun after a crash or a failure
 * resumes inside the migration instead of meeting its own tables.
 */
export async function applyMigrations(
  tx: SiteTx,
  site: string,
  app: string,
  migrations: readonly (MigrationFile | InlineMigration)[],
  applied: ReadonlySet<string>,
): Promise<string[]> {
  const { trx, exec, driver } = tx
  const ctx: MigrationContext = { sql, dbType: driver.type, site }
  const done: string[] = []
  const ddl = driver.resumableDdl
  if (ddl && migrations.some((m) => !applied.has(m.name))) await ensureProgressTable(trx)
  for (const migration of migrations) {
    if (applied.has(migration.name)) continue
    try {
      if (ddl) {
        await runResumable(tx, ddl, app, migration.name, async (run, db) => {
          if ('up' in migration) await migration.up(db, ctx)
          else if (migration.kind === 'sql')
            for (const statement of splitSqlScript(loadScript(migration.file))) await run(CompiledQuery.raw(statement))
          else await (await loadModule(migration.file)).up(db, ctx)
        })
      } else if ('up' in migration) await migration.up(trx, ctx)
      else if (migration.kind === 'sql') await exec(loadScript(migration.file))
      else await (await loadModule(migration.file)).up(trx, ctx)
      // A template, not the query builder: it is built once per site and migration.
      await sql`insert into ${sql.table(LEDGER_TABLE)} (app, name, applied_at) values (${app}, ${migration.name}, ${now()})`.execute(
        trx,
      )
      if (ddl) {
        await clearPosition(trx, app, migration.name)
        // Its DDL is committed already: commit its ledger row now too, so the ledger names
        // every migration that completed even when a later one fails and rolls back.
        await sql`commit`.execute(trx)
      }
    } catch (error) {
      // Where DDL commits as it runs, say so: a rerun meets what stayed.
      throw new MigrationError(app, migration.name, error, ddl?.failureNote)
    }
    done.push(migration.name)
  }
  return done
}

/** One applied migration to revert, and the file it came from. */
export interface RevertStep {
  app: string
  migration: MigrationFile
}

/** Why a migration cannot be reverted, or undefined when it can (a module's `down`, a `.sql` one's `.down.sql`). */
export async function missingDown(step: RevertStep): Promise<string | undefined> {
  const { app, migration } = step
  if (migration.kind === 'sql')
    return migration.downFile ? undefined : `${app}/${migration.name} has no ${migration.name}.down.sql beside it`
  const mod = await loadModule(migration.file)
  return typeof mod.down === 'function' ? undefined : `${app}/${migration.name} has no down() function`
}

/** The name under which a revert's position is kept (MariaDB), apart from the migration's own. */
const downKey = (name: string) => `${name}.down`

/**
 * Reverts `steps` in order (newest first) inside the site transaction `tx`: each migration's
 * `down` (or its `.down.sql`), then its ledger row removed. Every step must have a down
 * (`missingDown`), checked by the caller before it starts. Without transactional DDL, each
 * down runs statement by statement with its position kept, and each reverted migration's
 * ledger row is committed gone at once, so a failed or killed rollback resumes inside the
 * down it stopped in. Returns `app/name` of each migration reverted.
 */
export async function revertMigrations(tx: SiteTx, site: string, steps: readonly RevertStep[]): Promise<string[]> {
  const { trx, exec, driver } = tx
  const ctx: MigrationContext = { sql, dbType: driver.type, site }
  const ddl = driver.resumableDdl
  if (ddl && steps.length > 0) await ensureProgressTable(trx)
  const done: string[] = []
  for (const { app, migration } of steps) {
    try {
      if (ddl) {
        await runResumable(tx, ddl, app, downKey(migration.name), async (run, db) => {
          if (migration.kind === 'sql')
            for (const statement of splitSqlScript(loadScript(migration.downFile!)))
              await run(CompiledQuery.raw(statement))
          else await (await loadModule(migration.file)).down!(db, ctx)
        })
      } else if (migration.kind === 'sql') await exec(loadScript(migration.downFile!))
      else await (await loadModule(migration.file)).down!(trx, ctx)
      await trx.deleteFrom(LEDGER_TABLE).where('app', '=', app).where('name', '=', migration.name).execute()
      if (ddl) {
        await clearPosition(trx, app, downKey(migration.name))
        await sql`commit`.execute(trx)
      }
    } catch (error) {
      throw new MigrationError(app, `${migration.name} (down)`, error, ddl?.failureNote)
    }
    done.push(`${app}/${migration.name}`)
  }
  return done
}

export { sql }
