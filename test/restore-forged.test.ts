import { createHash } from 'node:crypto'
import { cpSync, existsSync, readFileSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { Readable, type Transform } from 'node:stream'
import { gunzipSync, gzipSync } from 'node:zlib'
import Database from 'better-sqlite3'
import { describe, expect, it } from 'vitest'
import { manifestText } from '../src/backups/manifest.js'
import { SecretBox } from '../src/secrets/secret-box.js'
import { makeBench, setConfig, tempDir, tenancy } from './helpers.js'
import { enabled, siteConfig } from './backends.js'
import { allTables, ok, siteWithData } from './restore-helpers.js'

// Sets forged by someone who can write to the backups: the files changed AND the manifest's
// sizes, hashes and checksum recomputed, so only what restore checks beyond them stands in the way.

/** Copies a set, lets `edit` change its files, then recomputes the manifest as tenancy writes it. */
function forge(set: string, edit: (dir: string, manifest: any) => void): string {
  const dir = join(tempDir(), 'forged')
  cpSync(set, dir, { recursive: true })
  const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'))
  delete manifest.checksum
  edit(dir, manifest)
  for (const f of manifest.files) {
    const bytes = readFileSync(join(dir, f.name))
    f.bytes = bytes.length
    f.sha256 = createHash('sha256').update(bytes).digest('hex')
  }
  writeFileSync(join(dir, 'manifest.json'), manifestText(manifest))
  return dir
}

/** Rewrites a SQLite set's database through `change` (run on the unpacked file). */
function editSqliteDump(dir: string, change: (db: Database.Database) => void): void {
  const file = join(tempDir(), 'db.sqlite')
  writeFileSync(file, gunzipSync(readFileSync(join(dir, 'database.sqlite.gz'))))
  const db = new Database(file)
  change(db)
  db.close()
  writeFileSync(join(dir, 'database.sqlite.gz'), gzipSync(readFileSync(file)))
}

async function refused(bench: string, args: string[], message: RegExp, env: Record<string, string> = {}) {
  const r = await tenancy(bench, args, { env })
  expect(r.exitCode, r.stderr).toBe(2)
  expect(r.stderr).toMatch(message)
  return r
}

describe('forged backup sets', () => {
  it('a database whose ledger holds more than its manifest lists, or a newer core, is refused', async () => {
    const { bench, env, set, saved } = await siteWithData('sqlite')
    const lying = forge(set, (dir, m) => {
      editSqliteDump(dir, (db) =>
        db.prepare("insert into tenancy_migrations values ('tenant_ops', '0099_drop_everything', 'x')").run(),
      )
      m.apps = m.apps.filter((a: any) => a.name !== 'tenant_ops')
    })
    await refused(
      bench,
      ['restore', 'r.localhost', lying, '--yes', '--no-backup'],
      /holds migrations of the app "tenant_ops", which its manifest does not list/,
      env,
    )
    const core = forge(set, (dir) =>
      editSqliteDump(dir, (db) =>
        db.prepare("insert into tenancy_migrations values ('core', '9999_future', 'x')").run(),
      ),
    )
    await refused(
      bench,
      ['restore', 'r.localhost', core, '--yes', '--no-backup'],
      /holds the core migration 9999_future/,
      env,
    )
    expect(await allTables(bench, 'r.localhost')).toEqual(saved)
    expect(existsSync(join(bench, 'sites', 'r.localhost', '.restore.json'))).toBe(false)
  })

  it("new-site --from-backup never takes db_* keys from a set's config, and refuses one that is no object", async () => {
    const { bench, env, set } = await siteWithData('sqlite')
    const redirect = forge(set, (dir) =>
      writeFileSync(
        join(dir, 'site_config.json'),
        JSON.stringify({ db_host: '10.9.9.9', db_socket: '/tmp/evil.sock', db_file: '../../x.sqlite', theme: 'dark' }),
      ),
    )
    await ok(bench, ['new-site', 'copy.localhost', '--from-backup', redirect], env)
    const config = siteConfig(bench, 'copy.localhost')
    expect(config.theme).toBe('dark')
    expect(
      Object.keys(config)
        .filter((k) => k.startsWith('db_'))
        .sort(),
    ).toEqual(['db_file', 'db_name', 'db_type'])
    expect(config.db_file).toBe('db.sqlite')
    for (const text of ['"hello"', '[1,2]', 'null']) {
      const bad = forge(set, (dir) => writeFileSync(join(dir, 'site_config.json'), text))
      await refused(
        bench,
        ['new-site', 'bad.localhost', '--from-backup', bad],
        /its site_config\.json is not a JSON object/,
        env,
      )
      expect(existsSync(join(bench, 'sites', 'bad.localhost'))).toBe(false)
    }
  })

  it('a set of another site needs --force, never into a pending pool site; an empty path is exit 2', async () => {
    const { bench, env, set, saved } = await siteWithData('sqlite')
    await ok(bench, ['new-site', 'other.localhost', '--install-app', 'tenant_ops'], env)
    await refused(
      bench,
      ['restore', 'other.localhost', set, '--yes'],
      /is a backup of site "r\.localhost", not of "other\.localhost".*--force/,
      env,
    )
    const forced = await ok(
      bench,
      ['restore', 'other.localhost', set, '--yes', '--force', '--no-backup', '--json'],
      env,
    )
    // The data is r's, made to follow the site's name by the apps' after_rename hooks.
    expect(forced.json).toMatchObject({ rename_from: 'r.localhost', renamed: { previous_site: 'r.localhost' } })
    // (the rows the hooks rewrote have a new updated_at).
    const stamps = (tables: unknown) => JSON.stringify(tables).replace(/\\"updated_at\\":\\"[^\\]*\\"/g, 'updated_at')
    expect(stamps(await allTables(bench, 'other.localhost'))).toEqual(
      stamps(saved).replaceAll('r.localhost', 'other.localhost'),
    )
    await ok(bench, ['pending-create', '--count', '1'], env)
    const pending = (await ok(bench, ['list-sites', '--only-pending', '--json'], env)).json.sites[0].site
    await refused(
      bench,
      ['restore', pending, set, '--yes', '--force'],
      /is a pending pool site; only its own backups/,
      env,
    )
    await refused(
      bench,
      ['restore', 'r.localhost', '', '--yes'],
      /invalid backup directory "": give the path of a set/,
      env,
    )
    await refused(bench, ['new-site', 'e.localhost', '--from-backup', ' '], /invalid backup directory " "/, env)
    // The pool still works.
    expect((await ok(bench, ['tenant', 'create', 'acme', '--json'], env)).json.mode).toBe('pulled')
  })

  it('an encrypted dump that does not open, or a plain one that is not gzip, is exit 2 before anything loads', async () => {
    const bench = makeBench()
    const key = randomKey(bench)
    setConfig(bench, (c) => (c.backups = { key_file: key }))
    await ok(bench, ['new-site', 'e.localhost', '--install-app', 'tenant_ops'], {})
    const enc = (await ok(bench, ['backup', '--site', 'e.localhost', '--encrypt', '--json'], {})).json.sites[0].path
    // The dump re-encrypted with another key, next to the config encrypted with the right one.
    const other = new SecretBox(Buffer.alloc(32, 7))
    const right = new SecretBox(Buffer.from(readFileSync(key, 'utf8'), 'base64'))
    const plain = await through(right.decryptingStream(), readFileSync(join(enc, 'database.sqlite.gz.enc')))
    const reEncrypted = await through(other.encryptingStream(), plain)
    const swapped = forge(enc, (dir) => writeFileSync(join(dir, 'database.sqlite.gz.enc'), reEncrypted))
    await refused(
      bench,
      ['restore', 'e.localhost', swapped, '--yes', '--no-backup'],
      /does not open with the key its set's config opens with/,
    )
    const plainSet = (await ok(bench, ['backup', '--site', 'e.localhost', '--json'], {})).json.sites[0].path
    const notGzip = forge(plainSet, (dir) => writeFileSync(join(dir, 'database.sqlite.gz'), 'not gzip at all'))
    await refused(
      bench,
      ['restore', 'e.localhost', notGzip, '--yes', '--no-backup'],
      /is not the gzip data a backup writes/,
    )
    const state = readFileSync(join(bench, 'sites', 'e.localhost', 'site_config.json'), 'utf8')
    expect(state).toContain('"db_file": "db.sqlite"')
  })

  it.skipIf(!enabled('mariadb'))(
    'a MariaDB dump is data: a client command in it (\\! shell) is refused, not run',
    async () => {
      const { bench, env, set, saved } = await siteWithData('mariadb')
      const marker = join(tempDir(), 'PWNED')
      const shell = forge(set, (dir) => {
        const text = gunzipSync(readFileSync(join(dir, 'database.sql.gz')))
          .toString()
          .split('\n')
          .slice(1)
          .join('\n')
        writeFileSync(join(dir, 'database.sql.gz'), gzipSync(`\\! touch ${marker}\nsystem touch ${marker}\n${text}`))
      })
      const r = await tenancy(bench, ['restore', 'r.localhost', shell, '--yes', '--no-backup'], { env })
      expect(r.exitCode, r.stderr).not.toBe(0)
      expect(r.stderr).toMatch(/the site is unchanged.*sandbox/)
      expect(existsSync(marker)).toBe(false)
      expect(await allTables(bench, 'r.localhost')).toEqual(saved)
    },
  )

  it('migrate leaves a site whose restore is under way to the restore', async () => {
    const { bench, env } = await siteWithData('sqlite')
    writeFileSync(
      join(bench, 'sites', 'r.localhost', '.restore.json'),
      JSON.stringify({ owner: `${process.pid}@${hostname()}`, from: 'x', started_at: '', old: {}, new: {} }),
    )
    const r = await tenancy(bench, ['migrate', '--json'], { env })
    expect(r.json.sites).toEqual([
      expect.objectContaining({
        site: 'r.localhost',
        status: 'skipped',
        error: expect.stringMatching(/being restored/),
      }),
    ])
  })
})

function randomKey(bench: string): string {
  const file = join(bench, 'backup.key')
  writeFileSync(file, Buffer.from(Array.from({ length: 32 }, (_, i) => (i * 37) & 255)).toString('base64'), {
    mode: 0o600,
  })
  return file
}

/** Runs `bytes` through a stream transform and gives what comes out. */
async function through(transform: Transform, bytes: Buffer): Promise<Buffer> {
  const out: Buffer[] = []
  for await (const chunk of Readable.from([bytes]).pipe(transform)) out.push(chunk as Buffer)
  return Buffer.concat(out)
}
