import { createHash } from 'node:crypto'
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { hostname } from 'node:os'
import { gunzipSync } from 'node:zlib'
import { execFileSync } from 'node:child_process'
import Database from 'better-sqlite3'
import { beforeAll, describe, expect, it } from 'vitest'
import { SecretBox } from '../src/secrets/secret-box.js'
import { benchTemplate, makeBench, spawnTenancy, tempDir, tenancy } from './helpers.js'
import { SITE_BACKENDS, siteConfig, useBackend } from './backends.js'
import { countOf, dumpText, insertPairs, newSite, siteWriter, verifiedManifest } from './backup-sets.js'

// tenancy backup and list-backups (SPEC §7): real dumps on each kind of database, read back by
// the database's own tools; sets that are whole or absent under kill -9; no password in a
// dump program's argv or environment.

const MANIFEST_KEYS = [
  'format',
  'tenancy_version',
  'site',
  'tenant',
  'db_type',
  'created_at',
  'apps',
  'files',
  'encrypted',
  'duration_ms',
  // Beyond the SPEC's fields: the manifest's own checksum, last.
  'checksum',
]

describe.each(SITE_BACKENDS)('backup on $name', ({ name: backend, skip }) => {
  describe.skipIf(skip)('', () => {
    it("writes one whole set whose dump holds the app tables' rows, with the SPEC's manifest and checksums", async () => {
      const bench = makeBench()
      const env = useBackend(bench, backend)
      await newSite(bench, 'one.localhost', env)
      await insertPairs(bench, 'one.localhost', 'MARK', 0, 3)
      const r = await tenancy(bench, ['backup', '--site', 'one.localhost', '--json'], { env })
      expect(r.exitCode, r.stderr).toBe(0)
      expect(r.json).toMatchObject({ backed_up: 1, failed: 0, interrupted: false })
      const [site] = r.json.sites
      expect(site).toMatchObject({ site: 'one.localhost', status: 'backed_up', error: null })
      expect(Object.keys(site).sort()).toEqual(['bytes', 'duration_ms', 'error', 'path', 'site', 'status'])
      expect(site.path.startsWith(join(bench, 'backups', 'one.localhost'))).toBe(true)

      const manifest = verifiedManifest(site.path)
      expect(Object.keys(manifest)).toEqual(MANIFEST_KEYS)
      expect(manifest).toMatchObject({ format: 1, site: 'one.localhost', tenant: null, db_type: backend })
      expect(manifest.encrypted).toBe(false)
      const ops = manifest.apps.find((a: any) => a.name === 'tenant_ops')
      expect(ops.migrations).toContain('0001_customers_and_contacts')
      for (const f of manifest.files) expect(statSync(join(site.path, f.name)).mode & 0o777).toBe(0o600)

      const text = dumpText(backend, site.path)
      expect(countOf(text, /MARK-CUST-\d+/g)).toBe(3)
      expect(countOf(text, /MARK-CONT-\d+/g)).toBe(3)
      const config = JSON.parse(readFileSync(join(site.path, 'site_config.json'), 'utf8'))
      expect(Object.keys(config).filter((k) => k.startsWith('db_'))).toEqual([])
      if (backend !== 'sqlite')
        expect(readFileSync(join(site.path, 'manifest.json'), 'utf8')).not.toContain(
          siteConfig(bench, 'one.localhost').db_password,
        )

      const list = await tenancy(bench, ['list-backups', '--json'], { env })
      expect(list.exitCode, list.stderr).toBe(0)
      expect(list.json.backups).toHaveLength(1)
      // The same size as backup reported: its files and its manifest.
      expect(list.json.backups[0]).toMatchObject({
        site: 'one.localhost',
        path: site.path,
        encrypted: false,
        bytes: site.bytes,
      })
      expect(list.json.backups[0].apps.map((a: any) => a.name)).toContain('tenant_ops')
    })

    it('takes a consistent snapshot while another process writes to the site', async () => {
      const bench = makeBench()
      const env = useBackend(bench, backend)
      await newSite(bench, 'busy.localhost', env)
      await insertPairs(bench, 'busy.localhost', 'SEED', 0, 20)
      let stop = false
      let written = 0
      const live = await siteWriter(bench, 'busy.localhost')
      const writer = (async () => {
        while (!stop) {
          await live.pair('LIVE', written)
          written++
        }
        await live.close()
      })()
      // Let the writer get going, then back up while it runs.
      while (written < 5) await new Promise((resolve) => setTimeout(resolve, 10))
      const r = await tenancy(bench, ['backup', '--site', 'busy.localhost', '--json'], { env })
      const before = written
      stop = true
      await writer
      expect(r.exitCode, r.stderr).toBe(0)
      const text = dumpText(backend, r.json.sites[0].path)
      const customers = countOf(text, /LIVE-CUST-\d+/g)
      // Each customer and its contact commit together: a snapshot of one point in time has both or neither.
      expect(countOf(text, /LIVE-CONT-\d+/g)).toBe(customers)
      expect(customers).toBeGreaterThanOrEqual(5)
      expect(customers).toBeLessThanOrEqual(before + 1)
      expect(countOf(text, /SEED-CUST-\d+/g)).toBe(20)
    })
  })
})

