import type { Kysely } from 'kysely'
import type { Bench } from '../bench.js'
import { usageError } from '../errors.js'
import { assertEmail } from '../names.js'
import { now } from '../registry/registry.js'
import {
  generateApiKey,
  generateApiSecret,
  hashApiSecret,
  hashPassword,
  verifyApiSecret,
  verifyPassword,
} from '../secrets/hashing.js'
import { ADMINISTRATOR, upsertAdministrator } from './users.js'
import { inMaintenance, usingSite } from './site.js'

export interface ApiCredentials {
  api_key: string
  api_secret: string
}

/**
 * Gives `user` an api_key (kept once made) and a new api_secret (the previous one stops
 * working). Only the secret's hash is stored in the site.
 */
export async function generateKeysFor(db: Kysely<any>, user: string, site = 'SITE'): Promise<ApiCredentials> {
  const exists = await db.selectFrom('users').select('name').where('name', '=', user).executeTakeFirst()
  if (!exists) throw noSuchUser(user, site)
  const existing = await db.selectFrom('api_keys').select('api_key').where('user_name', '=', user).executeTakeFirst()
  if (!existing) return newKeysFor(db, user)
  const secret = generateApiSecret()
  await db
    .updateTable('api_keys')
    .set({ secret_hash: hashApiSecret(secret), rotated_at: now() })
    .where('user_name', '=', user)
    .execute()
  return { api_key: existing.api_key as string, api_secret: secret }
}

const noSuchUser = (user: string, site: string) =>
  usageError(
    `user "${user}" does not exist on site "${site}"; create it with "tenancy add-system-manager ${user} --site ${site}"`,
  )

/** A new api_key and api_secret for `user`, an existing user with no keys. */
async function newKeysFor(db: Kysely<any>, user: string): Promise<ApiCredentials> {
  const secret = generateApiSecret()
  const key = generateApiKey()
  const at = now()
  await db
    .insertInto('api_keys')
    .values({ user_name: user, api_key: key, secret_hash: hashApiSecret(secret), created_at: at, rotated_at: at })
    .execute()
  return { api_key: key, api_secret: secret }
}

/**
 * Moves a site's API user from the email `from` to `to` (its roles and keys with it) when only
 * `from` exists, then replaces its keys: a new api_key and api_secret, the old ones stop working.
 * Safe to run again: once moved, only the keys are issued anew. Returns undefined, changing
 * nothing, when the user exists under neither email and `required` is not set (a pipeline
 * without the `api-user` step); with `required` that is a usage error. With `onlyIfThere`, it
 * changes nothing unless the user is still under `from` (no new keys for one already moved).
 */
export async function moveApiUser(
  db: Kysely<any>,
  user: { from: string; to: string; site: string; required?: boolean; onlyIfThere?: boolean },
): Promise<ApiCredentials | undefined> {
  const { from, to } = user
  // Both names in one read: which of them the site has, compared as the database compares names
  // (MariaDB's collation ignores case), as a read of each would.
  const rows = await db
    .selectFrom('users')
    .select((eb) => eb.case().when('name', '=', from).then('from').else('to').end().as('which'))
    .where('name', 'in', [from, to])
    .execute()
  const present = new Set(rows.map((r) => (r.which === 'from' ? from : to)))
  if (user.onlyIfThere && !present.has(from)) return undefined
  // The keys under either name go (the old ones stop working); new ones are made below.
  let drop = [to]
  if (from !== to && present.has(from) && !present.has(to)) {
    await db.updateTable('users').set({ name: to, email: to, updated_at: now() }).where('name', '=', from).execute()
    await db.updateTable('user_roles').set({ user_name: to }).where('user_name', '=', from).execute()
    drop = [from, to]
  } else if (!present.has(to)) {
    if (!user.required) return undefined
    throw noSuchUser(to, user.site)
  }
  await db.deleteFrom('api_keys').where('user_name', 'in', drop).execute()
  return newKeysFor(db, to)
}

/**
 * `tenancy generate-keys`: a stable api_key and a fresh api_secret for an existing user. When
 * the user is the API user a tenant's credentials are stored for, the tenant's stored
 * (encrypted) secret is replaced too, so `tenant show --show-secrets` stays right.
 */
export async function generateKeys(bench: Bench, options: { site: string; email: string }): Promise<ApiCredentials> {
  const email = assertEmail(options.email)
  const registry = await bench.registry()
  const tenant = await registry.db
    .selectFrom('tenants')
    .select(['id', 'api_key'])
    .where('site', '=', options.site)
    .executeTakeFirst()
  // A tenant's site may get its stored secret replaced: the key is checked before the site changes.
  const box = tenant ? await bench.secretBox() : undefined
  const keys = await usingSite(bench, options.site, ({ conn }) =>
    conn.transaction(({ trx }) => generateKeysFor(trx, email, options.site)),
  )
  if (tenant && box && tenant.api_key === keys.api_key) {
    await registry.db
      .updateTable('tenants')
      .set({ api_secret_enc: box.encrypt(keys.api_secret), updated_at: now() })
      .where('id', '=', tenant.id)
      .execute()
  }
  return keys
}

