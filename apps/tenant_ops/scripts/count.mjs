// tenant_ops: how many customers each site has, as a module `tenancy execute` calls once per
// site, in its own process, with a Kysely on the site's database (as the site's own user):
//
//   tenancy execute apps/tenant_ops/scripts/count.mjs --site all
//
// The value returned is the site's result: "acme.localhost: 42", or "result" in --json.

/** @param {import('tenancy').SiteContext} context */
export default async ({ db }) => {
  const { n } = await db
    .selectFrom('customers')
    .select(db.fn.countAll().as('n'))
    .executeTakeFirstOrThrow()
  return Number(n) // PostgreSQL's count is a bigint, which pg gives as a string
}
