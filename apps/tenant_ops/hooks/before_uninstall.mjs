// tenant_ops before_uninstall: tenancy runs this before it reverts the app's
// migrations (which drop its own tables). It removes what tenant_ops put in
// shared_lib's tables, which stay: tags and attachments on its documents, its
// settings, and records the uninstall in the audit log, so the app can be
// installed again cleanly later.

import { randomUUID } from 'node:crypto'
import { pathToFileURL } from 'node:url'

const APP = 'tenant_ops'
// The document types tenant_ops owns: what its rows in tag_links and file_attachments point at.
const DOCUMENT_TYPES = ['customer', 'contact', 'project', 'task', 'time_entry', 'project_template']

const fail = (message) => {
  process.stderr.write(`${APP} before_uninstall: ${message}\n`)
  process.exit(1)
}
const missing = ['TENANCY_SITE', 'TENANCY_SITE_PATH', 'TENANCY_LIB'].filter((name) => !process.env[name])
if (missing.length > 0) fail(`missing environment variable(s) ${missing.join(', ')}; this hook must be run by tenancy`)

const { withSiteDatabase } = await import(pathToFileURL(process.env.TENANCY_LIB).href)
const now = new Date().toISOString()
try {
  // withSiteDatabase hands over one transaction: everything below commits together.
  const removed = await withSiteDatabase(process.env.TENANCY_SITE_PATH, (trx) =>
    (async () => {
      const links = await trx.deleteFrom('tag_links').where('ref_type', 'in', DOCUMENT_TYPES).executeTakeFirst()
      const files = await trx.deleteFrom('file_attachments').where('ref_type', 'in', DOCUMENT_TYPES).executeTakeFirst()
      const settings = await trx.deleteFrom('settings').where('owner_app', '=', APP).executeTakeFirst()
      await trx
        .insertInto('audit_log')
        .values({
          id: `AUD-${randomUUID()}`,
          at: now,
          actor: 'system',
          action: 'app_uninstalled',
          ref_type: 'app',
          ref_id: APP,
          detail: JSON.stringify({ site: process.env.TENANCY_SITE }),
        })
        .execute()
      // The install's audit entry stays as history; a later install records itself anew.
      await trx.updateTable('audit_log').set({ action: 'app_installed (since uninstalled)' })
        .where('action', '=', 'app_installed').where('ref_type', '=', 'app').where('ref_id', '=', APP).execute()
      return [links, files, settings].map((r) => Number(r.numDeletedRows))
    })(),
  )
  process.stdout.write(
    `${APP}: removed ${removed[0]} tag link(s), ${removed[1]} attachment(s) and ${removed[2]} setting(s) ` +
      `from ${process.env.TENANCY_SITE}\n`,
  )
} catch (error) {
  fail(`cleaning up on ${process.env.TENANCY_SITE} failed: ${error.message}`)
}
