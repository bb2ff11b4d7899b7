// The raw side of the benchmarks: what tenancy's work is with plain better-sqlite3, fs and
// node:crypto and nothing else, shared by the scripts that compare against it (bench/run.mjs,
// bench/hooks.mjs, bench/pool.mjs) and by the raw programs run as whole processes
// (bench/raw/provision.mjs, bench/raw/pull.mjs). Durability is tenancy's: site databases in
// SQLite's default rollback journal with synchronous=FULL (src/databases/sqlite-driver.ts sets
// neither, so each commit fsyncs), the registry in WAL with synchronous=NORMAL
// (src/registry/registry.ts), JSON written to a temporary file, fsynced and renamed, and a
// renamed directory's parent fsynced (src/util/move-directory.ts). Hashes and encryption are
// tenancy's too (src/secrets/): passwords scrypt N=2^14 r=8 p=1 into 32 bytes with a 16-byte
// salt, API secrets a salted SHA-256, stored secrets AES-256-GCM.
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, writeFileSync } from 'node:fs'
import { createCipheriv, createHash, randomBytes, scrypt } from 'node:crypto'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'

// From the project's node_modules wherever the caller runs (a raw program in a temporary bench too).
const Database = createRequire(import.meta.url)('better-sqlite3')
export { Database }

/** Opens a site's database as tenancy does: the default journal and synchronous=FULL, foreign keys on. */
export function openSiteDb(file, options = {}) {
  const db = new Database(file, { timeout: 15_000, ...options })
  db.pragma('foreign_keys = ON')
  return db
}

/** Opens a registry as tenancy does: WAL, synchronous=NORMAL (a commit is not fsynced; a checkpoint is). */
export function openRegistryDb(file) {
  const db = new Database(file, { timeout: 15_000 })
  db.pragma('journal_mode = WAL')
  db.pragma('synchronous = NORMAL')
  db.pragma('foreign_keys = ON')
  return db
}

/** A password's hash as tenancy stores it: `scrypt$N$r$p$salt$hash`, on libuv's thread pool. */
export function scryptHash(password) {
  const salt = randomBytes(16)
  return new Promise((resolve, reject) =>
    scrypt(password, salt, 32, { N: 16_384, r: 8, p: 1, maxmem: 256 * 16_384 * 8 + 1024 * 1024 }, (error, key) =>
      error ? reject(error) : resolve(`scrypt$16384$8$1$${salt.toString('base64')}$${key.toString('base64')}`),
    ),
  )
}

/** A new API key and secret, and the secret's hash as the site stores it (`sha256$salt$hash`). */
export function newApiKeys() {
  const secret = randomBytes(24).toString('base64url')
  const salt = randomBytes(16).toString('base64')
  const hash = createHash('sha256').update(salt).update(secret).digest('base64')
  return { key: randomBytes(8).toString('hex').slice(0, 15), secret, hash: `sha256$${salt}$${hash}` }
}

/** `plaintext` sealed with AES-256-GCM under `key`, in tenancy's layout (version, nonce, tag, body). */
export function seal(key, plaintext) {
  const nonce = randomBytes(12)
  const cipher = createCipheriv('aes-256-gcm', key, nonce)
  const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()])
  return Buffer.concat([Buffer.from([1]), nonce, cipher.getAuthTag(), body]).toString('base64')
}

/** fsync of a directory, so a rename or a new entry in it is durable. */
export function fsyncDirectory(dir) {
  const fd = openSync(dir, 'r')
  try {
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
}

/** A JSON file written whole and durably: a temporary file (mode 0600), fsynced, renamed, its directory fsynced. */
export function writeJsonDurably(file, value) {
  const tmp = `${file}.${process.pid}.tmp`
  const fd = openSync(tmp, 'w', 0o600)
  try {
    writeFileSync(fd, `${JSON.stringify(value, null, 2)}\n`)
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  renameSync(tmp, file)
  fsyncDirectory(dirname(file))
}

/**
 * Every CREATE statement and every row of the database of `site` (one tenancy made), to replay
 * with plain better-sqlite3: the schema and rows of the apps it has, fixtures and hooks' rows
 * included. Values are text, numbers or null, so the snapshot also travels as JSON to a raw
 * program.
 */
export function snapshotSite(file, site) {
  const db = new Database(file, { readonly: true })
  const ddl = db
    .prepare(
      "select name, type, sql from sqlite_master where sql is not null and name not like 'sqlite_%' order by rowid",
    )
    .all()
  const tables = ddl.filter((d) => d.type === 'table').map((d) => d.name)
  const rows = tables.map((t) => ({ table: t, rows: db.prepare(`select * from "${t}"`).all() }))
  db.close()
  for (const { table, rows: list } of rows)
    for (const row of list)
      for (const value of Object.values(row))
        if (value !== null && typeof value !== 'string' && typeof value !== 'number')
          throw new Error(`snapshotSite: table ${table} holds a ${typeof value}, which JSON does not carry`)
  return { site, ddl, rows }
}

/**
 * A site made from `snapshot` in `dir` with plain better-sqlite3 and fs: its directory, its
 * `site_config.json`, its database with the same tables and rows in one transaction (`site`
 * given: the snapshot's site name in them replaced by it, as the rows of that site hold). With
 * `fair`, what the SPEC makes part of it as tenancy does it: the config written durably, the
 * Administrator's password hashed (scrypt, started first and awaited last, as tenancy does) and
 * stored, the API user's secret hashed, developer_mode set. Returns the new API keys (fair) for the
 * registry.
 */
export async function rawNewSite(dir, snapshot, { fair = false, password = 'bench-pw', dbName, site } = {}) {
  const hashing = fair ? scryptHash(password) : undefined
  mkdirSync(dir, { mode: 0o700 })
  // Fair: the developer_mode the pipeline sets, in the one write.
  const config = {
    db_type: 'sqlite',
    db_name: dbName ?? `_${randomBytes(8).toString('hex')}`,
    ...(fair && { developer_mode: 1 }),
  }
  if (fair) writeJsonDurably(join(dir, 'site_config.json'), config)
  else writeFileSync(join(dir, 'site_config.json'), JSON.stringify(config), { mode: 0o600 })
  const db = openSiteDb(join(dir, 'db.sqlite'))
  const keys = fair ? newApiKeys() : undefined
  try {
    db.exec('begin')
    for (const d of snapshot.ddl) db.exec(d.sql)
    for (const { table, rows } of snapshot.rows) {
      if (rows.length === 0) continue
      const cols = Object.keys(rows[0])
      const insert = db.prepare(
        `insert into "${table}" (${cols.map((c) => `"${c}"`).join(',')}) values (${cols.map(() => '?').join(',')})`,
      )
      for (const row of rows) {
        const values = cols.map((c) =>
          site && typeof row[c] === 'string' ? row[c].replaceAll(snapshot.site, site) : row[c],
        )
        if (keys && table === 'api_keys') {
          values[cols.indexOf('api_key')] = keys.key
          values[cols.indexOf('secret_hash')] = keys.hash
        }
        insert.run(...values)
      }
    }
    if (hashing) db.prepare("update users set password_hash = ? where name = 'Administrator'").run(await hashing)
    db.exec('commit')
  } finally {
    db.close()
  }
  return keys
}
