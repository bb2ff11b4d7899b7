import { createHash } from 'node:crypto'
import { CompiledQuery, type Kysely, type QueryResult } from 'kysely'
import type { ResumableDdl, SiteTx } from '../databases/driver.js'
import { TenancyError } from '../errors.js'
import { now } from '../registry/registry.js'
import { isReadStatement, isSchemaStatement, splitSqlScript } from './sql-script.js'

/**
 * Where a migration stopped on a database whose DDL commits as it runs: one row per
 * migration under way, `statement_index` the statement about to run (those before it are
 * done), `digest` a hash of the SQL of those before it, `failed` 1 when that statement
 * failed without applying. The row goes in the same commit as the migration's ledger row.
 */
export const PROGRESS_TABLE = 'tenancy_migration_progress'

/**
 * Creates the progress table when the site has none yet (sites made before it existed get it on
 * their next migrate).
 */
export async function ensureProgressTable(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable(PROGRESS_TABLE)
    .ifNotExists()
    .addColumn('app', 'varchar(64)', (c) => c.notNull())
    .addColumn('name', 'varchar(128)', (c) => c.notNull())
    .addColumn('statement_index', 'integer', (c) => c.notNull())
    .addColumn('digest', 'varchar(64)', (c) => c.notNull())
    .addColumn('failed', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('updated_at', 'varchar(32)', (c) => c.notNull())
    .addPrimaryKeyConstraint(`${PROGRESS_TABLE}_pk`, ['app', 'name'])
    .execute()
}

interface Position {
  index: number
  digest: string
  failed: boolean
}

const chain = (digest: string, text: string) =>
  createHash('sha256').update(digest).update('\0').update(text).digest('hex')

/** What the statements a resumed migration skips return: they ran (and committed) in the interrupted run. */
const SKIPPED: QueryResult<unknown> = { rows: [] }

/**
 * Runs one migration statement by statement where DDL is not transactional. Before each
 * statement its index is recorded; a DDL statement's implicit commit commits that record
 * with everything before it, so after a crash the recorded index names the first statement
 * that may not be done, and only that statement may be done already. On resume, statements
 * before it are skipped (reads run again: the migration's code may depend on them), it is
 * run again with "already exists" / "does not exist" taken as done (unless it is known to
 * have failed), and the rest run as usual. A migration that issues different statements
 * than the interrupted run before that point is refused instead of guessed at.
 *
 * `body` issues the migration's statements through `run` (a `.sql` file) or through the
 * Kysely it is given (a JS migration's `up`).
 */
export async function runResumable(
  { trx, driver }: SiteTx,
  ddl: ResumableDdl,
  app: string,
  name: string,
  body: (run: (query: CompiledQuery) => Promise<QueryResult<unknown>>, db: Kysely<any>) => Promise<void>,
): Promise<void> {
  const row = (await trx
    .selectFrom(PROGRESS_TABLE)
    .select(['statement_index', 'digest', 'failed'])
    .where('app', '=', app)
    .where('name', '=', name)
    .executeTakeFirst()) as { statement_index: number; digest: string; failed: number } | undefined
  const resume: Position | undefined = row && {
    index: Number(row.statement_index),
    digest: row.digest,
    failed: Number(row.failed) === 1,
  }
  let next = 0
  let digest = ''
  const mismatch = () =>
    new TenancyError(
      `migration ${app}/${name} was interrupted at statement ${resume!.index + 1}, ` +
        `and it now issues other statements before that one; ` +
        `make it issue the same statements again, or finish it by hand and delete its row from ${PROGRESS_TABLE}`,
    )
  const record = async (index: number, before: string, failed = 0): Promise<void> => {
    await driver
      .upsert(
        trx,
        PROGRESS_TABLE,
        { app, name, statement_index: index, digest: before, failed, updated_at: now() },
        ['app', 'name'],
        {
          statement_index: index,
          digest: before,
          failed,
          updated_at: now(),
        },
      )
      .execute()
  }

  const run = async (query: CompiledQuery): Promise<QueryResult<unknown>> => {
    // A raw script of several statements (sql.raw in a JS migration) is as many positions:
    // run as one, a rerun would stop at its first statement's "already exists".
    const parts = query.parameters.length === 0 ? splitSqlScript(query.sql) : []
    if (parts.length > 1) {
      let result = SKIPPED
      for (const part of parts) result = await run(CompiledQuery.raw(part))
      return result
    }
    const index = next++
    const before = digest
    digest = chain(digest, query.sql)
    if (resume && index < resume.index) return isReadStatement(query.sql) ? trx.executeQuery(query) : SKIPPED
    const resuming = resume !== undefined && index === resume.index
    if (resuming && before !== resume.digest) throw mismatch()
    await record(index, before)
    try {
      return await trx.executeQuery(query)
    } catch (error) {
      const schema = isSchemaStatement(query.sql)
      // The one statement that may have committed just before the crash: its work is there.
      if (resuming && !resume.failed && schema && ddl.alreadyApplied(error)) return SKIPPED
      // Known to have failed, so a rerun does not take its "already exists" for its own work.
      if (schema) await ddl.commitAlone(trx, () => record(index, before, 1)).catch(() => {})
      throw error
    }
  }
  await ddl.through(run, async (db) => body(run, db))
  if (resume && next <= resume.index) throw mismatch()
}

/** Forgets a migration's position once its ledger row is written (in the same transaction). */
export async function clearPosition(trx: Kysely<any>, app: string, name: string): Promise<void> {
  await trx.deleteFrom(PROGRESS_TABLE).where('app', '=', app).where('name', '=', name).execute()
}

export { CompiledQuery }
