import { sql, type Kysely } from 'kysely'
import type { Bench } from '../bench.js'
import type { DbType } from '../config/config.js'
import { getDriver } from '../databases/index.js'
import { messageOf } from '../errors.js'
import type { SiteRecord } from '../registry/registry.js'
import { holdingPendingTenant, pendingTenants } from '../sites/site-selection.js'
import { assertHomedHere } from '../sites/site-home.js'
import { readSiteConfig, requireSite } from '../sites/site.js'
import { forEachSite, selectSites, type SiteRunOptions, type SiteSelection } from '../sites/site-selection.js'
import { toJsonSafe, type JsonValue } from '../util/json-safe.js'

/**
 * What `tenancy execute` hands the function for each site.
 *
 * @example
 * // count.mjs: tenancy execute count.mjs --site all
 * export default async ({ db }) => (await db.selectFrom('customers').select(db.fn.countAll().as('n')).executeTakeFirst()).n
 */
export interface SiteContext<Args = unknown> {
  /** A Kysely on the site's database as the site's own user; closed once the function returns or throws. */
  db: Kysely<any>
  /** Kysely's `sql` template tag, so a module needs no Kysely of its own for raw SQL. */
  sql: typeof sql
  site: string
  /** The site's directory (holding `site_config.json`). */
  sitePath: string
  dbType: DbType
  /** The parsed `--args` JSON (undefined without it); each site gets its own copy. */
  args: Args
  /** Aborted by Ctrl-C: a long function can stop early (sites not started are `interrupted`). */
  signal: AbortSignal
}

/** A function `tenancy execute` calls once per site; what it returns (awaited) must be JSON data. */
export type SiteFunction = (context: SiteContext) => unknown

export interface ExecuteOptions extends SiteSelection, SiteRunOptions {
  /** The `args` every call gets (a copy each). */
  args?: unknown
  /** Called as each site finishes, with what it threw when it failed by throwing (for `--verbose`). */
  onSite?: (result: SiteExecuteResult, done: number, total: number, thrown?: unknown) => void
}

/** One site's line of `tenancy execute --json`. */
export interface SiteExecuteResult {
  site: string
  status: 'succeeded' | 'failed' | 'skipped' | 'interrupted'
  /** What the function returned, as JSON (`undefined` is null); null unless it succeeded. */
  result: JsonValue
  error: string | null
  duration_ms: number
}

/** `tenancy execute --json` (SPEC §8). */
export interface ExecuteResult {
  sites: SiteExecuteResult[]
  succeeded: number
  failed: number
  skipped: number
  interrupted: boolean
  duration_ms: number
}

/** How long sites run back to back before the event loop gets a turn (to see Ctrl-C). */
const YIELD_EVERY_MS = 15

/** A signal that never aborts, for a run without Ctrl-C. */
const NEVER = new AbortController().signal

/**
 * `tenancy execute`: calls `fn` for each selected site, `concurrency` at a time (default 1),
 * with a Kysely on the site's database as the site's own user, opened from its config and
 * closed after the call whatever happens. Its return value, made JSON data by `toJsonSafe`, is
 * the site's `result`; a throw, a value JSON cannot hold or a database that cannot be opened
 * fails that site. Without `skipFailing` the first failure stops new sites from starting. A
 * pending tenant's site runs holding the tenant's lease, so a pull cannot rename it meanwhile.
 */
export async function executeOnSites(
  bench: Bench,
  fn: SiteFunction,
  options: ExecuteOptions = {},
): Promise<ExecuteResult> {
  const started = performance.now()
  const selected = await selectSites(bench, options)
  const records = new Map(selected.map((s) => [s.name, s]))
  const sites = selected.map((s) => s.name)
  const pendingTenantOf = await pendingTenants(bench, selected)
  const registry = await bench.registry()
  const signal = options.signal ?? NEVER
  let done = 0
  let lastYield = performance.now()

  const callOn = async (record: SiteRecord): Promise<JsonValue> => {
    const site = record.name
    // A named site is kept whatever its state: requireSite says why it cannot be used.
    if (record.state !== 'ready') await requireSite(bench, site)
    assertHomedHere(bench, registry.kind, record, 'execute')
    const sitePath = bench.sitePath(site)
    const config = readSiteConfig(sitePath)
    const conn = await (await getDriver(config.db_type)).connect(config, sitePath)
    let value: unknown
    try {
      const args = options.args === undefined ? undefined : structuredClone(options.args)
      value = await fn({ db: conn.db, sql, site, sitePath, dbType: config.db_type, args, signal })
    } finally {
      // A close that fails says nothing about what the function did.
      await conn.close().catch(() => {})
    }
    return toJsonSafe(value)
  }

  const { results, interrupted } = await forEachSite<SiteExecuteResult>(
    sites,
    options,
    async (site) => {
      // better-sqlite3 answers synchronously, so a lane of SQLite sites would be one chain of
      // microtasks: yield to the event loop now and then, or Ctrl-C is not seen until the end.
      if (performance.now() - lastYield >= YIELD_EVERY_MS) {
        await new Promise((resolve) => setImmediate(resolve))
        lastYield = performance.now()
        if (signal.aborted) return notStarted(site, 'interrupted')
      }
      const siteStarted = performance.now()
      const elapsed = () => Math.round(performance.now() - siteStarted)
      let result: SiteExecuteResult
      let thrown: unknown
      try {
        const record = records.get(site)!
        const tenantId = pendingTenantOf.get(site)
        const value =
          tenantId === undefined
            ? await callOn(record)
            : await holdingPendingTenant(bench, site, tenantId, () => callOn(record))
        result = { site, status: 'succeeded', result: value, error: null, duration_ms: elapsed() }
      } catch (error) {
        thrown = error
        result = { site, status: 'failed', result: null, error: messageOf(error), duration_ms: elapsed() }
      }
      options.onSite?.(result, ++done, sites.length, thrown)
      return result
    },
    notStarted,
  )
  const count = (status: SiteExecuteResult['status']) => results.filter((r) => r.status === status).length
  return {
    sites: results,
    succeeded: count('succeeded'),
    failed: count('failed'),
    skipped: count('skipped'),
    interrupted,
    duration_ms: Math.round(performance.now() - started),
  }
}

function notStarted(site: string, why: 'skipped' | 'interrupted'): SiteExecuteResult {
  return {
    site,
    status: why,
    result: null,
    duration_ms: 0,
    error:
      why === 'interrupted'
        ? 'not started: execute was interrupted'
        : 'an earlier site failed, so it was not started (use --skip-failing to try every site)',
  }
}
