// The raw migrate loop, as a whole process: one migration applied to each of the first COUNT
// site directories under SITES_DIR, single-threaded, with plain better-sqlite3 (each site opened,
// the DDL and its ledger row in one fsynced transaction, closed), as an operator would script it.
// bench/migrate-memory.mjs measures its peak memory beside tenancy's; bench/run.mjs times it as
// a whole process beside `tenancy migrate`, with the very DDL tenancy's migration file holds.
//
//   node bench/raw/migrate.mjs SITES_DIR COUNT NAME   (NAME: the migration, a new table of that name)
//   node bench/raw/migrate.mjs SITES_DIR COUNT NAME DDL_FILE   (the migration NAME runs DDL_FILE's script)
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { openSiteDb } from './site.mjs'

const [sitesDir, count, name, ddlFile] = process.argv.slice(2)
const ddl = ddlFile ? readFileSync(ddlFile, 'utf8') : `CREATE TABLE ${name} (id VARCHAR(32) PRIMARY KEY, note TEXT);`
const migration = ddlFile ? name : `0200_${name}`
let migrated = 0
for (const site of readdirSync(sitesDir).sort().slice(0, Number(count))) {
  const db = openSiteDb(join(sitesDir, site, 'db.sqlite'), { fileMustExist: true })
  try {
    db.exec('begin immediate')
    db.exec(ddl)
    db.prepare("insert into tenancy_migrations (app, name, applied_at) values ('shared_lib', ?, ?)").run(
      migration,
      new Date().toISOString(),
    )
    db.exec('commit')
    migrated++
  } finally {
    db.close()
  }
}
process.stdout.write(`${migrated} sites migrated\n`)
