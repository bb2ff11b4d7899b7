// tenant_ops: how many customers a site has, as a command `tenancy run` starts once per site:
//
//   tenancy run --site all -- node apps/tenant_ops/scripts/count-customers.mjs
//
// `tenancy run` gives the command no database password: it opens the site's database through
// tenancy's library (TENANCY_LIB), as the site's own user, from the site's directory
// (TENANCY_SITE_PATH). Its one line of output is shown as "<site>: 42 customers".

import { pathToFileURL } from 'node:url'

/** One line naming the cause (a site without tenant_ops has no customers table), not a stack trace. */
function fail(error) {
  const missing = /no such table|doesn't exist|does not exist/.test(error.message)
  console.error(missing ? `${error.message} (is tenant_ops installed on this site?)` : error.message)
  process.exit(1)
}

const { TENANCY_LIB, TENANCY_SITE_PATH } = process.env
if (!TENANCY_LIB || !TENANCY_SITE_PATH) {
  console.error('run me through tenancy: tenancy run --site all -- node apps/tenant_ops/scripts/count-customers.mjs')
  process.exit(2)
}
const { withSiteDatabase } = await import(pathToFileURL(TENANCY_LIB).href)
const { n } = await withSiteDatabase(TENANCY_SITE_PATH, (db) =>
  db
    .selectFrom('customers')
    .select((eb) => eb.fn.countAll().as('n'))
    .executeTakeFirstOrThrow(),
).catch(fail)
// PostgreSQL's count is a bigint, which pg gives as a string.
console.log(`${Number(n)} customers`)
