// tenant_ops after_install hook: {"module": "hooks/after_install.mjs"} in app.json.
//
// tenancy imports this module once per process and calls its default export in-process,
// after the app's migrations and fixtures, inside the same transaction: if it throws, the
// app's install is rolled back with it (on SQLite and PostgreSQL; MariaDB keeps the tables
// its DDL made, and the next install resumes). It:
//   1. creates the site's "Onboarding" project (id PRJ-ONBOARDING) with its
//      starter tasks, built from the project template named by the setting
//      tenant_ops.onboarding_template (TPL-ONBOARDING by default), and tags it
//      with shared_lib's TAG-ONBOARDING tag,
//   2. writes one audit_log row (action app_installed, ref app/tenant_ops),
//   3. sets tenant_ops.installed_at in settings, keeping the first value.
// Every step checks before it writes, so running it again changes nothing.
// Everything goes through the Kysely query builder, so it runs unchanged on
// SQLite, MariaDB and PostgreSQL. The string it returns is the hook's output.

import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'

const APP = 'tenant_ops'
export const PROJECT_ID = 'PRJ-ONBOARDING'
const DEFAULT_TEMPLATE_ID = 'TPL-ONBOARDING'
const ONBOARDING_TAG_ID = 'TAG-ONBOARDING'
const INSTALLED_AT_KEY = 'tenant_ops.installed_at'
const ACTOR = 'system'

// The version only goes into the audit detail; not worth failing over.
let appVersion = null
try {
  appVersion = JSON.parse(readFileSync(new URL('../app.json', import.meta.url), 'utf8')).version ?? null
} catch {}

/** The onboarding project's description: what after_rename rewrites when the site is renamed. */
export const onboardingDescription = (site, templateName) =>
  `Getting ${site} up and running. Created from the "${templateName}" template when tenant_ops was installed.`

function addDays(isoDate, days) {
  const date = new Date(`${isoDate}T00:00:00Z`)
  date.setUTCDate(date.getUTCDate() + Number(days || 0))
  return date.toISOString().slice(0, 10)
}

// Names what was being done when a query failed (the error itself says why).
async function step(description, run) {
  try {
    return await run()
  } catch (error) {
    throw new Error(`${description}: ${error.message}`, { cause: error })
  }
}

async function effectiveSetting(db, settingKey) {
  const row = await db
    .selectFrom('settings')
    .select(['setting_value', 'default_value'])
    .where('setting_key', '=', settingKey)
    .executeTakeFirst()
  if (!row) return null
  return row.setting_value ?? row.default_value ?? null
}

async function createOnboardingProject(db, site, now) {
  const existing = await db.selectFrom('projects').select('id').where('id', '=', PROJECT_ID).executeTakeFirst()
  // Tasks are only created together with the project: if the tenant later
  // deletes a starter task, a rerun must not bring it back.
  if (existing) return { created: false, tasks: 0 }

  const templateId = (await effectiveSetting(db, 'tenant_ops.onboarding_template')) || DEFAULT_TEMPLATE_ID
  const template = await db
    .selectFrom('project_templates')
    .select(['id', 'template_name', 'description', 'default_duration_days'])
    .where('id', '=', templateId)
    .executeTakeFirst()
  if (!template) throw new Error(`project template ${templateId} not found (set tenant_ops.onboarding_template to one that exists)`)
  const templateTasks = await db
    .selectFrom('project_template_tasks')
    .select(['task_no', 'subject', 'description', 'priority', 'offset_days', 'estimated_hours'])
    .where('template_id', '=', templateId)
    .orderBy('task_no')
    .execute()
  if (templateTasks.length === 0) throw new Error(`project template ${templateId} has no tasks in project_template_tasks`)

  const nowIso = now.toISOString()
  const today = nowIso.slice(0, 10)
  await db
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
      currency: await effectiveSetting(db, 'currency'),
      description: onboardingDescription(site, template.template_name),
      template_id: template.id,
      created_at: nowIso,
      updated_at: nowIso,
    })
    .execute()

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
  await db.insertInto('tasks').values(taskRows).execute()

  const tag = await db.selectFrom('tags').select('id').where('id', '=', ONBOARDING_TAG_ID).executeTakeFirst()
  if (tag) {
    await db
      .insertInto('tag_links')
      .values({ tag_id: ONBOARDING_TAG_ID, ref_type: 'project', ref_id: PROJECT_ID, linked_by: ACTOR, linked_at: nowIso })
      .execute()
  }
  return { created: true, tasks: taskRows.length }
}

async function recordInstall(db, site, dbType, now) {
  const existing = await db
    .selectFrom('audit_log')
    .select('id')
    .where('action', '=', 'app_installed')
    .where('ref_type', '=', 'app')
    .where('ref_id', '=', APP)
    .executeTakeFirst()
  if (existing) return false
  await db
    .insertInto('audit_log')
    .values({
      id: `AUD-${randomUUID()}`,
      at: now.toISOString(),
      actor: ACTOR,
      action: 'app_installed',
      ref_type: 'app',
      ref_id: APP,
      detail: JSON.stringify({ site, version: appVersion, db_type: dbType, onboarding_project: PROJECT_ID }),
    })
    .execute()
  return true
}

async function setInstalledAt(db, now) {
  const nowIso = now.toISOString()
  const row = await db
    .selectFrom('settings')
    .select('setting_value')
    .where('setting_key', '=', INSTALLED_AT_KEY)
    .executeTakeFirst()
  if (row && row.setting_value) return { changed: false, installedAt: row.setting_value }
  if (row) {
    await db
      .updateTable('settings')
      .set({ setting_value: nowIso, updated_at: nowIso })
      .where('setting_key', '=', INSTALLED_AT_KEY)
      .execute()
  } else {
    await db
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
      .execute()
  }
  return { changed: true, installedAt: nowIso }
}

/** The hook: `db` is the site's database inside the install's transaction. */
export default async function afterInstall({ db, site, dbType }) {
  const now = new Date()
  const project = await step('creating the onboarding project', () => createOnboardingProject(db, site, now))
  const audited = await step('writing the audit_log entry', () => recordInstall(db, site, dbType, now))
  const installed = await step(`setting ${INSTALLED_AT_KEY}`, () => setInstalledAt(db, now))
  const changes = []
  if (project.created) changes.push(`created project ${PROJECT_ID} with ${project.tasks} starter tasks`)
  if (audited) changes.push('recorded app_installed in audit_log')
  if (installed.changed) changes.push(`set ${INSTALLED_AT_KEY}=${installed.installedAt}`)
  return changes.length > 0
    ? `${APP} after_install on ${site}: ${changes.join(', ')}`
    : `${APP} after_install on ${site}: already done (project ${PROJECT_ID} exists, installed_at ${installed.installedAt}), nothing changed`
}
