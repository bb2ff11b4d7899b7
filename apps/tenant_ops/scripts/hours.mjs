// tenant_ops: the hours logged on a site in one month, as a command `tenancy run` starts once
// per site (arguments after the script are the script's):
//
//   tenancy run --site all -- node apps/tenant_ops/scripts/hours.mjs --month 2026-01
//
// Prints one line, "12.5 hours (10 billable) in 2026-01", shown as "<site>: …". The database is
// opened through tenancy's library as the site's own user (see count-customers.mjs).

import { pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'

/** One line naming the cause (a site without tenant_ops has no customers table), not a stack trace. */
function fail(error) {
  const missing = /no such table|doesn't exist|does not exist/.test(error.message)
  console.error(missing ? `${error.message} (is tenant_ops installed on this site?)` : error.message)
  process.exit(1)
}

let values
try {
  ;({ values } = parseArgs({ options: { month: { type: 'string' } } }))
} catch (error) {
  console.error(`${error.message}; usage: hours.mjs [--month YYYY-MM]`)
  process.exit(2)
}
const month = values.month ?? new Date().toISOString().slice(0, 7)
if (!/^\d{4}-(0[1-9]|1[0-2])$/.test(month)) {
  console.error(`invalid --month "${month}": give a month as YYYY-MM, such as 2026-01`)
  process.exit(2)
}
const { TENANCY_LIB, TENANCY_SITE_PATH } = process.env
if (!TENANCY_LIB || !TENANCY_SITE_PATH) {
  console.error(`run me through tenancy: tenancy run --site all -- node ${process.argv[1]} --month ${month}`)
  process.exit(2)
}
const { withSiteDatabase } = await import(pathToFileURL(TENANCY_LIB).href)
// entry_date is an ISO date (YYYY-MM-DD), so the month is a range of strings.
const rows = await withSiteDatabase(TENANCY_SITE_PATH, (db) =>
  db
    .selectFrom('time_entries')
    .select(['hours', 'is_billable'])
    .where('entry_date', '>=', `${month}-01`)
    .where('entry_date', '<=', `${month}-31`)
    .execute(),
).catch(fail)
// hours is a DECIMAL: a string on MariaDB and PostgreSQL, a number on SQLite.
const total = rows.reduce((sum, r) => sum + Number(r.hours), 0)
const billable = rows.filter((r) => Number(r.is_billable) === 1).reduce((sum, r) => sum + Number(r.hours), 0)
const round = (h) => Math.round(h * 100) / 100
console.log(`${round(total)} hours (${round(billable)} billable) in ${month}`)
