import type { Bench } from '../bench.js'
import type { InstalledAppSummary } from '../registry/registry.js'

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

/** `tenancy list-sites`: every registered site with its database, apps and owning tenant. */
export async function listSites(
  bench: Bench,
  options: { pending?: 'with' | 'only' | 'without' } = {},
): Promise<SiteListing[]> {
  const registry = await bench.registry()
  const [sites, tenants] = await Promise.all([registry.listSites(), registry.tenantsBySite()])
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
