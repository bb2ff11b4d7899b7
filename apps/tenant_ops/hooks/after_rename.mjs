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

const LABEL_CHAR = /[A-Za-z0-9-]/
const ALNUM = /[A-Za-z0-9]/
const inName = (char, pattern) => char !== undefined && pattern.test(char)

/**
 * `text` with each whole occurrence of the site name `name` replaced by `by`: not part of a
 * longer name, so neither `x.acme.localhost` nor `acme.localhost.eu` counts as `acme.localhost`
 * (a trailing dot that ends a sentence does not make it longer).
 */
export function replaceWholeName(text, name, by) {
  let out = ''
  let done = 0
  for (let at = text.indexOf(name); at !== -1; at = text.indexOf(name, at + 1)) {
    const end = at + name.length
    const before = text[at - 1]
    const longer =
      before === '.' ||
      inName(before, LABEL_CHAR) ||
      inName(text[end], LABEL_CHAR) ||
      (text[end] === '.' && inName(text[end + 1], ALNUM))
    if (longer || at < done) continue
    out += text.slice(done, at) + by
    done = end
  }
  return out + text.slice(done)
}

export default async function afterRename({ db, site, previousSite }) {
  if (!previousSite || previousSite === site) return `${APP} after_rename on ${site}: nothing to rewrite`
  const now = new Date().toISOString()
  let projects = 0
  const project = await db.selectFrom('projects').select('description').where('id', '=', PROJECT_ID).executeTakeFirst()
  const description = project?.description && replaceWholeName(project.description, previousSite, site)
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
