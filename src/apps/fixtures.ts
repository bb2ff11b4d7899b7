import { createHash } from 'node:crypto'
import { readFileSync, statSync } from 'node:fs'
import { basename } from 'node:path'
import type { CompiledQuery, Kysely } from 'kysely'
import type { DatabaseDriver, SiteTx } from '../databases/driver.js'
import { TenancyError, messageOf, usageError } from '../errors.js'
import { readJsonFile } from '../util/json-file.js'

const IDENTIFIER = /^[a-z_][a-z0-9_]{0,63}$/

interface FixtureFile {
  table: string
  key?: string[]
  rows: Record<string, unknown>[]
}

const parsed = new Map<string, FixtureFile>()

/**
 * Each fixture file's upserts, compiled once per kind of database and key: its rows are the
 * same on every site, so a migrate of a thousand sites builds and compiles them once, not a
 * thousand times (the site's key is still read on each site, so a site whose table differs
 * gets upserts of its own).
 */
const compiled = new Map<string, CompiledQuery[]>()

/** Forgets the fixture files read so far (see `forgetLoadedApps`). */
export function forgetParsedFixtures(): void {
  parsed.clear()
  compiled.clear()
}

function readFixture(file: string): FixtureFile {
  const cached = parsed.get(file)
  if (cached) return cached
  const raw = readJsonFile(file) as Partial<FixtureFile>
  const bad = (what: string) => usageError(`fixture ${file}: ${what}`)
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw bad('must hold {"table": "...", "rows": [...]}')
  if (typeof raw.table !== 'string' || !IDENTIFIER.test(raw.table)) throw bad('"table" must be a lower-case table name')
  if (
    raw.key !== undefined &&
    (!Array.isArray(raw.key) ||
      raw.key.length === 0 ||
      !raw.key.every((k) => typeof k === 'string' && IDENTIFIER.test(k)))
  ) {
    throw bad('"key" must be a list of column names')
  }
  if (!Array.isArray(raw.rows) || !raw.rows.every((r) => typeof r === 'object' && r !== null && !Array.isArray(r))) {
    throw bad('"rows" must be a list of objects')
  }
  for (const row of raw.rows) {
    for (const column of Object.keys(row))
      if (!IDENTIFIER.test(column)) throw bad(`column "${column}" is not a valid column name`)
  }
  const fixture = raw as FixtureFile
  parsed.set(file, fixture)
  return fixture
}

const digests = new Map<string, string>()

/**
 * A digest of an app's fixture files (names and contents); changes when any fixture changes.
 * Cached per process by each file's size and modification time.
 */
export function fixturesDigest(files: readonly string[]): string {
  const stamp = files
    .map((f) => {
      const st = statSync(f)
      return `${f}:${st.size}:${st.mtimeMs}`
    })
    .join('|')
  const cached = digests.get(stamp)
  if (cached) return cached
  const hash = createHash('sha256')
  for (const file of files) hash.update(basename(file)).update('\0').update(readFileSync(file)).update('\0')
  const digest = hash.digest('hex')
  digests.set(stamp, digest)
  return digest
}

/** Records that an app's fixtures are synced as of `digest` (inside the caller's transaction). */
export async function recordFixtureDigest({ trx, driver }: SiteTx, app: string, digest: string): Promise<void> {
  const at = new Date().toISOString()
  await driver
    .upsert(trx, 'tenancy_fixtures', { app, digest, synced_at: at }, ['app'], {
      digest,
      synced_at: at,
    })
    .execute()
}

/** How many rows a fixture file holds. */
export function fixtureRowCount(file: string): number {
  return readFixture(file).rows.length
}

/**
 * Upserts an app's fixture rows by primary key (or the file's `key`), file by file in name
 * order, inside the caller's transaction. Returns how many rows were written.
 */
export async function syncFixtures({ trx, driver }: SiteTx, app: string, files: readonly string[]): Promise<number> {
  let count = 0
  for (const file of files) {
    const fixture = readFixture(file)
    const key = fixture.key ?? (await driver.primaryKey(trx, fixture.table))
    if (key.length === 0) {
      throw new TenancyError(
        `fixture ${file}: table "${fixture.table}" has no primary key and the file gives no "key"; ` +
          `add "key": ["column"]`,
      )
    }
    const cacheKey = `${driver.type}\0${file}\0${key.join(',')}`
    let queries = compiled.get(cacheKey)
    if (!queries) {
      queries = upserts(trx, driver, file, fixture, key)
      compiled.set(cacheKey, queries)
    }
    for (const query of queries) {
      try {
        await trx.executeQuery(query)
      } catch (error) {
        throw new TenancyError(
          `fixtures of app "${app}": ${file} could not be written to "${fixture.table}": ${messageOf(error)}`,
          { cause: error, namedApp: app },
        )
      }
    }
    count += fixture.rows.length
  }
  return count
}

/** The upserts that write `fixture`'s rows by `key`: rows with the same columns go in one multi-row upsert. */
function upserts(
  db: Kysely<any>,
  driver: DatabaseDriver,
  file: string,
  fixture: FixtureFile,
  key: string[],
): CompiledQuery[] {
  for (const row of fixture.rows) {
    const missing = key.filter((k) => !(k in row))
    if (missing.length > 0) throw usageError(`fixture ${file}: a row has no value for key column "${missing[0]}"`)
  }
  // A file is usually one batch.
  const batches = new Map<string, Record<string, unknown>[]>()
  for (const row of fixture.rows) {
    const columns = Object.keys(row).sort().join(',')
    let batch = batches.get(columns)
    if (!batch) batches.set(columns, (batch = []))
    batch.push(
      Object.fromEntries(
        Object.entries(row).map(([k, v]) => [
          k,
          typeof v === 'object' && v !== null ? JSON.stringify(v) : typeof v === 'boolean' ? Number(v) : v,
        ]),
      ),
    )
  }
  return [...batches.values()].map((rows) => {
    const updates = Object.keys(rows[0]!).filter((c) => !key.includes(c))
    return driver.upsertRows(db, fixture.table, rows, key, updates).compile()
  })
}
