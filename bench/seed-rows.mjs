// Fills a bench's registry with many rows in one SQL statement each, for the listing tests and
// benchmarks (issue 18): 100,000 tenants made through the CLI would take hours. The SQL runs
// unchanged on both registry kinds (a recursive CTE counts the rows, `||` builds the names).
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import pg from 'pg'

/** `count` numbered rows of `columns`, each value an SQL expression over the row's number `i` (1…count). */
function insertNumbered(table, count, columns) {
  const names = Object.keys(columns).join(', ')
  const values = Object.values(columns).join(', ')
  return (
    `INSERT INTO ${table} (${names}) ` +
    `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${Number(count)}) ` +
    `SELECT ${values} FROM n`
  )
}

/** An SQL string literal. */
const text = (value) => `'${String(value).replace(/'/g, "''")}'`

/**
 * The seeded tenants' columns: `t1000001`…, site `<name>.localhost`; created over twenty days
 * (`2024-01-10`…`2024-01-29` by `i % 20`), so that the listing order (created_at, then id)
 * differs from the insertion order; every tenth suspended, every fiftieth pending.
 */
const TENANT_COLUMNS = {
  name: "'t' || (1000000 + i)",
  site: "'t' || (1000000 + i) || '.localhost'",
  status: "CASE WHEN i % 10 = 0 THEN 'suspended' ELSE 'active' END",
  provisioning_status: "'completed'",
  pending_since: "CASE WHEN i % 50 = 0 THEN '2024-01-01T00:00:00.000Z' ELSE NULL END",
  data: `'{"plan":"pro","seats":' || i || '}'`,
  api_key: "'k' || (1000000000 + i) || 'abcdefabcdefabcdef'",
  created_at: "'2024-01-' || (10 + i % 20) || 'T00:00:00.000Z'",
  updated_at: "'2024-01-30T00:00:00.000Z'",
  provisioned_at: "'2024-01-30T00:00:00.000Z'",
}

/** The tenants `seedTenants` makes, in the order `tenant list` shows them (created_at, then id). */
export function seededTenantOrder(count) {
  const all = Array.from({ length: count }, (_, k) => k + 1)
  return all.sort((a, b) => (a % 20) - (b % 20) || a - b).map((i) => `t${1000000 + i}`)
}

/** Runs statements on a bench's registry, SQLite or PostgreSQL, as its config names it. */
export async function onRegistry(bench, statements) {
  const config = JSON.parse(readFileSync(join(bench, 'tenancy.config.json'), 'utf8'))
  const url = config.registry ?? 'sqlite:.tenancy/registry.db'
  if (url.startsWith('sqlite:')) {
    const db = new Database(join(bench, url.slice('sqlite:'.length)), { fileMustExist: true, timeout: 15_000 })
    try {
      db.transaction(() => statements.forEach((s) => db.prepare(s).run()))()
    } finally {
      db.close()
    }
    return
  }
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    await client.query('BEGIN')
    for (const statement of statements) await client.query(statement)
    await client.query('COMMIT')
    // The statistics autovacuum would gather a little later: without them PostgreSQL plans
    // for the empty tables it last saw. (SQLite has none unless ANALYZE runs, like a real registry.)
    await client.query('ANALYZE')
  } finally {
    await client.end()
  }
}

/**
 * Adds `count` tenants (see `TENANT_COLUMNS`) to the bench's registry, which must exist (any
 * command opens it), and, with `sites`, a registry row for each one's site on machine `host`.
 */
export async function seedTenants(bench, count, options = {}) {
  const statements = [insertNumbered('tenants', count, TENANT_COLUMNS)]
  if (options.sites)
    statements.push(
      'INSERT INTO sites (name, state, db_type, db_name, apps, tenant_id, host, created_at, updated_at) ' +
        `SELECT site, 'ready', 'sqlite', 'db_' || id, '[{"name":"core","version":"0.1.0"}]', id, ` +
        `${options.host === undefined ? 'NULL' : text(options.host)}, created_at, updated_at FROM tenants ` +
        'WHERE site IS NOT NULL AND site NOT IN (SELECT name FROM sites)',
    )
  await onRegistry(bench, statements)
}

/** Adds `count` entries to the error log: tenant `t1000001`… in turn over `tenants` names, message `failure i`. */
export async function seedErrors(bench, count, tenants = 3) {
  await onRegistry(bench, [
    insertNumbered('error_log', count, {
      at: "'2024-02-01T00:00:00.000Z'",
      tenant: `'t' || (1000001 + i % ${Number(tenants)})`,
      step: "'create-site'",
      message: "'failure ' || i",
    }),
  ])
}

/** Adds `count` events to the outbox (`ev-i`, delivered), their payloads naming tenant `t<1000000 + i>`. */
export async function seedEvents(bench, count) {
  await onRegistry(bench, [
    insertNumbered('events', count, {
      id: "'ev-' || i",
      type: "'tenant.active'",
      payload: `'{"tenant":{"name":"t' || (1000000 + i) || '","site":"t' || (1000000 + i) || '.localhost"}}'`,
      created_at: "'2024-02-01T00:00:00.000Z'",
      delivered_at: "'2024-02-01T00:00:01.000Z'",
      attempts: '1',
    }),
  ])
}
