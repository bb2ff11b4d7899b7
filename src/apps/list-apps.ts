import type { Bench } from '../bench.js'
import { fixtureRowCount } from './fixtures.js'
import { listBenchApps, loadApp } from './manifest.js'
import { readLedger } from './migrations.js'
import { installedApps } from './install.js'
import { usingSite } from '../sites/site.js'

export interface BenchAppListing {
  app: string
  version: string
  title: string | null
  requires: string[]
  migrations: number
  /** Fixture rows (over all fixture files). */
  fixtures: number
  after_install: boolean
}

export interface SiteAppListing {
  app: string
  version: string
  bench_version: string | null
  applied_migrations: string[]
  pending_migrations: string[]
}

/** `tenancy list-apps`: the apps in the bench. */
export function listApps(bench: Bench): BenchAppListing[] {
  return listBenchApps(bench).map((a) => ({
    app: a.name,
    version: a.version,
    title: a.title ?? null,
    requires: a.requires,
    migrations: a.migrations.length,
    fixtures: a.fixtures.reduce((n, file) => n + fixtureRowCount(file), 0),
    after_install: a.hooks.after_install !== undefined,
  }))
}

/** `tenancy list-apps --site S`: the apps installed on a site, with applied and pending migrations. */
export async function listSiteApps(bench: Bench, site: string): Promise<SiteAppListing[]> {
  return usingSite(bench, site, async ({ conn }) => {
    const [apps, ledger] = await Promise.all([installedApps(conn.db), readLedger(conn.db)])
    return apps.map(({ name, version }) => {
      let files: { name: string }[] = []
      let benchVersion: string | null = null
      try {
        const manifest = loadApp(bench, name)
        files = manifest.migrations
        benchVersion = manifest.version
      } catch {
        // The app was removed from the bench; show what the site has.
      }
      const applied = ledger.get(name) ?? new Set<string>()
      return {
        app: name,
        version,
        bench_version: benchVersion,
        applied_migrations: [...applied].sort(),
        pending_migrations: files.map((f) => f.name).filter((n) => !applied.has(n)),
      }
    })
  })
}