/** Why a site refuses every key: its tenant is suspended, or its config has `maintenance_mode` on. */
export interface SiteSuspension {
  /** The tenant that `tenant suspend` suspended, or null when only `maintenance_mode` says so. */
  tenant: string | null
  reason: string | null
  since: string | null
}

export interface VerifyKeyResult {
  valid: boolean
  user: string | null
  /** Set when the site refuses every key; `valid` is false then, whatever the secret. */
  suspended?: SiteSuspension
}

/**
 * `tenancy verify-key`: whether `secret` is the current secret of `apiKey` (constant-time), for an
 * enabled user of a site that is not suspended. A suspended tenant's site (the registry's status,
 * which is the commit point of `tenant suspend`) or a site in maintenance mode refuses every key,
 * as Frappe refuses requests while `maintenance_mode` is on.
 */
export async function verifyKey(
  bench: Bench,
  options: { site: string; apiKey: string; secret: string },
): Promise<VerifyKeyResult> {
  const registry = await bench.registry()
  const tenant = await registry.db
    .selectFrom('tenants')
    .select(['name', 'status', 'suspend_reason', 'suspended_at'])
    .where('site', '=', options.site)
    .executeTakeFirst()
  return usingSite(bench, options.site, async ({ conn, config }) => {
    if (tenant?.status === 'suspended')
      return {
        valid: false,
        user: null,
        suspended: { tenant: tenant.name, reason: tenant.suspend_reason, since: tenant.suspended_at },
      }
    if (inMaintenance(config))
      return { valid: false, user: null, suspended: { tenant: null, reason: null, since: null } }
    const row = await conn.db
      .selectFrom('api_keys')
      .innerJoin('users', 'users.name', 'api_keys.user_name')
      .select(['api_keys.user_name as user', 'api_keys.secret_hash as hash', 'users.enabled as enabled'])
      .where('api_keys.api_key', '=', options.apiKey)
      .executeTakeFirst()
    // Hash even when the key is unknown so timing does not tell which keys exist.
    const valid =
      verifyApiSecret(options.secret, (row?.hash as string | undefined) ?? hashApiSecret('')) &&
      row !== undefined &&
      Number(row.enabled) === 1
    return { valid, user: valid ? (row!.user as string) : null }
  })
}

/**
 * After a restore of a tenant's site: the credentials the registry hands out for the tenant
 * (`tenant show --show-secrets`: the API user's secret, the Administrator's password) made
 * true on the site again, whose users and keys are now the backup's (taken before a
 * `generate-keys` or `set-admin-password`, they would no longer match). Only what no longer
 * matches is written, in one site transaction; gives what was. The api_secret only where the
 * tenant's api_key is on the site.
 */
export async function reapplyTenantCredentials(bench: Bench, site: string, tenantId: number): Promise<string[]> {
  const registry = await bench.registry()
  const tenant = await registry.db
    .selectFrom('tenants')
    .select(['api_key', 'api_secret_enc', 'admin_password_enc'])
    .where('id', '=', tenantId)
    .executeTakeFirst()
  if (!tenant || (!tenant.api_secret_enc && !tenant.admin_password_enc)) return []
  const box = await bench.secretBox()
  const secret = tenant.api_secret_enc ? box.decrypt(tenant.api_secret_enc) : undefined
  const password = tenant.admin_password_enc ? box.decrypt(tenant.admin_password_enc) : undefined
  return usingSite(bench, site, ({ conn }) =>
    conn.transaction(async (tx) => {
      const applied: string[] = []
      if (secret !== undefined && tenant.api_key) {
        const key = await tx.trx
          .selectFrom('api_keys')
          .select('secret_hash')
          .where('api_key', '=', tenant.api_key)
          .executeTakeFirst()
        if (key && !verifyApiSecret(secret, key.secret_hash as string)) {
          await tx.trx
            .updateTable('api_keys')
            .set({ secret_hash: hashApiSecret(secret), rotated_at: now() })
            .where('api_key', '=', tenant.api_key)
            .execute()
          applied.push('api_secret')
        }
      }
      if (password !== undefined) {
        const admin = await tx.trx
          .selectFrom('users')
          .select('password_hash')
          .where('name', '=', ADMINISTRATOR)
          .executeTakeFirst()
        if (!admin?.password_hash || !(await verifyPassword(password, admin.password_hash as string))) {
          await upsertAdministrator(tx, await hashPassword(password))
          applied.push('admin_password')
        }
      }
      return applied
    }),
  )
}
