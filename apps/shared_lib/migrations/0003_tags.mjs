// shared_lib 0003: tags and the links that attach them to any document.
//
// `tags` is reference data (system tags come from fixtures/02_tags.json,
// tenants may add their own with is_system = 0). `tag_links` is a plain
// many-to-many table keyed by (tag_id, ref_type, ref_id).

export async function up(db) {
  await db.schema
    .createTable('tags')
    .addColumn('id', 'varchar(64)', (col) => col.primaryKey().notNull())
    .addColumn('tag_name', 'varchar(140)', (col) => col.notNull())
    .addColumn('color', 'varchar(16)')
    .addColumn('description', 'varchar(255)')
    .addColumn('is_system', 'integer', (col) => col.notNull().defaultTo(0))
    .addColumn('created_at', 'varchar(32)')
    .execute()

  await db.schema.createIndex('idx_tags_tag_name').on('tags').column('tag_name').unique().execute()

  await db.schema
    .createTable('tag_links')
    .addColumn('tag_id', 'varchar(64)', (col) => col.notNull())
    .addColumn('ref_type', 'varchar(64)', (col) => col.notNull())
    .addColumn('ref_id', 'varchar(140)', (col) => col.notNull())
    .addColumn('linked_by', 'varchar(140)')
    .addColumn('linked_at', 'varchar(32)')
    .addPrimaryKeyConstraint('pk_tag_links', ['tag_id', 'ref_type', 'ref_id'])
    .execute()

  // "All tags of this document" is the common lookup, the PK covers "all documents with this tag".
  await db.schema.createIndex('idx_tag_links_ref').on('tag_links').columns(['ref_type', 'ref_id']).execute()
}

export async function down(db) {
  // Dropping a table drops its indexes on all three databases.
  await db.schema.dropTable('tag_links').execute()
  await db.schema.dropTable('tags').execute()
}
