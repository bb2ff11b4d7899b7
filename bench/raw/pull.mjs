// The fair raw pull from the pending pool (bench/pool.mjs runs it beside tenancy's, in-process
// and as a whole process): the same durable work a pull is under the SPEC, with plain
// better-sqlite3, fs and node:crypto (bench/raw/site.mjs) on a bench tenancy filled:
//   1. one registry transaction claiming the oldest ready pending tenant: its row takes the
//      tenant's name and site and leaves the pool, the site's row the new name with the rename's
//      intent (what a crash is finished from, SPEC §4 and §9);
//   2. the site's directory renamed, the rename made durable (its parent fsynced);
//   3. in the site's database, one fsynced transaction: the placeholder's API user moved to the
//      tenant's (its roles with it), a new API key with its secret's hash, and what tenant_ops's
//      after_rename hook rewrites (SPEC §9: after a pull no app data names the placeholder);
//   4. one registry transaction ending it: the site ready, the tenant's api_key and encrypted
//      api_secret stored, the intent cleared.
//
//   node bench/raw/pull.mjs BENCH NAME     one pull as a whole process (the key checked first)
import { readFileSync, renameSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { checkedKey } from './provision.mjs'
import { fsyncDirectory, newApiKeys, openRegistryDb, openSiteDb, seal } from './site.mjs'

const PROJECT_ID = 'PRJ-ONBOARDING'

/** A raw pool on `bench` (its registry open, its key checked once): `pull(name)` takes one tenant. */
export function openRawPool(bench) {
  const registry = openRegistryDb(join(bench, '.tenancy', 'registry.db'))
  const key = checkedKey(bench, registry)
  const sites = join(bench, 'sites')
  const owner = `${process.pid}@raw`
  const oldest = registry.prepare(
    "select id, site, data from tenants where pending_since is not null and provisioning_status = 'completed' and (lease_owner is null or lease_expires_at < ?) order by pending_since, id limit 1",
  )
  const take = registry.prepare(
    'update tenants set name = ?, site = ?, data = ?, pending_since = null, pull_from = ?, lease_owner = ?, lease_expires_at = ?, created_at = ?, updated_at = ? where id = ? and pending_since is not null',
  )
  const intent = registry.prepare(
    "update sites set name = ?, state = 'renaming', rename_from = ?, owner = ?, updated_at = ? where name = ?",
  )
  const ready = registry.prepare(
    "update sites set state = 'ready', rename_from = null, updated_at = ? where name = ? and rename_from = ?",
  )
  const finish = registry.prepare(
    'update tenants set api_key = ?, api_secret_enc = ?, pull_from = null, lease_owner = null, lease_expires_at = null, updated_at = ? where id = ? and pull_from = ?',
  )
  const claim = registry.transaction((name, site, data) => {
    const at = new Date().toISOString()
    const row = oldest.get(at)
    if (!row) throw new Error('the raw pool ran dry')
    const merged = JSON.stringify({ ...JSON.parse(row.data), ...data })
    const expires = new Date(Date.now() + 60_000).toISOString()
    take.run(name, site, merged, row.site, owner, expires, at, at, row.id)
    intent.run(site, row.site, owner, at, row.site)
    return row
  })
  const end = registry.transaction((row, site, keys) => {
    const at = new Date().toISOString()
    ready.run(at, site, row.site)
    finish.run(keys.key, seal(key, keys.secret), at, row.id, row.site)
  })

  /** The site's part: the API user moved with new keys and the placeholder's name rewritten, in one transaction. */
  function renameInSite(path, from, to) {
    JSON.parse(readFileSync(join(path, 'site_config.json'), 'utf8'))
    const db = openSiteDb(join(path, 'db.sqlite'), { fileMustExist: true })
    try {
      const [userFrom, userTo] = [`api@${from}`, `api@${to}`]
      const keys = newApiKeys()
      const at = new Date().toISOString()
      db.transaction(() => {
        db.prepare('update users set name = ?, email = ?, updated_at = ? where name = ?').run(
          userTo,
          userTo,
          at,
          userFrom,
        )
        db.prepare('update user_roles set user_name = ? where user_name = ?').run(userTo, userFrom)
        db.prepare('delete from api_keys where user_name = ?').run(userFrom)
        db.prepare(
          'insert into api_keys (user_name, api_key, secret_hash, created_at, rotated_at) values (?, ?, ?, ?, ?)',
        ).run(userTo, keys.key, keys.hash, at, at)
        const project = db.prepare('select description from projects where id = ?').get(PROJECT_ID)
        if (project?.description?.includes(from))
          db.prepare('update projects set description = ?, updated_at = ? where id = ?').run(
            project.description.replaceAll(from, to),
            at,
            PROJECT_ID,
          )
        const audit = db.prepare("select id, detail from audit_log where ref_type = 'app' and ref_id = 'tenant_ops'")
        for (const entry of audit.all()) {
          const detail = JSON.parse(entry.detail)
          if (detail.site === from)
            db.prepare('update audit_log set detail = ? where id = ?').run(
              JSON.stringify({ ...detail, site: to }),
              entry.id,
            )
        }
      }).immediate()
      return keys
    } finally {
      db.close()
    }
  }

  return {
    /** Pulls the oldest ready pending tenant as `name` (site `name.localhost`); returns the placeholder site. */
    pull(name, data = {}) {
      const site = `${name}.localhost`
      const row = claim.immediate(name, site, data)
      renameSync(join(sites, row.site), join(sites, site))
      fsyncDirectory(sites)
      const keys = renameInSite(join(sites, site), row.site, site)
      end.immediate(row, site, keys)
      return row.site
    },
    close: () => registry.close(),
  }
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [bench, name] = process.argv.slice(2)
  const pool = openRawPool(bench)
  try {
    const from = pool.pull(name, { plan: 'pro' })
    process.stdout.write(`${JSON.stringify({ name, site: `${name}.localhost`, pulled_from: from })}\n`)
  } finally {
    pool.close()
  }
}
