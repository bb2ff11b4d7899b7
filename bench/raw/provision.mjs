// The fair raw provisioning of one tenant, as a whole process (bench/hooks.mjs runs it beside
// `tenancy tenant create --no-pool`): what the SPEC makes a tenant's provisioning, with plain
// better-sqlite3, fs and node:crypto (bench/raw/site.mjs) and nothing else.
//
//   node bench/raw/provision.mjs SNAPSHOT.json BENCH NAME
//
// SNAPSHOT.json: `snapshotSite` of a site tenancy provisioned (both sample apps: their tables,
// fixtures and the after_install hook's rows). BENCH: a bench whose registry tenancy made (its
// tables and key check). The work, in the order crash safety needs it:
//   1. the key checked against the registry's check value (SPEC §6, no key is mixed);
//   2. one registry transaction recording the tenant, its seven steps and its site (the intent a
//      crash is resumed from, SPEC §4);
//   3. the site: directory, site_config.json written durably, the database with the same tables
//      and rows in one fsynced transaction, the Administrator's password hashed with scrypt
//      (started first, awaited last) and the API user's secret hashed;
//   4. one registry transaction: the steps done, the tenant active with its api_key and the
//      encrypted api_secret and admin password, the site ready.
// Prints the tenant as one JSON line, as `tenant create --json` prints a document.
import { readFileSync } from 'node:fs'
import { createDecipheriv, randomBytes } from 'node:crypto'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { openRegistryDb, rawNewSite, seal } from './site.mjs'

const STEPS = [
  'create-site',
  'developer-mode',
  'install-app shared_lib',
  'install-app tenant_ops',
  'api-user',
  'api-keys',
  'activate',
]

/** The bench's key, refused unless it opens the registry's check value. */
export function checkedKey(bench, registry) {
  const key = Buffer.from(readFileSync(join(bench, '.tenancy', 'secret.key'), 'utf8').trim(), 'base64')
  const check = registry.prepare("select value from meta where key = 'key_check'").get()
  if (check) {
    const data = Buffer.from(check.value, 'base64')
    const decipher = createDecipheriv('aes-256-gcm', key, data.subarray(1, 13))
    decipher.setAuthTag(data.subarray(13, 29))
    Buffer.concat([decipher.update(data.subarray(29)), decipher.final()])
  }
  return key
}

/** Provisions tenant `name` on `bench` from `snapshot`; returns its row. */
export async function rawProvision(bench, snapshot, name) {
  const registry = openRegistryDb(join(bench, '.tenancy', 'registry.db'))
  try {
    const key = checkedKey(bench, registry)
    const site = `${name}.localhost`
    const at = new Date().toISOString()
    const dbName = `_${randomBytes(8).toString('hex')}`
    const id = registry
      .transaction(() => {
        const { lastInsertRowid } = registry
          .prepare(
            "insert into tenants (name, site, status, provisioning_status, data, created_at, updated_at) values (?, ?, 'inactive', 'in_progress', '{}', ?, ?)",
          )
          .run(name, site, at, at)
        const step = registry.prepare(
          "insert into steps (tenant_id, idx, name, status, attempts, started_at, spec) values (?, ?, ?, 'pending', 0, null, '{}')",
        )
        STEPS.forEach((s, i) => step.run(lastInsertRowid, i, s))
        registry
          .prepare(
            "insert into sites (name, state, db_type, db_name, apps, tenant_id, owner, host, created_at, updated_at) values (?, 'creating', 'sqlite', ?, '[]', ?, ?, ?, ?, ?)",
          )
          .run(site, dbName, lastInsertRowid, `${process.pid}@${hostname()}`, hostname(), at, at)
        return lastInsertRowid
      })
      .immediate()

    const password = randomBytes(18).toString('base64url')
    const keys = await rawNewSite(join(bench, 'sites', site), snapshot, { fair: true, password, dbName, site })

    const done = new Date().toISOString()
    registry
      .transaction(() => {
        registry
          .prepare(
            "update steps set status = 'done', attempts = 1, started_at = ?, finished_at = ? where tenant_id = ?",
          )
          .run(at, done, id)
        registry
          .prepare(
            "update tenants set status = 'active', provisioning_status = 'completed', api_key = ?, api_secret_enc = ?, admin_password_enc = ?, provisioned_at = ?, updated_at = ? where id = ?",
          )
          .run(keys.key, seal(key, keys.secret), seal(key, password), done, done, id)
        registry.prepare("update sites set state = 'ready', apps = ?, owner = null, updated_at = ? where name = ?").run(
          JSON.stringify([
            { name: 'shared_lib', version: '1.0.0' },
            { name: 'tenant_ops', version: '1.0.0' },
          ]),
          done,
          site,
        )
      })
      .immediate()
    return registry.prepare('select name, site, status, provisioning_status, api_key from tenants where id = ?').get(id)
  } finally {
    registry.close()
  }
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [snapshotFile, bench, name] = process.argv.slice(2)
  const tenant = await rawProvision(bench, JSON.parse(readFileSync(snapshotFile, 'utf8')), name)
  process.stdout.write(`${JSON.stringify(tenant)}\n`)
}