/** A directory with fake dump programs that record their argv and environment, then run the real one. */
function recordingPath(programs: string[]): { dir: string; record: string } {
  const dir = tempDir('tenancy-fake-bin-')
  const record = join(dir, 'record.jsonl')
  for (const program of programs) {
    const real = execFileSync('sh', ['-c', `command -v ${program}`])
      .toString()
      .trim()
    const script = join(dir, program)
    writeFileSync(
      script,
      `#!${process.execPath}
const { appendFileSync, statSync, readFileSync } = require('node:fs')
const file = process.env.PGPASSFILE ?? (process.argv.find((a) => a.startsWith('--defaults-extra-file=')) ?? '').split('=')[1]
const mode = file ? (statSync(file).mode & 0o777).toString(8) : null
appendFileSync(${JSON.stringify(record)}, JSON.stringify({ argv: process.argv.slice(2), env: process.env, file, mode, content: file ? readFileSync(file, 'utf8') : null }) + '\\n')
const r = require('node:child_process').spawnSync(${JSON.stringify(real)}, process.argv.slice(2), { stdio: 'inherit' })
process.exit(r.status ?? 1)
`,
    )
    chmodSync(script, 0o755)
  }
  return { dir, record }
}

describe.each(SITE_BACKENDS.filter((b) => b.name !== 'sqlite'))('dump programs on $name', ({ name: backend, skip }) => {
  describe.skipIf(skip)('', () => {
    const program = backend === 'postgres' ? 'pg_dump' : 'mariadb-dump'
    // One site for both tests (making one is what costs).
    let bench: string
    let env: Record<string, string>
    beforeAll(async () => {
      bench = makeBench({ forFile: true })
      env = useBackend(bench, backend, { forFile: true })
      await newSite(bench, 'secret.localhost', env)
    })

    it("runs as the site's own user with the password only in a 0600 file, never in argv or the environment", async () => {
      const cfg = siteConfig(bench, 'secret.localhost')
      const { dir, record } = recordingPath([program])
      const r = await tenancy(bench, ['backup', '--site', 'secret.localhost', '--json'], {
        env: { ...env, PATH: `${dir}:${process.env.PATH}`, PGPASSWORD: 'leaked-pgpassword' },
      })
      expect(r.exitCode, r.stderr).toBe(0)
      const [seen] = readFileSync(record, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l))
      expect(JSON.stringify(seen.argv)).not.toContain(cfg.db_password)
      for (const [k, v] of Object.entries(seen.env as Record<string, string>)) {
        expect(v, k).not.toContain(cfg.db_password)
        expect(v, k).not.toContain('leaked-pgpassword')
      }
      expect(seen.env.TENANCY_DB_ROOT_PASSWORD).toBeUndefined()
      expect(seen.mode).toBe('600')
      expect(seen.content).toContain(cfg.db_password)
      expect(seen.content).toContain(cfg.db_user)
      // The password file is gone once the dump is done.
      expect(existsSync(seen.file)).toBe(false)
    })

    it('names the Debian package when the dump program is missing', async () => {
      const setsDir = join(bench, 'backups', 'secret.localhost')
      const sets = existsSync(setsDir) ? readdirSync(setsDir) : []
      const listed = (await tenancy(bench, ['list-backups', '--json'])).json.backups
      const r = await tenancy(bench, ['backup', '--site', 'secret.localhost', '--json'], {
        env: { ...env, PATH: tempDir('tenancy-empty-path-') },
      })
      expect(r.exitCode).toBe(1)
      const pkg = backend === 'postgres' ? 'postgresql-client' : 'mariadb-client'
      expect(r.json.sites[0].error).toBe(
        `${program} was not found on PATH; install the Debian package ${pkg} (apt-get install -y ${pkg})`,
      )
      // No set, whole or half, beside the one the test before made.
      expect(readdirSync(setsDir)).toEqual(sets)
      expect((await tenancy(bench, ['list-backups', '--json'])).json.backups).toEqual(listed)
    })
  })
})

