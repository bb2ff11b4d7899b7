// A site's API user, its roles and its api_key (the secret is stored hashed only), as a module
// `tenancy execute` calls once per site; `#apiUser` picks this export, --args hands it a value:
//
//   tenancy execute apps/tenant_ops/scripts/api.mjs#apiUser --site acme.localhost --json
//   tenancy execute apps/tenant_ops/scripts/api.mjs#apiUser --site all --args '{"user": "ops@example.com"}'
//
// It reads tenancy's core tables (users, user_roles, api_keys), which every site has.

/** @param {import('tenancy').SiteContext<{ user?: string }>} context */
export async function apiUser({ db, site, args }) {
  const name = args?.user ?? `api@${site}`
  const user = await db.selectFrom('users').select(['name', 'enabled']).where('name', '=', name).executeTakeFirst()
  if (!user) return null
  const roles = await db.selectFrom('user_roles').select('role').where('user_name', '=', name).execute()
  const key = await db
    .selectFrom('api_keys')
    .select(['api_key', 'rotated_at'])
    .where('user_name', '=', name)
    .executeTakeFirst()
  return {
    user: user.name,
    enabled: Boolean(user.enabled),
    roles: roles.map((r) => r.role),
    api_key: key?.api_key ?? null,
    rotated_at: key?.rotated_at ?? null,
  }
}
