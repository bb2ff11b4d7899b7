// What the benchmark scripts share: the median, a bench with the example apps, and many sites cloned fast.
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import Database from 'better-sqlite3'

export const ROOT = fileURLToPath(new URL('..', import.meta.url))
export const lib = await import(join(ROOT, 'dist', 'index.js'))

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

/** A bench with the example apps, plus `tenant_ops_nohook`: tenant_ops without its after_install hook. */
export function newBench(prefix = 'tenancy-bench-') {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  lib.initBench(dir, { withExampleApps: true })
  const copy = join(dir, 'apps', 'tenant_ops_nohook')
  cpSync(join(dir, 'apps', 'tenant_ops'), copy, { recursive: true })
  const manifest = JSON.parse(readFileSync(join(copy, 'app.json'), 'utf8'))
  writeFileSync(join(copy, 'app.json'), JSON.stringify({ ...manifest, name: 'tenant_ops_nohook', hooks: {} }))
  return dir
}

/**
 * Turns the bench's one SQLite site `template` into `names.length` sites: its directory copied
 * under each name (and, with `rawDir`, a second copy there for the raw side to touch identical
 * files), a registry row each, and the template itself removed. Creating 1,000 sites with the
 * CLI would take minutes.
 */
export function cloneSites(bench, template, names, rawDir) {
  const sitesDir = join(bench, 'sites')
  const registryDb = new Database(join(bench, '.tenancy', 'registry.db'))
  const row = registryDb.prepare('select * from sites where name = ?').get(template)
  const insert = registryDb.prepare(
    'insert into sites (name, state, db_type, db_name, db_host, db_port, db_user, apps, tenant_id, owner, created_at, updated_at) values (?, ?, ?, ?, null, null, null, ?, null, null, ?, ?)',
  )
  registryDb.transaction(() => {
    names.forEach((name, i) => {
      cpSync(join(sitesDir, template), join(sitesDir, name), { recursive: true })
      if (rawDir) cpSync(join(sitesDir, template), join(rawDir, name), { recursive: true })
      insert.run(name, 'ready', 'sqlite', `_c${i}`, row.apps, row.created_at, row.updated_at)
    })
    registryDb.prepare('delete from sites where name = ?').run(template)
  })()
  registryDb.close()
  rmSync(join(sitesDir, template), { recursive: true, force: true })
}
