// tenant_ops after_rename hook: {"module": "hooks/after_rename.mjs"} in app.json.
//
// tenancy calls it in-process after a site is renamed (rename-site, tenant rename, and a
// pull from the pending pool, which renames a placeholder site such as
// pending-81dcfab941.localhost to the tenant's), inside one transaction of the site's
// database. It rewrites what tenant_ops wrote naming the site: the onboarding project's
// description ("Getting <site> up and running…") and the `site` in the detail of its
// audit_log entries, so that no app data names the old site afterwards. Running it again
// finds nothing to rewrite.

import { PROJECT_ID } from './after_install.mjs'

const APP = 'tenant_ops'

/** `name` as a whole site name in text: not part of a longer name such as `x.acme.localhost`. */
const wholeName = (name) =>
  new RegExp(`(?<![A-Za-z0-9.-])${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?![A-Za-z0-9-]|\\.[A-Za-z0-9])`, 'g')

export default async function afterRename({ db, site, previousSite }) {
  if (!previousSite || previousSite === site) return `${APP} after_rename on ${site}: nothing to rewrite`
  const old = wholeName(previousSite)
  const now = new Date().toISOString()
  let projects = 0
  const project = await db.selectFrom('projects').select('description').where('id', '=', PROJECT_ID).executeTakeFirst()
  const description = project?.description?.replace(old, site)
  if (description !== undefined && description !== project.description) {
    await db
      .updateTable('projects')
      .set({ description, updated_at: now })
      .where('id', '=', PROJECT_ID)
      .execute()
    projects++
  }
  let entries = 0
  const rows = await db
    .selectFrom('audit_log')
    .select(['id', 'detail'])
    .where('ref_type', '=', 'app')
    .where('ref_id', '=', APP)
    .execute()
  for (const row of rows) {
    let detail
    try {
      detail = JSON.parse(row.detail)
    } catch {
      continue // not ours to repair
    }
    if (detail?.site !== previousSite) continue
    await db
      .updateTable('audit_log')
      .set({ detail: JSON.stringify({ ...detail, site }) })
      .where('id', '=', row.id)
      .execute()
    entries++
  }
  return `${APP} after_rename ${previousSite} -> ${site}: rewrote ${projects} project description(s) and ${entries} audit entr${entries === 1 ? 'y' : 'ies'}`
}
