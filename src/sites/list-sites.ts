import { existsSync } from 'node:fs'
import { sql, type ExpressionBuilder, type SqlBool, type Expression } from 'kysely'
import type { Bench } from '../bench.js'
import { assertHostName } from '../names.js'
import { siteApps, type InstalledAppSummary } from '../registry/registry.js'
import type { RegistrySchema } from '../registry/schema.js'
import { pageByKey } from '../registry/paged-rows.js'
import { checkPage, collect, mapRows, type Listing, type PageOptions } from '../util/listing.js'

export interface SiteListing {
  site: string
  state: string
  db_type: string
  db_name: string
  apps: InstalledAppSummary[]
  tenant: string | null
  pending: boolean
  /** The machine the site lives on (null in rows from before homes were recorded). */
  host: string | null
  created_at: string
}

export interface ListSitesOptions extends PageOptions {
  pending?: 'with' | 'only' | 'without'
  /** Only the sites homed on this machine (`--host H`). */
  host?: string
}

type SitesWhere = (eb: ExpressionBuilder<RegistrySchema, 'sites'>) => Expression<SqlBool>

/** The sites owned by a pending tenant, as a subquery (few rows: the pool; probed by tenants_pending). */
const pendingSites = (eb: ExpressionBuilder<RegistrySchema, 'sites'>) =>
  eb
    .selectFrom('tenants')
    .select('tenants.site')
    .where('tenants.pending_since', 'is not', null)
    .where('tenants.site', 'is not', null)

/**
 * The condition for the sites that live on machine `host` (see `isHomedHere`): on SQLite every
 * site is this machine's; on PostgreSQL those whose row names `host`, and, when `host` is this
 * machine, the rows from before homes were recorded (no host) whose directory is here. Those
 * are looked for on disk one by one, so only they are read first (an old registry's few).
 * Undefined: no condition (every site).
 */
async function homedOn(bench: Bench, host: string): Promise<SitesWhere | undefined> {
  const registry = await bench.registry()
  if (registry.kind === 'sqlite') return host === bench.host ? undefined : () => sql<SqlBool>`1 = 0`
  if (host !== bench.host) return (eb) => eb('sites.host', '=', host)
  const legacy = await registry.db.selectFrom('sites').select('name').where('host', 'is', null).execute()
  const here = legacy.map((s) => s.name).filter((name) => existsSync(bench.sitePath(name)))
  return (eb) =>
    here.length === 0 ? eb('sites.host', '=', host) : eb.or([eb('sites.host', '=', host), eb('sites.name', 'in', here)])
}

/**
 * `tenancy list-sites`: how many registered sites match, and one page of them (`limit`,
 * `offset`) by name, each with its database, apps and owning tenant (joined in the query),
 * read in batches as they are iterated; with `host`, those that live on that machine (SPEC
 * §10) — on this machine, also rows from before homes were recorded whose directory is here,
 * and every site of an SQLite registry.
 */
export async function siteListing(bench: Bench, options: ListSitesOptions = {}): Promise<Listing<SiteListing>> {
  const page = checkPage(options)
  const host = options.host === undefined ? undefined : assertHostName(options.host, '--host')
  const registry = await bench.registry()
  const pending = options.pending ?? (bench.config.pending.include_in_queries ? 'with' : 'without')
  const onHost = host === undefined ? undefined : await homedOn(bench, host)
  // The pending filter as a subquery, not on the joined row: counting goes over the sites'
  // index alone, without a join per site.
  const matching = registry.db
    .selectFrom('sites')
    .$if(onHost !== undefined, (q) => q.where(onHost!))
    .$if(pending === 'only', (q) => q.where('sites.name', 'in', pendingSites))
    .$if(pending === 'without', (q) => q.where('sites.name', 'not in', pendingSites))
  const counted = await matching.select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()
  const rows = pageByKey(
    matching
      .leftJoin('tenants', 'tenants.site', 'sites.name')
      .selectAll('sites')
      .select(['tenants.name as tenant', 'tenants.pending_since']),
    { column: 'sites.name', field: 'name', order: 'asc' },
    page,
  )
  return {
    total: Number(counted.n),
    offset: page.offset,
    rows: mapRows(rows, (s) => ({
      site: s.name,
      state: s.state,
      db_type: s.db_type,
      db_name: s.db_name,
      apps: siteApps(s.apps),
      tenant: s.tenant,
      pending: s.pending_since !== null,
      host: s.host,
      created_at: s.created_at,
    })),
  }
}

/** `tenancy list-sites` as an array: the page `siteListing` reads (every match without `limit`). */
export async function listSites(bench: Bench, options: ListSitesOptions = {}): Promise<SiteListing[]> {
  return collect((await siteListing(bench, options)).rows)
}
