import { existsSync, renameSync } from 'node:fs'
import type { Kysely } from 'kysely'
import type { Bench } from '../bench.js'
import { messageOf } from '../errors.js'
import { now } from '../registry/registry.js'
import type { RegistrySchema } from '../registry/schema.js'
import { generateKeysFor } from '../sites/api-keys.js'
import { usingSite } from '../sites/site.js'
import { faultPoint } from '../util/fault.js'
import { fsyncDirectory } from '../util/json-file.js'
import { LEASE_MS, inFuture, leaseHolderGone, newOwner } from '../registry/leases.js'
import { apiUserFor } from '../provisioning/steps.js'
import type { TenantRow } from '../registry/tenants.js'
import { recordEvent } from '../events/outbox.js'
import { resolveInstallOrder } from '../apps/manifest.js'
import { migrateOpenSite, planApps, type MigrationPlan, type SiteResult } from '../migrate/site-migrator.js'
import { placeholderName } from './reserve.js'

/**
 * What finishing a pull migrates: the apps installed on the pool site (from its registry
 * row), requirements first. Only those: an unrelated app of the bench, even a broken one,
 * has nothing to do with this site, so it cannot stop a sign-up (`migrate` and
 * `install-app` still report it where it matters).
 */
export async function pullPlan(trx: Kysely<RegistrySchema>, bench: Bench, site: string): Promise<MigrationPlan> {
  const row = await trx.selectFrom('sites').select('apps').where('name', '=', site).executeTakeFirst()
  let installed: { name: string }[] = []
  try {
    installed = JSON.parse(row?.apps ?? '[]') as { name: string }[]
  } catch {
    installed = []
  }
  // Migrations only: changed fixture files reach the site with the next `migrate`, which
  // includes it now that it is no longer pending. That keeps the pull to one cheap read.
  return planApps(
    resolveInstallOrder(
      bench,
      installed.map((a) => a.name),
    ),
    { checkFixtures: false },
  )
}

/**
 * Finishes a pull whose registry part is committed (`pull_from` set): renames the site
 * directory, moves the placeholder's API user to the tenant's own, issues new keys for it,
 * then clears the marker. Safe to run again after a crash at any point.
 */
export async function finishPull(
  bench: Bench,
  tenant: TenantRow,
  options: { plan?: MigrationPlan; progress?: { siteChanged: boolean } } = {},
): Promise<SiteResult | undefined> {
  const registry = await bench.registry()
  const from = tenant.pull_from
  const site = tenant.site
  if (!from || !site) return undefined
  // The key is checked before the site moves: the new secret is stored with it at the end.
  const box = await bench.secretBox()
  const oldPath = bench.sitePath(from)
  const newPath = bench.sitePath(site)
  if (from !== site && existsSync(oldPath) && !existsSync(newPath)) {
    renameSync(oldPath, newPath)
    fsyncDirectory(bench.sitesPath)
  }
  faultPoint('pull-after-rename')
  // The API user was made for the placeholder: its name and site, whatever the tenant is called now.
  const oldUser = apiUserFor(bench.config, { name: placeholderName(from), site: from })
  const newUser = apiUserFor(bench.config, { name: tenant.name, site })
  // A pool site may predate the last deploy's migrations (migrate leaves pending sites out
  // unless asked): it is brought up to date on the same connection, one read when it is.
  const plan = options.plan ?? (await pullPlan(registry.db, bench, site))
  let migration: SiteResult | undefined
  const keys = await usingSite(bench, site, async ({ conn }) => {
    const issued = await conn.transaction(async ({ trx }) => {
      if (oldUser !== newUser) {
        const has = async (user: string) =>
          (await trx.selectFrom('users').select('name').where('name', '=', user).executeTakeFirst()) !== undefined
        if ((await has(oldUser)) && !(await has(newUser))) {
          await trx
            .updateTable('users')
            .set({ name: newUser, email: newUser, updated_at: now() })
            .where('name', '=', oldUser)
            .execute()
          await trx.updateTable('user_roles').set({ user_name: newUser }).where('user_name', '=', oldUser).execute()
          await trx.updateTable('api_keys').set({ user_name: newUser }).where('user_name', '=', oldUser).execute()
        }
      }
      // Keys issued while the tenant sat in the pool are replaced: new key, new secret.
      await trx.deleteFrom('api_keys').where('user_name', '=', newUser).execute()
      return generateKeysFor(trx, newUser, site)
    })
    // From here the site's database knows the tenant: the pull can only go forward.
    if (options.progress) options.progress.siteChanged = true
    migration = await migrateOpenSite(plan, { site, path: newPath }, conn)
    return issued
  })
  if (migration?.apps) await registry.setSiteApps(site, migration.apps)
  // The finished pull and its events commit together: a crash anywhere before leaves
  // `pull_from` set, and whoever finishes the pull writes them.
  await registry.writeTransaction(async (trx) => {
    const finished = await trx
      .updateTable('tenants')
      .set({
        api_key: keys.api_key,
        api_secret_enc: box.encrypt(keys.api_secret),
        pull_from: null,
        lease_owner: null,
        lease_expires_at: null,
        updated_at: now(),
      })
      .where('id', '=', tenant.id)
      .where('pull_from', '=', from)
      .executeTakeFirst()
    if (Number(finished.numUpdatedRows) !== 1) return
    const row = await trx.selectFrom('tenants').selectAll().where('id', '=', tenant.id).executeTakeFirstOrThrow()
    await recordEvent(bench, trx, 'tenant.pulled', row, { pulled_from: from })
    await recordEvent(bench, trx, 'tenant.active', row)
  })
  return migration
}

/** Finishes pulls a crashed process left half-done (their holder is gone). Returns the tenants finished. */
export async function recoverPulls(bench: Bench): Promise<string[]> {
  const registry = await bench.registry()
  const rows = await registry.db.selectFrom('tenants').selectAll().where('pull_from', 'is not', null).execute()
  const done: string[] = []
  for (const row of rows) {
    if (!leaseHolderGone(row)) continue
    // Take the pull over from its dead holder first, so two commands never finish it twice.
    const owner = newOwner()
    const taken = await registry.db
      .updateTable('tenants')
      .set({ lease_owner: owner, lease_expires_at: inFuture(LEASE_MS) })
      .where('id', '=', row.id)
      .where('pull_from', 'is not', null)
      .where((eb) =>
        row.lease_owner === null ? eb('lease_owner', 'is', null) : eb('lease_owner', '=', row.lease_owner),
      )
      .executeTakeFirst()
    if (Number(taken.numUpdatedRows) !== 1) continue
    try {
      await finishPull(bench, { ...row, lease_owner: owner })
      done.push(row.name)
    } catch (error) {
      // Not fatal to the command that opened the bench: logged, released, and shown by doctor.
      await registry.db
        .updateTable('tenants')
        .set({ lease_owner: null, lease_expires_at: null })
        .where('id', '=', row.id)
        .where('lease_owner', '=', owner)
        .execute()
      await registry.logError({
        tenant: row.name,
        site: row.site,
        step: 'pull',
        message: `finishing the pull of tenant "${row.name}" failed: ${messageOf(error)}`,
      })
    }
  }
  return done
}
