import type { Kysely } from 'kysely'
import type { Bench } from '../bench.js'
import type { TenancyError } from '../errors.js'
import { now } from '../registry/registry.js'
import type { RegistrySchema } from '../registry/schema.js'
import { apiUserFor } from '../provisioning/steps.js'
import { finishRename } from '../provisioning/rename-site.js'
import type { TenantRow } from '../registry/tenants.js'
import { recordEvent } from '../events/outbox.js'
import { resolveInstallOrder, type AppManifest } from '../apps/manifest.js'
import { migrateOpenSite, planApps, type MigrationPlan, type SiteResult } from '../migrate/site-migrator.js'
import { placeholderName } from './reserve.js'

/** What finishing a pull works from: the pool site's apps, requirements first, and their migrations. */
export interface PullPlan {
  apps: AppManifest[]
  migrations: MigrationPlan
}

/**
 * What finishing a pull migrates, and whose `after_rename` hooks it runs: the apps installed on
 * the pool site (from its registry row), requirements first. Only those: an unrelated app of
 * the bench, even a broken one, has nothing to do with this site, so it cannot stop a sign-up
 * (`migrate` and `install-app` still report it where it matters).
 */
export async function pullPlan(trx: Kysely<RegistrySchema>, bench: Bench, site: string): Promise<PullPlan> {
  const row = await trx.selectFrom('sites').select('apps').where('name', '=', site).executeTakeFirst()
  let installed: { name: string }[] = []
  try {
    installed = JSON.parse(row?.apps ?? '[]') as { name: string }[]
  } catch {
    installed = []
  }
  const apps = resolveInstallOrder(
    bench,
    installed.map((a) => a.name),
  )
  // Migrations only: changed fixture files reach the site with the next `migrate`, which
  // includes it now that it is no longer pending. That keeps the pull to one cheap read.
  return { apps, migrations: planApps(apps, { checkFixtures: false }) }
}

/** How finishing a pull went: the site's migration, and an `after_rename` hook that failed. */
export interface FinishedPull {
  migration?: SiteResult
  hookError?: TenancyError
  /** The tenant's row as this call's last transaction left it; undefined when another finished the pull. */
  tenant?: TenantRow
}

/**
 * Finishes a pull whose registry part is committed (`pull_from` set, the site's row renamed): a
 * pull is a rename, so this is `finishRename` from the placeholder to the tenant's site — the
 * directory and backups moved, the placeholder's API user moved to the tenant's own with new
 * keys, each app's `after_rename` hook run — with the pull's own work in that path: the site
 * brought up to date on the same connection first (so the hooks find its schema current), and,
 * in the transaction that ends the rename, the tenant's keys, the marker cleared and the
 * `tenant.pulled` and `tenant.active` events. Safe to run again after a crash at any point.
 */
export async function finishPull(
  bench: Bench,
  tenant: TenantRow,
  options: { plan?: PullPlan; progress?: { siteChanged: boolean } } = {},
): Promise<FinishedPull> {
  const registry = await bench.registry()
  const from = tenant.pull_from
  const site = tenant.site
  if (!from || !site) return {}
  // The key is checked before the site moves: the new secret is stored with it at the end.
  const box = await bench.secretBox()
  // The API user was made for the placeholder: its name and site, whatever the tenant is called now.
  const apiUser = {
    from: apiUserFor(bench.config, { name: placeholderName(from), site: from }),
    to: apiUserFor(bench.config, { name: tenant.name, site }),
    required: true,
  }
  // A pool site may predate the last deploy's migrations (migrate leaves pending sites out
  // unless asked): it is brought up to date on the same connection, one read when it is.
  const plan = options.plan ?? (await pullPlan(registry.db, bench, site))
  let migration: SiteResult | undefined
  let finishedRow: TenantRow | undefined
  const { hookError } = await finishRename(
    bench,
    { site, previousSite: from, tenant, apiUser, apps: plan.apps },
    {
      // From here the site's database knows the tenant: the pull can only go forward.
      onDataChanged: () => {
        if (options.progress) options.progress.siteChanged = true
      },
      beforeData: async ({ conn, path }) => {
        const outcome = await migrateOpenSite(plan.migrations, { site, path }, conn)
        migration = outcome.result
        return outcome.apps?.map((a) => a.name)
      },
      // The finished pull and its events commit together: a crash anywhere before leaves
      // `pull_from` set, and whoever finishes the pull writes them.
      finish: async (trx, keys) => {
        if (migration?.apps)
          await trx
            .updateTable('sites')
            .set({ apps: JSON.stringify(migration.apps), updated_at: now() })
            .where('name', '=', site)
            .execute()
        const row = await trx
          .updateTable('tenants')
          .set({
            api_key: keys!.api_key,
            api_secret_enc: box.encrypt(keys!.api_secret),
            pull_from: null,
            lease_owner: null,
            lease_expires_at: null,
            updated_at: now(),
          })
          .where('id', '=', tenant.id)
          .where('pull_from', '=', from)
          .returningAll()
          .executeTakeFirst()
        if (!row) return
        await recordEvent(bench, trx, 'tenant.pulled', row, { pulled_from: from })
        await recordEvent(bench, trx, 'tenant.active', row)
        finishedRow = row
      },
    },
  )
  return { migration, hookError, tenant: finishedRow }
}
