// tenant_ops after_install hook.
//
// Run by tenancy as `node hooks/after_install.mjs` (cwd = this app's folder)
// after the app's migrations and fixtures have been applied to a site. It:
//   1. creates the site's "Onboarding" project (id PRJ-ONBOARDING) with its
//      starter tasks, built from the project template named by the setting
//      tenant_ops.onboarding_template (TPL-ONBOARDING by default), and tags it
//      with shared_lib's TAG-ONBOARDING tag,
//   2. writes one audit_log row (action app_installed, ref app/tenant_ops),
//   3. sets tenant_ops.installed_at in settings, keeping the first value.
// Every step checks before it writes, so running it again changes nothing.
// Everything goes through the Kysely query builder, so it runs unchanged on
// SQLite, MariaDB and PostgreSQL. Only node built-ins and the tenancy library
// are imported, to keep site creation fast.

import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'

const APP = 'tenant_ops'
const PROJECT_ID = 'PRJ-ONBOARDING'
const DEFAULT_TEMPLATE_ID = 'TPL-ONBOARDING'
const ONBOARDING_TAG_ID = 'TAG-ONBOARDING'
const INSTALLED_AT_KEY = 'tenant_ops.installed_at'
const ACTOR = 'system'

function fail(message) {
  process.stderr.write(`${APP} after_install: ${message}\n`)
  process.exit(1)
}

class HookError extends Error {}

const missing = ['TENANCY_SITE', 'TENANCY_SITE_PATH', 'TENANCY_LIB'].filter((name) => !process.env[name])
if (missing.length > 0) {
  fail(`missing environment variable(s) ${missing.join(', ')}; this hook must be run by tenancy`)
}
const site = process.env.TENANCY_SITE
const sitePath = process.env.TENANCY_SITE_PATH
const appPath = process.env.TENANCY_APP_PATH || process.cwd()

let withSiteDatabase
let TenancyError
try {
  ;({ withSiteDatabase, TenancyError } = await import(pathToFileURL(process.env.TENANCY_LIB).href))
} catch (error) {
  fail(`cannot load the tenancy library from TENANCY_LIB=${process.env.TENANCY_LIB}: ${error.message}`)
}
if (typeof withSiteDatabase !== 'function') {
  fail(`the tenancy library at ${process.env.TENANCY_LIB} does not export withSiteDatabase()`)
}

let appVersion = null
try {
  appVersion = JSON.parse(readFileSync(join(appPath, 'app.json'), 'utf8')).version ?? null
} catch {
  // The version only goes into the audit detail; not worth failing over.
}

const now = new Date()
const nowIso = now.toISOString()
const today = nowIso.slice(0, 10)

function addDays(isoDate, days) {
  const date = new Date(`${isoDate}T00:00:00Z`)
  date.setUTCDate(date.getUTCDate() + Number(days || 0))
  return date.toISOString().slice(0, 10)
}

// Wraps a query so a missing table reads as "migrations not applied" instead of
// a bare driver error.
async function query(description, run) {
  try {
    return await run()
  } catch (error) {
    throw new HookError(
      `${description} failed: ${error.message} (are the shared_lib and tenant_ops migrations applied to ${site}?)`,
    )
  }
}

async function effectiveSetting(db, settingKey) {
  const row = await query(`reading setting ${settingKey}`, () =>
    db
      .selectFrom('settings')
      .select(['setting_value', 'default_value'])
      .where('setting_key', '=', settingKey)
      .executeTakeFirst(),
  )
  if (!row) return null
  return row.setting_value ?? row.default_value ?? null
}

