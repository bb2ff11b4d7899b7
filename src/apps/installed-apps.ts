import type { Kysely } from 'kysely'
import type { InstalledAppSummary } from '../registry/registry.js'

/** The apps installed on a site, with versions, from its own `installed_apps` table. */
export async function installedApps(db: Kysely<any>): Promise<InstalledAppSummary[]> {
  const rows = await db
    .selectFrom('installed_apps')
    .select(['name', 'version'])
    .orderBy('installed_at')
    .orderBy('name')
    .execute()
  return rows as InstalledAppSummary[]
}
