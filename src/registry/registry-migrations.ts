import { sql, type Kysely } from 'kysely'
import type { RegistrySchema } from './schema.js'

export type RegistryKind = 'sqlite' | 'postgres'

/** One version of the registry schema; applied in order, each once. */
export interface RegistryMigration {
  version: number
  up(db: Kysely<RegistrySchema>, kind: RegistryKind): Promise<void>
}

export const REGISTRY_MIGRATIONS: RegistryMigration[] = [
  {
    version: 1,
    async up(db, kind) {
      const id = kind === 'postgres' ? 'serial' : 'integer'
      const autoId = (col: any) => (kind === 'postgres' ? col.primaryKey() : col.primaryKey().autoIncrement())
      await db.schema
        .createTable('sites')
        .addColumn('name', 'varchar(253)', (c) => c.primaryKey())
        .addColumn('state', 'varchar(16)', (c) => c.notNull())
        .addColumn('db_type', 'varchar(16)', (c) => c.notNull())
        .addColumn('db_name', 'varchar(64)', (c) => c.notNull())
        .addColumn('db_host', 'varchar(255)')
        .addColumn('db_port', 'integer')
        .addColumn('db_user', 'varchar(64)')
        .addColumn('apps', 'text', (c) => c.notNull().defaultTo('[]'))
        .addColumn('tenant_id', 'integer')
        .addColumn('owner', 'varchar(255)')
        .addColumn('created_at', 'varchar(32)', (c) => c.notNull())
        .addColumn('updated_at', 'varchar(32)', (c) => c.notNull())
        .execute()
      await db.schema
        .createTable('tenants')
        .addColumn('id', id, autoId)
        .addColumn('name', 'varchar(63)', (c) => c.notNull().unique())
        .addColumn('site', 'varchar(253)', (c) => c.unique())
        .addColumn('status', 'varchar(16)', (c) => c.notNull())
        .addColumn('provisioning_status', 'varchar(16)', (c) => c.notNull())
        .addColumn('pending_since', 'varchar(32)')
        .addColumn('data', 'text', (c) => c.notNull().defaultTo('{}'))
        .addColumn('api_key', 'varchar(64)')
        .addColumn('api_secret_enc', 'text')
        .addColumn('admin_password_enc', 'text')
        .addColumn('lease_owner', 'varchar(255)')
        .addColumn('lease_expires_at', 'varchar(32)')
        .addColumn('pull_from', 'varchar(253)')
        .addColumn('error', 'text')
        .addColumn('created_at', 'varchar(32)', (c) => c.notNull())
        .addColumn('updated_at', 'varchar(32)', (c) => c.notNull())
        .addColumn('provisioned_at', 'varchar(32)')
        .execute()
      await db.schema
        .createIndex('tenants_pending')
        .on('tenants')
        .columns(['pending_since', 'provisioning_status'])
        .execute()
      await db.schema
        .createTable('steps')
        .addColumn('tenant_id', 'integer', (c) => c.notNull())
        .addColumn('idx', 'integer', (c) => c.notNull())
        .addColumn('name', 'varchar(128)', (c) => c.notNull())
        .addColumn('status', 'varchar(16)', (c) => c.notNull())
        .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('started_at', 'varchar(32)')
        .addColumn('finished_at', 'varchar(32)')
        .addColumn('error', 'text')
        .addColumn('output', 'text')
        .addPrimaryKeyConstraint('steps_pk', ['tenant_id', 'idx'])
        .execute()
      await db.schema
        .createTable('jobs')
        .addColumn('id', id, autoId)
        .addColumn('tenant_id', 'integer', (c) => c.notNull())
        .addColumn('kind', 'varchar(32)', (c) => c.notNull())
        .addColumn('status', 'varchar(16)', (c) => c.notNull())
        .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('run_at', 'varchar(32)', (c) => c.notNull())
        .addColumn('lease_owner', 'varchar(255)')
        .addColumn('lease_expires_at', 'varchar(32)')
        .addColumn('last_error', 'text')
        .addColumn('created_at', 'varchar(32)', (c) => c.notNull())
        .addColumn('updated_at', 'varchar(32)', (c) => c.notNull())
        .execute()
      await db.schema.createIndex('jobs_ready').on('jobs').columns(['status', 'run_at']).execute()
      await db.schema
        .createTable('error_log')
        .addColumn('id', id, autoId)
        .addColumn('at', 'varchar(32)', (c) => c.notNull())
        .addColumn('tenant', 'varchar(63)')
        .addColumn('site', 'varchar(253)')
        .addColumn('step', 'varchar(128)')
        .addColumn('job_id', 'integer')
        .addColumn('message', 'text', (c) => c.notNull())
        .execute()
      await db.schema.createIndex('error_log_tenant').on('error_log').columns(['tenant', 'at']).execute()
    },
  },
  {
    version: 2,
    async up(db) {
      // What a `run` step runs, kept with the step so a tenant finishes with the pipeline it started with.
      await db.schema.alterTable('steps').addColumn('spec', 'text').execute()
      // Named leases with an expiry, e.g. one per running worker (`worker:<owner>`).
      await db.schema
        .createTable('leases')
        .addColumn('name', 'varchar(255)', (c) => c.primaryKey())
        .addColumn('owner', 'varchar(255)', (c) => c.notNull())
        .addColumn('expires_at', 'varchar(32)', (c) => c.notNull())
        .execute()
      await db.schema.createIndex('jobs_tenant').on('jobs').column('tenant_id').execute()
    },
  },
  {
    version: 3,
    async up(db) {
      // Bench-wide facts, such as the check value that tells a wrong encryption key.
      await db.schema
        .createTable('meta')
        .addColumn('key', 'varchar(64)', (c) => c.primaryKey())
        .addColumn('value', 'text', (c) => c.notNull())
        .execute()
    },
  },
  {
    version: 4,
    async up(db) {
      // One server database belongs to one site: a second site naming it (`--db-name`) is
      // refused by the registry itself, so a later drop of one can never drop the other's.
      // SQLite sites have no host (NULL), and NULLs never collide.
      const clashes = await db
        .selectFrom('sites')
        .select(['db_name', (eb) => eb.fn.count<number>('name').as('n')])
        .where('db_host', 'is not', null)
        .groupBy(['db_type', 'db_host', 'db_port', 'db_name'])
        .having((eb) => eb.fn.count('name'), '>', 1)
        .execute()
      // An older registry may already hold two rows naming one database (a half-made site's
      // name reused): refusing to open it would also block the drop-site that fixes it, so
      // such a registry goes without the index (doctor still reports the half-made row).
      if (clashes.length > 0) return
      await db.schema
        .createIndex('sites_server_database')
        .on('sites')
        .columns(['db_type', 'db_host', 'db_port', 'db_name'])
        .unique()
        .execute()
    },
  },
  {
    version: 5,
    async up(db, kind) {
      // The outbox: an event is written in the transaction of the change it announces and
      // delivered afterwards, at least once. `next_attempt_at` is null once delivered, so
      // "anything due?" is one probe of its index.
      await db.schema
        .createTable('events')
        .addColumn('seq', kind === 'postgres' ? 'serial' : 'integer', (c) =>
          kind === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement(),
        )
        .addColumn('id', 'varchar(36)', (c) => c.notNull().unique())
        .addColumn('type', 'varchar(32)', (c) => c.notNull())
        .addColumn('tenant_id', 'integer')
        .addColumn('payload', 'text', (c) => c.notNull())
        .addColumn('created_at', 'varchar(32)', (c) => c.notNull())
        .addColumn('delivered_at', 'varchar(32)')
        .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('next_attempt_at', 'varchar(32)')
        .addColumn('last_error', 'text')
        .addColumn('lease_owner', 'varchar(255)')
        .addColumn('lease_expires_at', 'varchar(32)')
        .execute()
      await db.schema.createIndex('events_due').on('events').column('next_attempt_at').execute()
    },
  },
  {
    version: 6,
    async up(db) {
      // The machine a site lives on (its home, SPEC §10), so that with a shared registry no
      // machine repairs, drops or re-provisions a site it cannot see. Rows made before it
      // have none (NULL): see `isHomedHere`.
      await db.schema.alterTable('sites').addColumn('host', 'varchar(255)').execute()
    },
  },
  {
    version: 7,
    async up(db) {
      // Suspension (SPEC §9): when and why a tenant was suspended, and a marker that its
      // site_config.json (`maintenance_mode`) is still to be brought in line with `status`: set
      // in the transaction that changes the status, cleared once the file is written, so a
      // crash between the two is finished by the next command (one probe of its index).
      await db.schema.alterTable('tenants').addColumn('suspended_at', 'varchar(32)').execute()
      await db.schema.alterTable('tenants').addColumn('suspend_reason', 'text').execute()
      await db.schema.alterTable('tenants').addColumn('config_sync', 'integer').execute()
      await db.schema.createIndex('tenants_config_sync').on('tenants').column('config_sync').execute()
    },
  },
  {
    version: 8,
    async up(db) {
      // A rename's intent (SPEC §9): the row takes the new name and `rename_from` the old one in
      // one transaction; what still bears the old name follows, then it is cleared. Every command
      // looks for unfinished ones when it opens the registry: the partial index keeps that one
      // probe of an index that holds only them.
      await db.schema.alterTable('sites').addColumn('rename_from', 'varchar(253)').execute()
      await db.schema
        .createIndex('sites_renaming')
        .on('sites')
        .column('rename_from')
        .where(sql.ref('rename_from'), 'is not', null)
        .execute()
      // A pull is a rename: one a killed process of an older version left is marked as one too,
      // with no owner of its own (the tenant's lease says whether its puller is gone).
      await db
        .updateTable('sites')
        .set((eb) => ({
          state: 'renaming',
          owner: null,
          rename_from: eb
            .selectFrom('tenants')
            .select('tenants.pull_from')
            .whereRef('tenants.site', '=', 'sites.name')
            .where('tenants.pull_from', 'is not', null),
        }))
        .where((eb) =>
          eb.exists(
            eb
              .selectFrom('tenants')
              .select('tenants.id')
              .whereRef('tenants.site', '=', 'sites.name')
              .where('tenants.pull_from', 'is not', null),
          ),
        )
        .execute()
    },
  },
  {
    version: 9,
    async up(db, kind) {
      // Many machines (SPEC §10). A provisioning job may name the machine that must run it
      // (`tenant create --host H`); NULL lets the first machine's worker take it and home the
      // site on itself.
      await db.schema.alterTable('jobs').addColumn('host', 'varchar(255)').execute()
      // Work a fleet command sends to another machine's workers: one job per machine with its
      // list of sites, and one result row per site as each finishes, which the command waits
      // on (woken by NOTIFY on PostgreSQL) and reports in its own summary.
      const id = kind === 'postgres' ? 'serial' : 'integer'
      const autoId = (col: any) => (kind === 'postgres' ? col.primaryKey() : col.primaryKey().autoIncrement())
      await db.schema
        .createTable('site_jobs')
        .addColumn('id', id, autoId)
        .addColumn('host', 'varchar(255)', (c) => c.notNull())
        .addColumn('command', 'varchar(32)', (c) => c.notNull())
        .addColumn('payload', 'text', (c) => c.notNull())
        .addColumn('sites', 'text', (c) => c.notNull())
        .addColumn('status', 'varchar(16)', (c) => c.notNull())
        .addColumn('requested_by', 'varchar(255)', (c) => c.notNull())
        .addColumn('lease_owner', 'varchar(255)')
        .addColumn('lease_expires_at', 'varchar(32)')
        .addColumn('error', 'text')
        .addColumn('created_at', 'varchar(32)', (c) => c.notNull())
        .addColumn('updated_at', 'varchar(32)', (c) => c.notNull())
        .addColumn('finished_at', 'varchar(32)')
        .execute()
      await db.schema.createIndex('site_jobs_host').on('site_jobs').columns(['host', 'status']).execute()
      await db.schema
        .createTable('site_job_results')
        .addColumn('job_id', 'integer', (c) => c.notNull())
        .addColumn('seq', 'integer', (c) => c.notNull())
        .addColumn('site', 'varchar(253)', (c) => c.notNull())
        .addColumn('result', 'text', (c) => c.notNull())
        .addColumn('created_at', 'varchar(32)', (c) => c.notNull())
        .addPrimaryKeyConstraint('site_job_results_pk', ['job_id', 'seq'])
        .execute()
    },
  },
  {
    version: 10,
    async up(db) {
      // `tenant list` shows tenants oldest first, a page at a time (SPEC §11): with these a page
      // of 100 out of 100,000 reads those 100 rows, not all of them sorted, with the pending
      // ones (the default) or without them (the other index: SQLite, with no statistics, would
      // otherwise take "pending_since IS NULL" as a probe of tenants_pending, which holds nearly
      // every row then, and sort them all). IF NOT EXISTS: a registry taken back to an older
      // schema by hand keeps its indexes.
      await db.schema.createIndex('tenants_listing').ifNotExists().on('tenants').columns(['created_at', 'id']).execute()
      await db.schema
        .createIndex('tenants_listing_pending')
        .ifNotExists()
        .on('tenants')
        .columns(['pending_since', 'created_at', 'id'])
        .execute()
    },
  },
  {
    version: 11,
    async up(db) {
      // A pull claims the oldest ready pending tenant, "ORDER BY pending_since, id LIMIT 1": in
      // this index's order, so the claim reads the pool's first rows, not every tenant sorted
      // (SQLite scanned the table for it: tenants_pending has provisioning_status between the two).
      await db.schema.createIndex('tenants_pool').ifNotExists().on('tenants').columns(['pending_since', 'id']).execute()
    },
  },
]

export const REGISTRY_VERSION = REGISTRY_MIGRATIONS[REGISTRY_MIGRATIONS.length - 1]!.version
