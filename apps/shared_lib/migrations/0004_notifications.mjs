// shared_lib 0004: in-app notifications.
//
// Also records shared_lib.schema_version in settings. It is written as
// setting_value (not a fixture default) because it must move with the
// migrations: up sets it to 4, down puts it back to 3.

export async function up(db) {
  await db.schema
    .createTable('notifications')
    .addColumn('id', 'varchar(64)', (col) => col.primaryKey().notNull())
    .addColumn('recipient', 'varchar(140)', (col) => col.notNull())
    .addColumn('subject', 'varchar(255)', (col) => col.notNull())
    .addColumn('body', 'text')
    .addColumn('channel', 'varchar(16)', (col) => col.notNull().defaultTo('in_app'))
    .addColumn('ref_type', 'varchar(64)')
    .addColumn('ref_id', 'varchar(140)')
    .addColumn('is_read', 'integer', (col) => col.notNull().defaultTo(0))
    .addColumn('created_at', 'varchar(32)', (col) => col.notNull())
    .addColumn('read_at', 'varchar(32)')
    .execute()

  // Unread badge: WHERE recipient = ? AND is_read = 0 ORDER BY created_at DESC
  await db.schema
    .createIndex('idx_notifications_recipient')
    .on('notifications')
    .columns(['recipient', 'is_read', 'created_at'])
    .execute()
  await db.schema.createIndex('idx_notifications_ref').on('notifications').columns(['ref_type', 'ref_id']).execute()

  await upsertSetting(db, 'shared_lib.schema_version', '4')
}

export async function down(db) {
  await db.schema.dropTable('notifications').execute()
  await upsertSetting(db, 'shared_lib.schema_version', '3')
}

// Portable "insert or update" without dialect-specific ON CONFLICT syntax:
// the migration runs inside the site's transaction, so select-then-write is safe.
async function upsertSetting(db, settingKey, settingValue) {
  const now = new Date().toISOString()
  const existing = await db
    .selectFrom('settings')
    .select('setting_key')
    .where('setting_key', '=', settingKey)
    .executeTakeFirst()
  if (existing) {
    await db
      .updateTable('settings')
      .set({ setting_value: settingValue, updated_at: now })
      .where('setting_key', '=', settingKey)
      .execute()
  } else {
    await db
      .insertInto('settings')
      .values({
        setting_key: settingKey,
        setting_value: settingValue,
        value_type: 'int',
        owner_app: 'shared_lib',
        description: 'Schema version of shared_lib applied to this site',
        updated_at: now,
      })
      .execute()
  }
}
