// tenant_ops 0003: time tracking against tasks.
//
// One row per block of work. project_id is copied from the task so that
// per-project timesheets and billing do not need a join.

export async function up(db) {
  await db.schema
    .createTable('time_entries')
    .addColumn('id', 'varchar(64)', (col) => col.primaryKey().notNull())
    .addColumn('task_id', 'varchar(64)', (col) => col.notNull())
    .addColumn('project_id', 'varchar(64)', (col) => col.notNull())
    .addColumn('logged_by', 'varchar(140)', (col) => col.notNull())
    .addColumn('entry_date', 'varchar(10)', (col) => col.notNull())
    .addColumn('hours', 'decimal(8, 2)', (col) => col.notNull())
    .addColumn('is_billable', 'integer', (col) => col.notNull().defaultTo(1))
    .addColumn('billing_rate', 'decimal(18, 2)')
    .addColumn('description', 'text')
    .addColumn('created_at', 'varchar(32)', (col) => col.notNull())
    .execute()

  await db.schema.createIndex('idx_time_entries_task').on('time_entries').column('task_id').execute()
  await db.schema
    .createIndex('idx_time_entries_project_date')
    .on('time_entries')
    .columns(['project_id', 'entry_date'])
    .execute()
  await db.schema
    .createIndex('idx_time_entries_user_date')
    .on('time_entries')
    .columns(['logged_by', 'entry_date'])
    .execute()
}

export async function down(db) {
  await db.schema.dropTable('time_entries').execute()
}
