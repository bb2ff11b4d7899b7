// tenant_ops 0005: track when tasks were completed and whether they are billable.
//
// Adds tasks.completed_at and tasks.is_billable, then backfills completed_at
// for tasks that are already in a closed status (per task_statuses.is_closed),
// using their last update time as the best available estimate.

export async function up(db) {
  // One column per ALTER: SQLite cannot add several in one statement.
  await db.schema.alterTable('tasks').addColumn('completed_at', 'varchar(32)').execute()
  await db.schema
    .alterTable('tasks')
    .addColumn('is_billable', 'integer', (col) => col.notNull().defaultTo(1))
    .execute()

  const closedStatuses = await db
    .selectFrom('task_statuses')
    .select('status_code')
    .where('is_closed', '=', 1)
    .execute()
  const codes = closedStatuses.map((row) => row.status_code)
  // Fixtures are applied after migrations, so on a brand-new site the table may
  // still be empty. Fall back to the codes shipped in fixtures/01.
  if (codes.length === 0) codes.push('done', 'cancelled')

  await db
    .updateTable('tasks')
    .set((eb) => ({ completed_at: eb.ref('updated_at') }))
    .where('status', 'in', codes)
    .where('completed_at', 'is', null)
    .execute()

  await db.schema.createIndex('idx_tasks_completed_at').on('tasks').column('completed_at').execute()
}

export async function down(db, ctx) {
  const dropIndex = db.schema.dropIndex('idx_tasks_completed_at')
  await (ctx.dbType === 'mariadb' ? dropIndex.on('tasks') : dropIndex).execute()
  // SQLite (3.35+) refuses to drop an indexed column, hence the index goes first.
  await db.schema.alterTable('tasks').dropColumn('is_billable').execute()
  await db.schema.alterTable('tasks').dropColumn('completed_at').execute()
}
