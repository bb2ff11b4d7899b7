// tenant_ops before_uninstall hook: {"module": "hooks/before_uninstall.mjs"} in app.json.
//
// tenancy calls it in-process before it reverts the app's migrations (which drop its own
// tables), inside the same transaction: if it throws, nothing is uninstalled. It removes
// what tenant_ops put in shared_lib's tables, which stay: tags and attachments on its
// documents, its settings, and records the uninstall in the audit log, so the app can be
// installed again cleanly later.

import { randomUUID } from 'node:crypto'

const APP = 'tenant_ops'
// The document types tenant_ops owns: what its rows in tag_links and file_attachments point at.
const DOCUMENT_TYPES = ['customer', 'contact', 'project', 'task', 'time_entry', 'project_template']

export default async function beforeUninstall({ db, site }) {
  const links = await db.deleteFrom('tag_links').where('ref_type', 'in', DOCUMENT_TYPES).executeTakeFirst()
  const files = await db.deleteFrom('file_attachments').where('ref_type', 'in', DOCUMENT_TYPES).executeTakeFirst()
  const settings = await db.deleteFrom('settings').where('owner_app', '=', APP).executeTakeFirst()
  await db
    .insertInto('audit_log')
    .values({
      id: `AUD-${randomUUID()}`,
      at: new Date().toISOString(),
      actor: 'system',
      action: 'app_uninstalled',
      ref_type: 'app',
      ref_id: APP,
      detail: JSON.stringify({ site }),
    })
    .execute()
  // The install's audit entry stays as history; a later install records itself anew.
  await db
    .updateTable('audit_log')
    .set({ action: 'app_installed (since uninstalled)' })
    .where('action', '=', 'app_installed')
    .where('ref_type', '=', 'app')
    .where('ref_id', '=', APP)
    .execute()
  const [l, f, s] = [links, files, settings].map((r) => Number(r.numDeletedRows))
  return `${APP}: removed ${l} tag link(s), ${f} attachment(s) and ${s} setting(s) from ${site}`
}