async function createOnboardingProject(db) {
  const existing = await query('looking up the onboarding project', () =>
    db.selectFrom('projects').select('id').where('id', '=', PROJECT_ID).executeTakeFirst(),
  )
  // Tasks are only created together with the project: if the tenant later
  // deletes a starter task, a rerun must not bring it back.
  if (existing) return { created: false, tasks: 0 }

  const templateId = (await effectiveSetting(db, 'tenant_ops.onboarding_template')) || DEFAULT_TEMPLATE_ID
  const template = await query(`reading project template ${templateId}`, () =>
    db
      .selectFrom('project_templates')
      .select(['id', 'template_name', 'description', 'default_duration_days'])
      .where('id', '=', templateId)
      .executeTakeFirst(),
  )
  if (!template) {
    throw new HookError(
      `project template ${templateId} not found; the tenant_ops fixtures must be applied before this hook runs`,
    )
  }
  const templateTasks = await query(`reading the tasks of template ${templateId}`, () =>
    db
      .selectFrom('project_template_tasks')
      .select(['task_no', 'subject', 'description', 'priority', 'offset_days', 'estimated_hours'])
      .where('template_id', '=', templateId)
      .orderBy('task_no')
      .execute(),
  )
  if (templateTasks.length === 0) {
    throw new HookError(`project template ${templateId} has no tasks in project_template_tasks`)
  }

  const currency = await effectiveSetting(db, 'currency')
  await query('creating the onboarding project', () =>
    db
      .insertInto('projects')
      .values({
        id: PROJECT_ID,
        project_name: 'Onboarding',
        customer_id: null,
        status: 'active',
        owner_email: null,
        start_date: today,
        end_date: addDays(today, template.default_duration_days),
        budget: null,
        currency,
        description: `Getting ${site} up and running. Created from the "${template.template_name}" template when tenant_ops was installed.`,
        template_id: template.id,
        created_at: nowIso,
        updated_at: nowIso,
      })
      .execute(),
  )

  const taskRows = templateTasks.map((task) => ({
    id: `TASK-ONBOARDING-${String(task.task_no).padStart(2, '0')}`,
    project_id: PROJECT_ID,
    parent_task_id: null,
    subject: task.subject,
    description: task.description,
    status: 'open',
    priority: task.priority,
    assignee: null,
    due_date: addDays(today, task.offset_days),
    estimated_hours: task.estimated_hours,
    sort_order: Number(task.task_no) * 10,
    is_billable: 0,
    completed_at: null,
    created_at: nowIso,
    updated_at: nowIso,
  }))
  await query('creating the onboarding tasks', () => db.insertInto('tasks').values(taskRows).execute())

  const tag = await query('looking up the onboarding tag', () =>
    db.selectFrom('tags').select('id').where('id', '=', ONBOARDING_TAG_ID).executeTakeFirst(),
  )
  if (tag) {
    await query('tagging the onboarding project', () =>
      db
        .insertInto('tag_links')
        .values({ tag_id: ONBOARDING_TAG_ID, ref_type: 'project', ref_id: PROJECT_ID, linked_by: ACTOR, linked_at: nowIso })
        .execute(),
    )
  }
  return { created: true, tasks: taskRows.length }
}

async function recordInstall(db, dbType) {
  const existing = await query('checking audit_log', () =>
    db
      .selectFrom('audit_log')
      .select('id')
      .where('action', '=', 'app_installed')
      .where('ref_type', '=', 'app')
      .where('ref_id', '=', APP)
      .executeTakeFirst(),
  )
  if (existing) return false
  await query('writing the audit_log entry', () =>
    db
      .insertInto('audit_log')
      .values({
        id: `AUD-${randomUUID()}`,
        at: nowIso,
        actor: ACTOR,
        action: 'app_installed',
        ref_type: 'app',
        ref_id: APP,
        detail: JSON.stringify({ site, version: appVersion, db_type: dbType, onboarding_project: PROJECT_ID }),
      })
      .execute(),
  )
  return true
}

async function setInstalledAt(db) {
  const row = await query(`reading setting ${INSTALLED_AT_KEY}`, () =>
    db.selectFrom('settings').select('setting_value').where('setting_key', '=', INSTALLED_AT_KEY).executeTakeFirst(),
  )
  if (row && row.setting_value) return { changed: false, installedAt: row.setting_value }
  if (row) {
    await query(`updating setting ${INSTALLED_AT_KEY}`, () =>
      db
        .updateTable('settings')
        .set({ setting_value: nowIso, updated_at: nowIso })
        .where('setting_key', '=', INSTALLED_AT_KEY)
        .execute(),
    )
  } else {
    await query(`inserting setting ${INSTALLED_AT_KEY}`, () =>
      db
        .insertInto('settings')
        .values({
          setting_key: INSTALLED_AT_KEY,
          setting_value: nowIso,
          default_value: null,
          value_type: 'datetime',
          owner_app: APP,
          description: 'When tenant_ops was first installed on this site (UTC)',
          updated_at: nowIso,
        })
        .execute(),
    )
  }
  return { changed: true, installedAt: nowIso }
}

async function run(db, dbType) {
  const project = await createOnboardingProject(db)
  const audited = await recordInstall(db, dbType)
  const installed = await setInstalledAt(db)
  return { project, audited, installed }
}

let result
try {
  result = await withSiteDatabase(sitePath, async (db, ctx) => {
    const dbType = ctx?.dbType ?? process.env.TENANCY_DB_TYPE ?? 'unknown'
    // All three steps commit together. The library may already hand us a transaction.
    return db.isTransaction ? run(db, dbType) : db.transaction().execute((trx) => run(trx, dbType))
  })
} catch (error) {
  // tenancy's own errors (a database server that went away, say) are one sentence already.
  const known = error instanceof HookError || (TenancyError && error instanceof TenancyError)
  fail(known ? error.message : `unexpected error: ${error?.stack ?? error}`)
}

const { project, audited, installed } = result
const changes = []
if (project.created) changes.push(`created project ${PROJECT_ID} with ${project.tasks} starter tasks`)
if (audited) changes.push('recorded app_installed in audit_log')
if (installed.changed) changes.push(`set ${INSTALLED_AT_KEY}=${installed.installedAt}`)
process.stdout.write(
  changes.length > 0
    ? `${APP} after_install on ${site}: ${changes.join(', ')}\n`
    : `${APP} after_install on ${site}: already done (project ${PROJECT_ID} exists, installed_at ${installed.installedAt}), nothing changed\n`,
)