describe('backup over a selection, encryption, --keep, kills', () => {
  // Four SQLite sites with tenant_ops, made once and copied for each test (see benchTemplate);
  // a test that needs one site takes s1.
  const SITES = ['s1.localhost', 's2.localhost', 's3.localhost', 's4.localhost']
  const fourSites = benchTemplate((bench) => Promise.all(SITES.map((s) => newSite(bench, s, {}))))

  it('refuses with no --site (there is no default site yet), an unknown site and all with names', async () => {
    const { bench } = await fourSites()
    const none = await tenancy(bench, ['backup'])
    expect(none.exitCode).toBe(2)
    expect(none.stderr).toContain('give --site S or --site all')
    const unknown = await tenancy(bench, ['backup', '--site', 'nope.localhost'])
    expect(unknown.exitCode).toBe(2)
    expect(unknown.stderr).toContain('site "nope.localhost" does not exist')
    const mixed = await tenancy(bench, ['backup', '--site', 'all', '--site', 's1.localhost'])
    expect(mixed.exitCode).toBe(2)
    const keep = await tenancy(bench, ['backup', '--site', 's1.localhost', '--keep', '0'])
    expect(keep.exitCode).toBe(2)
    expect(keep.stderr).toContain('invalid --keep "0"')
    expect(existsSync(join(bench, 'backups'))).toBe(false)
  })

  it('--site all over several sites with one failing: stops at it, or with --skip-failing backs up the rest', async () => {
    const { bench } = await fourSites()
    // s2's database is damaged: the file is not a database.
    writeFileSync(join(bench, 'sites', 's2.localhost', 'db.sqlite'), 'not a database')
    const first = await tenancy(bench, ['backup', '--site', 'all', '--json'])
    expect(first.exitCode).toBe(1)
    expect(first.json.sites.map((s: any) => s.status)).toEqual(['backed_up', 'failed', 'skipped', 'skipped'])
    const all = await tenancy(bench, ['backup', '--site', 'all', '--skip-failing', '--concurrency', '2', '--json'])
    expect(all.exitCode).toBe(1)
    expect(all.json).toMatchObject({ backed_up: 3, failed: 1, skipped: 0, interrupted: false })
    expect(all.json.sites.map((s: any) => [s.site, s.status])).toEqual([
      ['s1.localhost', 'backed_up'],
      ['s2.localhost', 'failed'],
      ['s3.localhost', 'backed_up'],
      ['s4.localhost', 'backed_up'],
    ])
    expect(all.json.sites[1].error).toContain('s2.localhost')
    const skipping = await tenancy(bench, ['backup', '--site', 'all', '--skip-site', 's2.localhost', '--json'])
    expect(skipping.exitCode, skipping.stderr).toBe(0)
    expect(skipping.json.sites.map((s: any) => s.site)).toEqual(['s1.localhost', 's3.localhost', 's4.localhost'])
    const list = await tenancy(bench, ['list-backups', '--site', 's1.localhost', '--json'])
    expect(list.json.backups).toHaveLength(3)
    const s2 = join(bench, 'backups', 's2.localhost')
    expect(existsSync(s2) ? readdirSync(s2) : []).toEqual([])
  })

  it('--encrypt leaves no plaintext, says so in the manifest, and the bench key opens it', async () => {
    const { bench } = await fourSites()
    await insertPairs(bench, 's1.localhost', 'PLAIN', 0, 3)
    await tenancy(bench, ['set-config', 'greeting', 'hello-plaintext', '--site', 's1.localhost'])
    const r = await tenancy(bench, ['backup', '--site', 's1.localhost', '--encrypt', '--json'])
    expect(r.exitCode, r.stderr).toBe(0)
    const dir = r.json.sites[0].path
    const manifest = verifiedManifest(dir)
    expect(manifest.encrypted).toBe(true)
    expect(manifest.files.map((f: any) => f.name).sort()).toEqual(['database.sqlite.gz.enc', 'site_config.json.enc'])
    const dbFile = readFileSync(join(dir, 'database.sqlite.gz.enc'))
    // Not gzip, not SQLite, not the config in the clear.
    expect(dbFile.subarray(0, 2).equals(Buffer.from([0x1f, 0x8b]))).toBe(false)
    expect(() => gunzipSync(dbFile)).toThrow()
    expect(readFileSync(join(dir, 'site_config.json.enc')).toString('latin1')).not.toContain('hello-plaintext')
    const key = Buffer.from(readFileSync(join(bench, '.tenancy', 'secret.key'), 'utf8').trim(), 'base64')
    const decrypt = (file: string) =>
      new Promise<Buffer>((resolve, reject) => {
        const chunks: Buffer[] = []
        const d = new SecretBox(key).decryptingStream()
        d.on('data', (c: Buffer) => chunks.push(c))
        d.on('end', () => resolve(Buffer.concat(chunks)))
        d.on('error', reject)
        d.end(readFileSync(join(dir, file)))
      })
    const plain = await decrypt('database.sqlite.gz.enc')
    const restored = join(tempDir(), 'db.sqlite')
    writeFileSync(restored, gunzipSync(plain))
    const db = new Database(restored, { readonly: true })
    expect(db.prepare("select count(*) from customers where id like 'PLAIN-%'").pluck().get()).toBe(3)
    db.close()
    expect((await decrypt('site_config.json.enc')).toString()).toContain('hello-plaintext')
    const wrong = new SecretBox(Buffer.alloc(32, 7)).decryptingStream()
    await expect(
      new Promise((resolve, reject) => {
        wrong.on('data', () => {})
        wrong.on('end', resolve)
        wrong.on('error', reject)
        wrong.end(readFileSync(join(dir, 'site_config.json.enc')))
      }),
    ).rejects.toThrow(/wrong encryption key/)
    const list = await tenancy(bench, ['list-backups', '--json'])
    expect(list.json.backups[0].encrypted).toBe(true)
  })

  it('backups.encrypt with backups.key_file, backups.path and backups.keep from the config', async () => {
    const { bench } = await fourSites()
    const keyFile = join(bench, 'backup.key')
    writeFileSync(keyFile, `${Buffer.alloc(32, 3).toString('base64')}\n`, { mode: 0o600 })
    const config = JSON.parse(readFileSync(join(bench, 'tenancy.config.json'), 'utf8'))
    config.backups = { path: 'vault', encrypt: true, key_file: 'backup.key', keep: 1 }
    writeFileSync(join(bench, 'tenancy.config.json'), JSON.stringify(config))
    for (let i = 0; i < 2; i++) {
      const r = await tenancy(bench, ['backup', '--site', 's1.localhost', '--json'])
      expect(r.exitCode, r.stderr).toBe(0)
      expect(r.json.sites[0].path.startsWith(join(bench, 'vault', 's1.localhost'))).toBe(true)
    }
    const list = await tenancy(bench, ['list-backups', '--json'])
    expect(list.json.backups).toHaveLength(1)
    expect(list.json.backups[0].encrypted).toBe(true)
    config.backups = { keep: 0 }
    writeFileSync(join(bench, 'tenancy.config.json'), JSON.stringify(config))
    const bad = await tenancy(bench, ['list-backups'])
    expect(bad.exitCode).toBe(2)
    expect(bad.stderr).toContain('"backups.keep" must be a whole number from 1 to 100000')
  })

  it('--keep 2 after five backups keeps the two newest sets', async () => {
    const { bench } = await fourSites()
    const paths: string[] = []
    for (let i = 0; i < 5; i++) {
      const r = await tenancy(bench, ['backup', '--site', 's1.localhost', '--keep', '2', '--json'])
      expect(r.exitCode, r.stderr).toBe(0)
      paths.push(r.json.sites[0].path)
    }
    const list = await tenancy(bench, ['list-backups', '--site', 's1.localhost', '--json'])
    expect(list.json.backups.map((b: any) => b.path)).toEqual(paths.slice(3))
    expect(readdirSync(join(bench, 'backups', 's1.localhost')).sort()).toEqual(
      paths.slice(3).map((p) => p.split('/').pop()),
    )
  })

  it('kill -9 during backup, at fault points and at timed instants, never leaves a listed half set', async () => {
    const { bench } = await fourSites()
    // Enough data that a backup takes a while.
    const db = new Database(join(bench, 'sites', 's1.localhost', 'db.sqlite'))
    db.exec('create table filler (id integer primary key, body text)')
    const insert = db.prepare('insert into filler (body) values (?)')
    db.transaction(() => {
      for (let i = 0; i < 20_000; i++) insert.run(createHash('sha256').update(String(i)).digest('hex').repeat(8))
    })()
    db.close()
    for (const fault of ['backup-after-dump', 'backup-before-rename']) {
      const r = await tenancy(bench, ['backup', '--site', 's1.localhost'], { env: { TENANCY_FAULT: fault } })
      expect(r.exitCode).not.toBe(0)
      expect((await tenancy(bench, ['list-backups', '--json'])).json.backups).toEqual([])
    }
    for (const delay of [20, 80, 150, 250, 400]) {
      const child = spawnTenancy(bench, ['backup', '--site', 's1.localhost'])
      await new Promise((resolve) => setTimeout(resolve, delay))
      child.kill('SIGKILL')
      await child
    }
    const list = await tenancy(bench, ['list-backups', '--json'])
    for (const set of list.json.backups) verifiedManifest(set.path)
    // Whatever was killed is only ever a hidden temporary directory.
    const dirs = readdirSync(join(bench, 'backups', 's1.localhost'))
    expect(dirs.filter((d) => !d.startsWith('.tmp-')).sort()).toEqual(
      list.json.backups.map((b: any) => b.path.split('/').pop()).sort(),
    )
    // doctor names each half set whose writer is dead and --fix removes it; a live writer's stays.
    const siteDir = join(bench, 'backups', 's1.localhost')
    const abandoned = readdirSync(siteDir).filter((d) => d.startsWith('.tmp-'))
    expect(abandoned.length).toBeGreaterThan(0)
    const live = `.tmp-${process.pid}@${hostname()}-abcdef`
    mkdirSync(join(siteDir, live))
    const look = await tenancy(bench, ['doctor', '--json'])
    expect(
      look.json.findings
        .filter((f: any) => f.kind === 'abandoned_backup')
        .map((f: any) => f.subject)
        .sort(),
    ).toEqual(abandoned.map((d) => join(siteDir, d)).sort())
    const fix = await tenancy(bench, ['doctor', '--fix', '--json'])
    expect(fix.exitCode, fix.stderr).toBe(0)
    expect(readdirSync(siteDir).filter((d) => d.startsWith('.tmp-'))).toEqual([live])
    const after = await tenancy(bench, ['backup', '--site', 's1.localhost', '--json'])
    expect(after.exitCode, after.stderr).toBe(0)
    verifiedManifest(after.json.sites[0].path)
  })
})
