import { randomBytes } from 'node:crypto'
import {
  cpSync,
  existsSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
} from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { fillDisk, makeBench, query, setConfig, sleep, smallDisk, spawnTenancy, tempDir, tenancy } from './helpers.js'
import { verifyPassword } from '../src/secrets/hashing.js'
import { SITE_BACKENDS, asSite, enabled, serverHas, siteConfig } from './backends.js'
import {
  allTables,
  changeData,
  databaseExists,
  ok,
  recordedDb,
  sharedSiteWithData,
  siteWithData,
  write,
} from './restore-helpers.js'

// tenancy restore and new-site --from-backup (SPEC §7): round trips on every kind of database,
// compared table by table; a bad set refused (exit 2) with the site untouched. Kills: restore-crash.test.ts.

describe.each(SITE_BACKENDS)('restore on $name', ({ name: backend, skip }) => {
  describe.skipIf(skip)('', () => {
    // One site with data and its backup for the three tests (making them is what costs): each
    // test takes the site as the one before left it, and compares with what it saw first.
    const site = sharedSiteWithData(backend)

    it('brings every table back as the backup had it, on a fresh database, and backs the current state up first', async () => {
      const { bench, env, set, saved } = site
      const before = siteConfig(bench, 'r.localhost')
      await changeData(bench, 'r.localhost', 'LATER')
      const changed = await allTables(bench, 'r.localhost')
      expect(changed).not.toEqual(saved)

      const r = await ok(bench, ['restore', 'r.localhost', set, '--yes', '--json'], env)
      expect(r.json).toMatchObject({ site: 'r.localhost', from: set, previous_db_name: before.db_name })
      expect(r.json.migrate.status).not.toBe('failed')
      expect(await allTables(bench, 'r.localhost')).toEqual(saved)

      const after = siteConfig(bench, 'r.localhost')
      expect(after.db_name).toBe(r.json.db_name)
      expect(after.db_name).not.toBe(before.db_name)
      expect(await recordedDb(bench, 'r.localhost')).toBe(after.db_name)
      expect(await databaseExists(backend, bench, 'r.localhost', { name: before.db_name, file: before.db_file })).toBe(
        false,
      )
      if (backend !== 'sqlite') expect((await serverHas(backend, before.db_user)).user).toBe(false)
      expect(statSync(join(bench, 'sites', 'r.localhost', 'site_config.json')).mode & 0o777).toBe(0o600)
      expect(existsSync(join(bench, 'sites', 'r.localhost', '.restore.json'))).toBe(false)

      // The state before the restore is a set of its own, and restoring it brings the later rows back.
      expect(r.json.backup).toMatch(new RegExp(`^${join(bench, 'backups', 'r.localhost')}/`))
      await ok(bench, ['restore', 'r.localhost', r.json.backup, '--yes', '--no-backup', '--json'], env)
      expect(await allTables(bench, 'r.localhost')).toEqual(changed)

      const doctor = await ok(bench, ['doctor', '--json'], env)
      expect(doctor.json.findings).toEqual([])
    })

    it('drop-site, then new-site --from-backup of the archive brings the site back whole', async () => {
      const { bench, env } = site
      const whenDropped = await allTables(bench, 'r.localhost')
      const dropped = await ok(bench, ['drop-site', 'r.localhost', '--yes', '--json'], env)
      const archive: string = dropped.json.archived_to
      expect(dropped.json.backup).toBe(join(archive, 'backup'))
      const back = await ok(bench, ['new-site', 'r.localhost', '--from-backup', join(archive, 'backup'), '--json'], env)
      expect(back.json.restored_from).toBe(join(archive, 'backup'))
      expect(await allTables(bench, 'r.localhost')).toEqual(whenDropped)
      expect((await ok(bench, ['doctor', '--json'], env)).json.findings).toEqual([])
    })

    it('new-site --from-backup makes a second site holding the same data, on its own database', async () => {
      const { bench, env, set, saved } = site
      const original = await allTables(bench, 'r.localhost')
      const r = await ok(bench, ['new-site', 'copy.localhost', '--from-backup', set, '--json'], env)
      expect(r.json).toMatchObject({ site: 'copy.localhost', db_type: backend, restored_from: set })
      expect(r.json.admin_password).toBeUndefined()
      // Its first task loads the backup (it makes no core tables of its own).
      expect(r.stderr).toContain('created site copy.localhost: database and the backup')
      expect(await allTables(bench, 'copy.localhost')).toEqual(saved)
      expect(siteConfig(bench, 'copy.localhost').db_name).not.toBe(siteConfig(bench, 'r.localhost').db_name)
      const sites = await ok(bench, ['list-sites', '--json'], env)
      const copy = sites.json.sites.find((s: any) => s.site === 'copy.localhost')
      expect(copy.state).toBe('ready')
      expect(copy.apps.map((a: any) => a.name ?? a)).toEqual(expect.arrayContaining(['tenant_ops', 'shared_lib']))
      // The original is untouched by its copy.
      expect(await allTables(bench, 'r.localhost')).toEqual(original)
    })
  })
})

