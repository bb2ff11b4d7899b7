// tenant_ops 0006: billing terms on customers.
//
// Schema evolution: one column per ALTER TABLE statement keeps it valid on
// SQLite, which cannot add several columns at once. New NOT NULL columns need
// a DEFAULT so existing rows stay valid. (A .mjs rather than a .sql file
// because its down must drop an index, which MariaDB and PostgreSQL spell
// differently.)

export async function up(db) {
  await db.schema.alterTable('customers').addColumn('tax_id', 'varchar(64)').execute()
  await db.schema
    .alterTable('customers')
    .addColumn('payment_terms_days', 'integer', (col) => col.notNull().defaultTo(30))
    .execute()
  await db.schema.alterTable('customers').addColumn('credit_limit', 'decimal(18, 2)').execute()
  await db.schema.createIndex('idx_customers_tax_id').on('customers').column('tax_id').execute()
}

export async function down(db, ctx) {
  // SQLite refuses to drop an indexed column: the index goes first.
  const dropIndex = db.schema.dropIndex('idx_customers_tax_id')
  await (ctx.dbType === 'mariadb' ? dropIndex.on('customers') : dropIndex).execute()
  await db.schema.alterTable('customers').dropColumn('credit_limit').execute()
  await db.schema.alterTable('customers').dropColumn('payment_terms_days').execute()
  await db.schema.alterTable('customers').dropColumn('tax_id').execute()
}
