import { createHash } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { gunzipSync } from 'node:zlib'
import Database from 'better-sqlite3'
import { expect } from 'vitest'
import { siteConfig, type BackendName } from './backends.js'
import { tempDir, tenancy } from './helpers.js'

// Backup tests' data and sets: rows committed to a site as its own user, a set's manifest checked
// against the disk, and its dump read back by the database's own tools.

/** A site with the tenant_ops app (customers and contacts), made by the CLI. */
export async function newSite(bench: string, site: string, env: Record<string, string>): Promise<void> {
  const r = await tenancy(bench, ['new-site', site, '--install-app', 'tenant_ops'], { env })
  expect(r.exitCode, r.stderr).toBe(0)
}

/** Inserts `n` customers, each with one contact, in one transaction per pair: `${tag}-CUST-i`, `${tag}-CONT-i`. */
export async function insertPairs(bench: string, site: string, tag: string, from: number, n: number): Promise<void> {
  const writer = await siteWriter(bench, site)
  try {
    for (let i = from; i < from + n; i++) await writer.pair(tag, i)
  } finally {
    await writer.close()
  }
}

/** A connection to a site as its own user that commits a customer and its contact together. */
export async function siteWriter(bench: string, site: string) {
  const cfg = siteConfig(bench, site)
  const now = new Date().toISOString()
  const rows = (tag: string, i: number) =>
    [
      [
        `insert into customers (id, customer_name, created_at, updated_at) values (?, ?, ?, ?)`,
        [`${tag}-CUST-${i}`, `Customer ${i}`, now, now],
      ],
      [
        `insert into contacts (id, customer_id, first_name, created_at, updated_at) values (?, ?, ?, ?, ?)`,
        [`${tag}-CONT-${i}`, `${tag}-CUST-${i}`, 'Ann', now, now],
      ],
    ] as const
  if (cfg.db_type === 'sqlite') {
    const db = new Database(join(bench, 'sites', site, cfg.db_file ?? 'db.sqlite'), { timeout: 15_000 })
    const pair = db.transaction((tag: string, i: number) => {
      for (const [text, values] of rows(tag, i)) db.prepare(text).run(...values)
    })
    return {
      pair: async (tag: string, i: number) => {
        pair(tag, i)
        await new Promise((resolve) => setImmediate(resolve))
      },
      close: async () => db.close(),
    }
  }
  const login = {
    host: cfg.db_host,
    port: cfg.db_port,
    user: cfg.db_user,
    password: cfg.db_password,
    database: cfg.db_name,
  }
  if (cfg.db_type === 'postgres') {
    const { default: pg } = await import('pg')
    const client = new pg.Client(login)
    await client.connect()
    return {
      pair: async (tag: string, i: number) => {
        await client.query('begin')
        for (const [text, values] of rows(tag, i)) {
          let n = 0
          await client.query(
            text.replace(/\?/g, () => `$${++n}`),
            [...values],
          )
        }
        await client.query('commit')
      },
      close: () => client.end(),
    }
  }
  const { default: mysql } = await import('mysql2/promise')
  const conn = await mysql.createConnection(login)
  return {
    pair: async (tag: string, i: number) => {
      await conn.beginTransaction()
      for (const [text, values] of rows(tag, i)) await conn.execute(text, [...values])
      await conn.commit()
    },
    close: () => conn.end(),
  }
}

/** The text of a set's database dump as the database's own tools read it back. */
export function dumpText(backend: BackendName, setDir: string): string {
  if (backend === 'postgres') return execFileSync('pg_restore', ['-f', '-', join(setDir, 'database.pgdump')]).toString()
  if (backend === 'mariadb') return gunzipSync(readFileSync(join(setDir, 'database.sql.gz'))).toString()
  const file = join(tempDir(), 'restored.sqlite')
  writeFileSync(file, gunzipSync(readFileSync(join(setDir, 'database.sqlite.gz'))))
  const db = new Database(file, { readonly: true })
  try {
    const ids = [
      ...db.prepare('select id from customers').pluck().all(),
      ...db.prepare('select id from contacts').pluck().all(),
    ]
    return ids.join('\n')
  } finally {
    db.close()
  }
}

export const countOf = (text: string, pattern: RegExp) => new Set(text.match(pattern) ?? []).size

/** The manifest of a set, after checking every file's size and sha256 against the disk. */
export function verifiedManifest(setDir: string): any {
  const manifest = JSON.parse(readFileSync(join(setDir, 'manifest.json'), 'utf8'))
  for (const f of manifest.files) {
    const bytes = readFileSync(join(setDir, f.name))
    expect(bytes.length, f.name).toBe(f.bytes)
    expect(createHash('sha256').update(bytes).digest('hex'), f.name).toBe(f.sha256)
  }
  expect(readdirSync(setDir).sort()).toEqual(['manifest.json', ...manifest.files.map((f: any) => f.name)].sort())
  return manifest
}
