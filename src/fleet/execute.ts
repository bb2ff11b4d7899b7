import { sql, type Kysely } from 'kysely'
import type { Bench } from '../bench.js'
import type { DbType } from '../config/config.js'
import { getDriver } from '../databases/index.js'
import type { SiteRecord } from '../registry/registry.js'
import { readSiteConfig } from '../sites/site.js'
import { overSites, type FleetOptions } from '../sites/site-selection.js'
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

export interface ExecuteOptions extends FleetOptions<SiteExecuteResult> {
  /**
   * The module `fn` came from (`loadSiteFunction`), relative to the bench or absolute: sites
   * homed on other machines have it called there, from that path in their bench (SPEC §10).
   */
  from?: { module: string; exportName: string }
  /** The `args` every call gets (a copy each). */
  args?: unknown
}

/** One site's line of `tenancy execute --json`. */
export interface SiteExecuteResult {
  site: string
  status: 'succeeded' | 'failed' | 'skipped' | 'interrupted' | 'unreachable'
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
  /** Sites on a machine with no live worker (SPEC §10): not touched. */
  unreachable: number
  interrupted: boolean
  duration_ms: number
}

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
  const signal = options.signal ?? NEVER
  const callOn = async ({ name: site }: SiteRecord): Promise<SiteExecuteResult> => {
    const started = performance.now()
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
    const result = toJsonSafe(value)
    return { site, status: 'succeeded', result, error: null, duration_ms: Math.round(performance.now() - started) }
  }
  return overSites<SiteExecuteResult, 'succeeded' | 'failed' | 'skipped' | 'unreachable'>(
    bench,
    options,
    {
      name: 'execute',
      run: callOn,
      blank: (site, status, error, duration_ms) => ({ site, status, result: null, error, duration_ms }),
      remote: options.from && {
        command: 'execute',
        payload: { ...options.from, args: options.args, skipFailing: options.skipFailing },
      },
    },
    ['succeeded', 'failed', 'skipped', 'unreachable'],
  )
}