/** The site's files and database bytes, to prove a refused restore changed nothing. */
function siteState(bench: string, site: string): string {
  const dir = join(bench, 'sites', site)
  return readdirSync(dir)
    .sort()
    .map((name) => `${name}:${readFileSync(join(dir, name)).toString('base64')}`)
    .join('\n')
}

describe('restore refuses a set it cannot trust (exit 2, the site untouched)', () => {
  it('a flipped byte in the manifest, a truncated or altered dump, a missing file, not a set at all', async () => {
    const { bench, env, set } = await siteWithData('sqlite')
    const state = siteState(bench, 'r.localhost')
    const copy = (name: string) => {
      const dir = join(tempDir(), name)
      cpSync(set, dir, { recursive: true })
      return dir
    }
    const cases: [string, string, RegExp][] = []
    {
      const dir = copy('flipped-manifest')
      const file = join(dir, 'manifest.json')
      const bytes = readFileSync(file)
      // A digit of created_at: still valid JSON, but not what was written.
      const at = bytes.indexOf('"created_at": "') + 20
      bytes[at] = bytes[at] === 0x31 ? 0x32 : 0x31
      writeFileSync(file, bytes)
      cases.push(['flipped manifest', dir, /manifest\.json was changed after it was written/])
    }
    {
      const dir = copy('flipped-space')
      const file = join(dir, 'manifest.json')
      writeFileSync(file, readFileSync(file, 'utf8').replace('{\n  "format"', '{\n \t"format"'))
      cases.push(['whitespace in the manifest', dir, /was changed after it was written/])
    }
    {
      const dir = copy('truncated')
      const file = join(dir, 'database.sqlite.gz')
      truncateSync(file, statSync(file).size - 10)
      cases.push(['truncated dump', dir, /database\.sqlite\.gz is truncated or altered/])
    }
    {
      const dir = copy('altered')
      const file = join(dir, 'database.sqlite.gz')
      const bytes = readFileSync(file)
      const middle = Math.floor(bytes.length / 2)
      bytes[middle] = bytes[middle]! ^ 0x01
      writeFileSync(file, bytes)
      cases.push(['altered dump', dir, /database\.sqlite\.gz is altered/])
    }
    {
      const dir = copy('missing')
      rmSync(join(dir, 'site_config.json'))
      cases.push(['missing file', dir, /is incomplete: site_config\.json is missing/])
    }
    {
      const dir = copy('no-manifest')
      rmSync(join(dir, 'manifest.json'))
      cases.push(['no manifest', dir, /is not a complete backup set/])
    }
    cases.push(['no such directory', join(bench, 'nope'), /does not exist/])
    for (const [what, dir, message] of cases) {
      const r = await tenancy(bench, ['restore', 'r.localhost', dir, '--yes'], { env })
      expect(r.exitCode, what).toBe(2)
      expect(r.stderr, what).toMatch(message)
      expect(r.stderr.trim().split('\n'), what).toHaveLength(1)
      expect(siteState(bench, 'r.localhost'), what).toBe(state)
      const made = await tenancy(bench, ['new-site', 'x.localhost', '--from-backup', dir], { env })
      expect(made.exitCode, what).toBe(2)
      expect(existsSync(join(bench, 'sites', 'x.localhost')), what).toBe(false)
    }
    // Nothing was backed up for the refused restores either.
    expect(readdirSync(join(bench, 'backups', 'r.localhost'))).toHaveLength(1)
  })

  it('an encrypted set opens with its key and is refused (exit 2) with another', async () => {
    const bench = makeBench()
    const keyA = join(bench, 'key-a')
    const keyB = join(bench, 'key-b')
    writeFileSync(keyA, randomBytes(32).toString('base64'), { mode: 0o600 })
    writeFileSync(keyB, randomBytes(32).toString('base64'), { mode: 0o600 })
    setConfig(bench, (c) => (c.backups = { key_file: 'key-a' }))
    await ok(bench, ['new-site', 'e.localhost', '--install-app', 'tenant_ops'], {})
    await changeData(bench, 'e.localhost', 'SECRET')
    const saved = await allTables(bench, 'e.localhost')
    const b = await ok(bench, ['backup', '--site', 'e.localhost', '--encrypt', '--json'], {})
    const set = b.json.sites[0].path
    expect(readdirSync(set).sort()).toEqual(['database.sqlite.gz.enc', 'manifest.json', 'site_config.json.enc'])
    await changeData(bench, 'e.localhost', 'LATER')
    const state = siteState(bench, 'e.localhost')

    setConfig(bench, (c) => (c.backups = { key_file: 'key-b' }))
    const wrong = await tenancy(bench, ['restore', 'e.localhost', set, '--yes'], {})
    expect(wrong.exitCode).toBe(2)
    expect(wrong.stderr).toMatch(/was encrypted with another key .*backups\.key_file/)
    expect(siteState(bench, 'e.localhost')).toBe(state)

    setConfig(bench, (c) => (c.backups = { key_file: 'key-a' }))
    await ok(bench, ['restore', 'e.localhost', set, '--yes'], {})
    expect(await allTables(bench, 'e.localhost')).toEqual(saved)
  })

  it('a set holding a migration the bench lacks is refused unless --force; a missing site points at new-site', async () => {
    const { bench, env, set, saved } = await siteWithData('sqlite')
    const migrations = join(bench, 'apps', 'tenant_ops', 'migrations')
    const newest = readdirSync(migrations)
      .filter((f) => /^\d{4}_.*\.(sql|mjs|js)$/.test(f) && !f.includes('.down.'))
      .sort()
      .at(-1)!
    const aside = join(tempDir(), newest)
    renameSync(join(migrations, newest), aside)
    const state = siteState(bench, 'r.localhost')
    const r = await tenancy(bench, ['restore', 'r.localhost', set, '--yes'], { env })
    expect(r.exitCode).toBe(2)
    expect(r.stderr).toMatch(/holds the migration tenant_ops\/\d{4}_\w+, which this bench's apps do not have/)
    expect(siteState(bench, 'r.localhost')).toBe(state)
    await ok(bench, ['restore', 'r.localhost', set, '--yes', '--force', '--no-backup'], env)
    expect(await allTables(bench, 'r.localhost')).toEqual(saved)
    renameSync(aside, join(migrations, newest))

    const missing = await tenancy(bench, ['restore', 'gone.localhost', set, '--yes'], { env })
    expect(missing.exitCode).toBe(2)
    expect(missing.stderr).toContain(`tenancy new-site gone.localhost --from-backup ${set}`)
    const noTerminal = await tenancy(bench, ['restore', 'r.localhost', set], { env })
    expect(noTerminal.exitCode).toBe(2)
    expect(noTerminal.stderr).toMatch(/pass --yes/)
  })

  it.skipIf(!enabled('postgres'))('a set of another database type is refused (exit 2)', async () => {
    const pg = await siteWithData('postgres')
    const { bench } = await siteWithData('sqlite')
    const state = siteState(bench, 'r.localhost')
    const r = await tenancy(bench, ['restore', 'r.localhost', pg.set, '--yes'], {})
    expect(r.exitCode).toBe(2)
    expect(r.stderr).toMatch(/is a PostgreSQL backup, but site "r\.localhost" is on SQLite/)
    expect(siteState(bench, 'r.localhost')).toBe(state)
  })
})

describe('a pending pool site', () => {
  it('is backed up and restored like any other, and a pull then carries the restored data', async () => {
    const bench = makeBench()
    await ok(bench, ['pending-create', '--count', '1'], {})
    const pending = (await ok(bench, ['list-sites', '--only-pending', '--json'], {})).json.sites.find(
      (s: any) => s.pending,
    )
    expect(pending).toBeDefined()
    const site: string = pending.site
    await changeData(bench, site, 'POOL')
    const saved = await allTables(bench, site)
    const b = await ok(bench, ['backup', '--site', 'all', '--with-pending', '--json'], {})
    expect(b.json.sites.map((s: any) => [s.site, s.status])).toEqual([[site, 'backed_up']])
    await changeData(bench, site, 'LATER')
    await ok(bench, ['restore', site, b.json.sites[0].path, '--yes'], {})
    expect(await allTables(bench, site)).toEqual(saved)

    const pulled = await ok(bench, ['tenant', 'create', 'acme', '--json'], {})
    expect(pulled.json).toMatchObject({ mode: 'pulled', pulled_from: site, site: 'acme.localhost' })
    const rows = await asSite(bench, 'acme.localhost', "select id from customers where id like 'POOL-%' order by id")
    expect(rows.rows.map((r) => r.id)).toEqual(['POOL-1', 'POOL-2'])
  })

  it('is not pulled while it is being backed up: the pull provisions instead, the backup is whole', async () => {
    const bench = makeBench()
    await ok(bench, ['pending-create', '--count', '1'], {})
    const site: string = (await ok(bench, ['list-sites', '--only-pending', '--json'], {})).json.sites.find(
      (s: any) => s.pending,
    ).site
    // The backup stops 1.5 s after its dump, holding the pending tenant's lease.
    const backup = spawnTenancy(bench, ['backup', '--site', site, '--json'], {
      TENANCY_FAULT: 'pause:backup-after-dump',
    })
    const list = join(bench, 'backups', site)
    while (!existsSync(list) || readdirSync(list).length === 0) await sleep(20)
    const pulled = await ok(bench, ['tenant', 'create', 'acme', '--json'], {})
    expect(pulled.json.mode).toBe('provisioned')
    const done = await backup
    expect(done.exitCode, String(done.stderr)).toBe(0)
    const set = JSON.parse(String(done.stdout)).sites[0]
    expect(set).toMatchObject({ site, status: 'backed_up' })
    // The pending tenant is still in the pool, and the next pull takes it.
    const next = await ok(bench, ['tenant', 'create', 'beta', '--json'], {})
    expect(next.json).toMatchObject({ mode: 'pulled', pulled_from: site })
  })
})

describe('restore on a full disk', () => {
  it('a backup first that cannot be written, or a load that runs out of space, changes nothing', async (ctx) => {
    const disk = await smallDisk(() => ctx.skip())
    // The sites and backups on the small disk; the registry beside them, so it can still be written.
    const bench = makeBench()
    setConfig(bench, (c) => {
      c.sites_path = join(disk, 'sites')
      c.backups = { path: join(disk, 'backups') }
    })
    rmSync(join(bench, 'sites'), { recursive: true, force: true })
    symlinkSync(join(disk, 'sites'), join(bench, 'sites'))
    await ok(bench, ['new-site', 'd.localhost', '--install-app', 'tenant_ops'], {})
    // About 1 MB of rows that do not compress away, so the load needs real room.
    const filler = randomBytes(600_000).toString('base64')
    for (const text of ['create table filler (body text)', `insert into filler values ('${filler}')`])
      expect((await write(bench, 'd.localhost', text)).error).toBeUndefined()
    const saved = await allTables(bench, 'd.localhost')
    const set = (await ok(bench, ['backup', '--site', 'd.localhost', '--backup-path', tempDir(), '--json'], {})).json
      .sites[0].path
    await changeData(bench, 'd.localhost', 'LATER')
    const state = siteState(bench, 'd.localhost')
    fillDisk(disk)

    const first = await tenancy(bench, ['restore', 'd.localhost', set, '--yes'])
    expect(first.exitCode, first.stderr).toBe(1)
    expect(first.stderr).toMatch(
      /backing site "d\.localhost" up before restoring failed: disk full: .*nothing was changed/,
    )
    const load = await tenancy(bench, ['restore', 'd.localhost', set, '--yes', '--no-backup'])
    expect(load.exitCode, load.stderr).toBe(1)
    expect(load.stderr).toMatch(
      /restoring site "d\.localhost" from .* failed \(the site is unchanged\): disk full: cannot write the restored database/,
    )
    expect(siteState(bench, 'd.localhost')).toBe(state)
    expect(readdirSync(join(disk, 'backups', 'd.localhost')).filter((d) => !d.startsWith('.tmp-'))).toEqual([])

    rmSync(join(disk, 'filler'))
    await ok(bench, ['restore', 'd.localhost', set, '--yes', '--no-backup'], {})
    expect(await allTables(bench, 'd.localhost')).toEqual(saved)
  })
})

describe('restore of a tenant site keeps the credentials the registry hands out', () => {
  it('after generate-keys and set-admin-password, restoring an older set: the stored api_secret and admin password work', async () => {
    const bench = makeBench({ lightSites: true })
    expect((await tenancy(bench, ['tenant', 'create', 'gamma', '--no-pool'])).exitCode).toBe(0)
    const site = 'gamma.localhost'
    const backup = await tenancy(bench, ['backup', '--site', site, '--json'])
    expect(backup.exitCode, backup.stderr).toBe(0)
    const set = backup.json.sites[0].path as string
    const before = (await tenancy(bench, ['tenant', 'show', 'gamma', '--show-secrets', '--json'])).json
    // Both rotated after the backup: the registry's copies are the new ones.
    const rotated = await tenancy(bench, ['--site', site, 'generate-keys', `api@${site}`, '--json'])
    expect(rotated.exitCode, rotated.stderr).toBe(0)
    const pw = await tenancy(bench, ['set-admin-password', '--site', site], {
      env: { TENANCY_ADMIN_PASSWORD: 'After-The-Backup-1' },
    })
    expect(pw.exitCode, pw.stderr).toBe(0)
    const restored = await tenancy(bench, ['restore', site, set, '--yes', '--no-backup'])
    expect(restored.exitCode, restored.stderr).toBe(0)
    const shown = (await tenancy(bench, ['tenant', 'show', 'gamma', '--show-secrets', '--json'])).json
    expect(shown.api_key).toBe(before.api_key)
    expect(shown.api_secret).not.toBe(before.api_secret)
    expect(shown.admin_password).toBe('After-The-Backup-1')
    const valid = await tenancy(bench, ['verify-key', shown.api_key, '--site', site, '--json'], {
      input: shown.api_secret,
    })
    expect(valid.json.valid, valid.stdout + valid.stderr).toBe(true)
    const stale = await tenancy(bench, ['verify-key', before.api_key, '--site', site, '--json'], {
      input: before.api_secret,
    })
    expect(stale.json.valid).toBe(false)
    const [admin] = query<{ password_hash: string }>(
      join(
        bench,
        'sites',
        site,
        JSON.parse(readFileSync(join(bench, 'sites', site, 'site_config.json'), 'utf8')).db_file,
      ),
      "select password_hash from users where name = 'Administrator'",
    )
    expect(await verifyPassword('After-The-Backup-1', admin!.password_hash)).toBe(true)
  })

  it('a restore killed after its switch is finished by doctor --fix with the stored credentials applied', async () => {
    const bench = makeBench({ lightSites: true })
    expect((await tenancy(bench, ['tenant', 'create', 'delta', '--no-pool'])).exitCode).toBe(0)
    const site = 'delta.localhost'
    const set = (await tenancy(bench, ['backup', '--site', site, '--json'])).json.sites[0].path as string
    for (const point of ['restore-after-switch', 'restore-before-credentials']) {
      const rotated = await tenancy(bench, ['--site', site, 'generate-keys', `api@${site}`, '--json'])
      expect(rotated.exitCode, rotated.stderr).toBe(0)
      const killed = await tenancy(bench, ['restore', site, set, '--yes', '--no-backup'], {
        env: { TENANCY_FAULT: point },
      })
      expect(killed.exitCode, point).not.toBe(0)
      const fix = await tenancy(bench, ['doctor', '--fix', '--json'])
      expect(
        fix.json.findings.map((f: any) => [f.kind, f.fixed]),
        point,
      ).toEqual([['interrupted_restore', true]])
      const shown = (await tenancy(bench, ['tenant', 'show', 'delta', '--show-secrets', '--json'])).json
      const valid = await tenancy(bench, ['verify-key', shown.api_key, '--site', site, '--json'], {
        input: shown.api_secret,
      })
      expect(valid.json.valid, `${point}: ${valid.stdout}${valid.stderr}`).toBe(true)
      expect((await tenancy(bench, ['doctor', '--json'])).json.findings, point).toEqual([])
    }
  })
})

describe('restore and drop-site of one site at once', () => {
  async function siteAndSet() {
    const bench = makeBench({ lightSites: true })
    expect((await tenancy(bench, ['new-site', 'rd.localhost'])).exitCode).toBe(0)
    const backup = await tenancy(bench, ['backup', '--site', 'rd.localhost', '--json'])
    expect(backup.exitCode, backup.stderr).toBe(0)
    return { bench, set: backup.json.sites[0].path as string }
  }

  it('a drop that ran while the restore was on its way: the restore refuses (exit 2), nothing left behind', async () => {
    const { bench, set } = await siteAndSet()
    const restore = spawnTenancy(bench, ['restore', 'rd.localhost', set, '--yes', '--no-backup'], {
      TENANCY_FAULT: 'pause:restore-before-intent',
    })
    await sleep(500)
    const drop = await tenancy(bench, ['drop-site', 'rd.localhost', '--yes', '--no-backup'])
    expect(drop.exitCode, drop.stderr).toBe(0)
    const restored = await restore
    expect(restored.exitCode, String(restored.stderr)).toBe(2)
    expect(String(restored.stderr)).toMatch(/site "rd\.localhost" is (gone|in state "dropping").*nothing was restored/)
    expect(String(restored.stderr)).not.toMatch(/looks like a bug/)
    expect((await tenancy(bench, ['list-sites', '--json'])).json.sites).toEqual([])
    expect(existsSync(join(bench, 'sites', 'rd.localhost'))).toBe(false)
    expect((await tenancy(bench, ['doctor', '--json'])).json.findings).toEqual([])
  })

  it('a restore that took its intent first: the drop refuses (exit 2), the restore finishes', async () => {
    const { bench, set } = await siteAndSet()
    const restore = spawnTenancy(bench, ['restore', 'rd.localhost', set, '--yes', '--no-backup'], {
      TENANCY_FAULT: 'pause:restore-after-create',
    })
    await sleep(600)
    const drop = await tenancy(bench, ['drop-site', 'rd.localhost', '--yes', '--no-backup'])
    const restored = await restore
    expect(restored.exitCode, String(restored.stderr)).toBe(0)
    expect(drop.exitCode, drop.stderr).toBe(2)
    expect(drop.stderr).toMatch(/site "rd\.localhost" is being restored by \d+@/)
    const sites = (await tenancy(bench, ['list-sites', '--json'])).json.sites
    expect(sites.map((s: any) => [s.site ?? s.name, s.state])).toEqual([['rd.localhost', 'ready']])
    expect((await tenancy(bench, ['doctor', '--json'])).json.findings).toEqual([])
  })
})
