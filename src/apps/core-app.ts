import type { InlineMigration } from './migrations.js'

/** The ledger name of the site core schema's migrations. */
export const CORE_APP = 'core'

export const CORE_ROLES = ['Administrator', 'System Manager', 'All', 'Guest'] as const

/**
 * The tables every site has: users, roles, API keys and installed apps. Applied by
 * `new-site` and, for later versions, by `migrate`, through the same ledger as apps.
 */
export const CORE_MIGRATIONS: InlineMigration[] = [
  {
    name: '0001_core_schema',
    async up(db) {
      await db.schema
        .createTable('users')
        .addColumn('name', 'varchar(255)', (c) => c.primaryKey())
        .addColumn('email', 'varchar(255)')
        .addColumn('first_name', 'varchar(140)')
        .addColumn('last_name', 'varchar(140)')
        .addColumn('enabled', 'integer', (c) => c.notNull().defaultTo(1))
        .addColumn('password_hash', 'text')
        .addColumn('created_at', 'varchar(32)', (c) => c.notNull())
        .addColumn('updated_at', 'varchar(32)', (c) => c.notNull())
        .execute()
      await db.schema.createIndex('users_email').on('users').column('email').execute()
      await db.schema
        .createTable('roles')
        .addColumn('name', 'varchar(140)', (c) => c.primaryKey())
        .addColumn('description', 'text')
        .execute()
      await db.schema
        .createTable('user_roles')
        .addColumn('user_name', 'varchar(255)', (c) => c.notNull())
        .addColumn('role', 'varchar(140)', (c) => c.notNull())
        .addPrimaryKeyConstraint('user_roles_pk', ['user_name', 'role'])
        .execute()
      await db.schema.createIndex('user_roles_role').on('user_roles').column('role').execute()
      await db.schema
        .createTable('api_keys')
        .addColumn('user_name', 'varchar(255)', (c) => c.primaryKey())
        .addColumn('api_key', 'varchar(64)', (c) => c.notNull().unique())
        .addColumn('secret_hash', 'text', (c) => c.notNull())
        .addColumn('created_at', 'varchar(32)', (c) => c.notNull())
        .addColumn('rotated_at', 'varchar(32)', (c) => c.notNull())
        .execute()
      await db.schema
        .createTable('installed_apps')
        .addColumn('name', 'varchar(64)', (c) => c.primaryKey())
        .addColumn('version', 'varchar(64)', (c) => c.notNull())
        .addColumn('installed_at', 'varchar(32)', (c) => c.notNull())
        .addColumn('updated_at', 'varchar(32)', (c) => c.notNull())
        .execute()
      await db
        .insertInto('roles')
        .values(CORE_ROLES.map((name) => ({ name, description: null })))
        .execute()
    },
  },
  {
    // What each app's fixtures looked like when they were last synced, so `migrate` can
    // tell in one query whether a site needs anything at all.
    name: '0002_fixture_digests',
    async up(db) {
      await db.schema
        .createTable('tenancy_fixtures')
        .addColumn('app', 'varchar(64)', (c) => c.primaryKey())
        .addColumn('digest', 'varchar(64)', (c) => c.notNull())
        .addColumn('synced_at', 'varchar(32)', (c) => c.notNull())
        .execute()
    },
  },
]
