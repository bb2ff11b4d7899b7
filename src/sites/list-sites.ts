import type { Bench } from '../bench.js'
import { assertHostName } from '../names.js'
import type { InstalledAppSummary } from '../registry/registry.js'
import { isHomedHere } from './site-home.js'

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

export interface ListSitesOptions {
  pending?: 'with' | 'only' | 'without'
  /** Only the sites homed on this machine (`--host H`). */
  host?: string
}

/**
 * `tenancy list-sites`: every registered site with its database, apps and owning tenant; with
 * `host`, those that live on that machine (SPEC §10) — on this machine, also rows from before
 * homes were recorded whose directory is here, and every site of an SQLite registry.
 */
export async function listSites(bench: Bench, options: ListSitesOptions = {}): Promise<SiteListing[]> {
  const host = options.host === undefined ? undefined : assertHostName(options.host, '--host')
  const registry = await bench.registry()
  const [all, tenants] = await Promise.all([registry.listSites(), registry.tenantsBySite()])
  const sites =
    host === undefined
      ? all
      : all.filter((s) => (isHomedHere(bench, registry.kind, s) ? bench.host === host : s.host === host))
  const pending = options.pending ?? (bench.config.pending.include_in_queries ? 'with' : 'without')
  return sites
    .map((s) => {
      const tenant = tenants.get(s.name)
      return {
        site: s.name,
        state: s.state,
        db_type: s.db_type,
        db_name: s.db_name,
        apps: s.apps,
        tenant: tenant?.name ?? null,
        pending: tenant?.pending_since != null,
        host: s.host,
        created_at: s.created_at,
      }
    })
    .filter((s) => (pending === 'only' ? s.pending : pending === 'without' ? !s.pending : true))
}
