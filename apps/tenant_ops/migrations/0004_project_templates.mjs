// tenant_ops 0004: project templates.
//
// A template is a named list of tasks with offsets in days from the project
// start. Templates ship as fixtures (03_project_templates.json and
// 04_project_template_tasks.json), and the after_install hook builds the
// site's onboarding project from the TPL-ONBOARDING template. projects gets a
// template_id column so a project remembers where it came from.

export async function up(db) {
  await db.schema
    .createTable('project_templates')
    .addColumn('id', 'varchar(64)', (col) => col.primaryKey().notNull())
    .addColumn('template_name', 'varchar(140)', (col) => col.notNull())
    .addColumn('description', 'text')
    .addColumn('default_duration_days', 'integer', (col) => col.notNull().defaultTo(30))
    .addColumn('is_active', 'integer', (col) => col.notNull().defaultTo(1))
    .execute()

  await db.schema
    .createTable('project_template_tasks')
    .addColumn('template_id', 'varchar(64)', (col) => col.notNull())
    .addColumn('task_no', 'integer', (col) => col.notNull())
    .addColumn('subject', 'varchar(255)', (col) => col.notNull())
    .addColumn('description', 'text')
    .addColumn('priority', 'varchar(32)', (col) => col.notNull().defaultTo('medium'))
    .addColumn('offset_days', 'integer', (col) => col.notNull().defaultTo(0))
    .addColumn('estimated_hours', 'decimal(8, 2)')
    .addPrimaryKeyConstraint('pk_project_template_tasks', ['template_id', 'task_no'])
    .execute()

  await db.schema.alterTable('projects').addColumn('template_id', 'varchar(64)').execute()
  await db.schema.createIndex('idx_projects_template_id').on('projects').column('template_id').execute()
}

export async function down(db, ctx) {
  await dropIndex(db, ctx, 'idx_projects_template_id', 'projects')
  await db.schema.alterTable('projects').dropColumn('template_id').execute()
  await db.schema.dropTable('project_template_tasks').execute()
  await db.schema.dropTable('project_templates').execute()
}

// MariaDB needs "DROP INDEX name ON table", PostgreSQL rejects the ON part.
async function dropIndex(db, ctx, indexName, tableName) {
  const builder = db.schema.dropIndex(indexName)
  await (ctx.dbType === 'mariadb' ? builder.on(tableName) : builder).execute()
}
