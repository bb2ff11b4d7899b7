import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { beforeAll, describe, expect, it } from 'vitest'
import { makeBench, setConfig, tenancy } from './helpers.js'
import {
  SITE_BACKENDS,
  asSite,
  registryRows,
  serverHas,
  serverQuery,
  siteConfig,
  useBackend,
  type BackendName,
} from './backends.js'
import { countOf, dumpText, insertPairs, newSite, verifiedManifest } from './backup-sets.js'

// SPEC §6 "No data is deleted that was not asked for" and the end of §7: drop-site, tenant
// delete and new-site --force back the site up first (into its archive, or backups.path with
// --no-archive) and change nothing when that backup fails; --no-backup skips it; pending-clear
// takes none.

/** The archive directory a drop makes: `archived/sites/<site>-<UTC stamp>`. */
const archiveOf = (bench: string, site: string) =>
  new RegExp(`^${join(bench, 'archived', 'sites', site).replace(/\./g, '\\.')}-\\d{8}T\\d{9}Z$`)

/** Archive directories of a site (none when archived/sites is not there). */
function archivesOf(bench: string, site: string): string[] {
  const dir = join(bench, 'archived', 'sites')
  return existsSync(dir) ? readdirSync(dir).filter((d) => d.startsWith(`${site}-`)) : []
}

/** A set holding the site's rows: a whole manifest of this site and database type, and a dump with every customer. */
function expectBackupOf(
  backend: BackendName,
  set: string,
  site: string,
  tag: string,
  n: number,
  tenant: string | null = null,
): void {
  const manifest = verifiedManifest(set)
  expect(manifest).toMatchObject({ format: 1, site, tenant, db_type: backend, encrypted: false })
  expect(countOf(dumpText(backend, set), new RegExp(`${tag}-CUST-\\d+`, 'g'))).toBe(n)
}

/** The sets of a site under backups.path (none when its directory is not there). */
function setsOf(bench: string, site: string): string[] {
  const dir = join(bench, 'backups', site)
  return existsSync(dir) ? readdirSync(dir) : []
}

/** The site as it was: directory, registry row `ready` (with its tenant), database with its rows, nothing archived. */
async function expectIntact(bench: string, site: string, rows: number, tenant?: string): Promise<void> {
  expect(existsSync(join(bench, 'sites', site, 'site_config.json'))).toBe(true)
  const [row] = await registryRows(bench, 'select state, tenant_id from sites where name = ?', site)
  expect(row?.state).toBe('ready')
  if (tenant) {
    const [owner] = await registryRows(bench, 'select id, site from tenants where name = ?', tenant)
    expect(owner).toMatchObject({ site })
    expect(row.tenant_id).toBe(owner.id)
    const steps = await registryRows(bench, 'select status from steps where tenant_id = ?', owner.id)
    expect(steps.length).toBeGreaterThan(0)
    expect(steps.every((s) => s.status === 'done')).toBe(true)
  }
  const count = await asSite(bench, site, 'select count(*) as n from customers')
  expect(count.error).toBeUndefined()
  expect(Number(count.rows[0].n)).toBe(rows)
  expect(archivesOf(bench, site)).toEqual([])
}

const failedBackup = (site: string, cause: RegExp | string, verb = 'drop') =>
  new RegExp(
    `backup of site "${site.replace(/\./g, '\\.')}" failed: ${typeof cause === 'string' ? cause : cause.source}; ` +
      `nothing was changed \\(use --no-backup to ${verb} it without one\\)`,
  )

/** Locks (or unlocks) the server logins of sites: a dump runs as the site's own user, a drop as the server's admin. */
async function allowLogin(backend: Exclude<BackendName, 'sqlite'>, users: string[], allowed: boolean): Promise<void> {
  for (const user of users) {
    const r = await serverQuery(
      backend,
      backend === 'postgres'
        ? `alter role "${user}" ${allowed ? 'login' : 'nologin'}`
        : `alter user '${user}'@'%' account ${allowed ? 'unlock' : 'lock'}`,
    )
    expect(r.error).toBeUndefined()
  }
}

describe.each(SITE_BACKENDS)('backup before a drop on $name', ({ name: backend, skip }) => {
  describe.skipIf(skip)('', () => {
    // One bench for the tests below, its sites made once (making a site is what costs): each
    // test acts on sites of its own, except that the drops and the tenant delete take `keep`
    // and `held` after the first test has proved that failed backups left them as they were.
    let bench: string
    let env: Record<string, string>
    beforeAll(async () => {
      bench = makeBench({ forFile: true })
      env = useBackend(bench, backend, { forFile: true })
      const site = async (name: string, tag: string, rows: number) => {
        await newSite(bench, `${name}.localhost`, env)
        await insertPairs(bench, `${name}.localhost`, tag, 0, rows)
      }
      const tenant = async (name: string, rows: number) => {
        const t = await tenancy(bench, ['tenant', 'create', name, '--json'], { env })
        expect(t.exitCode, t.stderr).toBe(0)
        await insertPairs(bench, `${name}.localhost`, name.toUpperCase(), 0, rows)
      }
      await Promise.all([
        site('keep', 'KEEP', 3),
        tenant('held', 2),
        site('b', 'BBB', 2),
        site('c', 'CCC', 0),
        tenant('beta', 0),
        site('r', 'OLD', 2),
      ])
    }, 180_000) // six sites, four tests' worth, in one hook

    it('a backup that fails (a full disk; on a server, a site user that cannot log in) stops drop-site, tenant delete and new-site --force with nothing changed', async () => {
      // Every file write is cut short and then fails with ENOSPC: the set's manifest cannot be written.
      const full = { ...env, TENANCY_FAULT: 'disk-full' }
      const diskFull = /disk full: cannot write the file .*manifest\.json; .*/
      for (const args of [
        ['drop-site', 'keep.localhost'],
        ['drop-site', 'keep.localhost', '--no-archive'],
        ['tenant', 'delete', 'held'],
      ]) {
        const r = await tenancy(bench, [...args, '--yes'], { env: full })
        expect(r.exitCode, args.join(' ')).toBe(1)
        const site = args[0] === 'tenant' ? 'held.localhost' : 'keep.localhost'
        expect(r.stderr.trim()).toMatch(failedBackup(site, diskFull))
        expect(r.stderr.trim().split('\n')).toHaveLength(1)
      }
      const forced = await tenancy(bench, ['new-site', 'keep.localhost', '--force', '--json'], { env: full })
      expect(forced.exitCode).toBe(1)
      expect(forced.json.error.message).toMatch(failedBackup('keep.localhost', diskFull, 'replace'))
      await expectIntact(bench, 'keep.localhost', 3)
      await expectIntact(bench, 'held.localhost', 2, 'held')
      // No half set anywhere, listed or hidden.
      expect(existsSync(join(bench, 'backups', 'keep.localhost'))).toBe(true)
      expect(setsOf(bench, 'keep.localhost')).toEqual([])
      if (backend === 'sqlite') return

      // A dump that fails on the server: the dump runs as the site's own user, who cannot log in.
      const configs = ['keep.localhost', 'held.localhost'].map((site) => siteConfig(bench, site))
      const users = configs.map((c) => c.db_user as string)
      await allowLogin(backend, users, false)
      try {
        for (const [args, site, verb] of [
          [['drop-site', 'keep.localhost'], 'keep.localhost', 'drop'],
          [['tenant', 'delete', 'held'], 'held.localhost', 'drop'],
          [['new-site', 'keep.localhost', '--force'], 'keep.localhost', 'replace'],
        ] as const) {
          const r = await tenancy(bench, [...args, '--yes'], { env })
          expect(r.exitCode, args.join(' ')).toBe(1)
          expect(r.stderr.trim()).toMatch(failedBackup(site, /.+/, verb))
          expect(r.stderr.trim().split('\n')).toHaveLength(1)
        }
        for (const c of configs) expect(await serverHas(backend, c.db_name)).toEqual({ database: true, user: true })
      } finally {
        await allowLogin(backend, users, true)
      }
      await expectIntact(bench, 'keep.localhost', 3)
      await expectIntact(bench, 'held.localhost', 2, 'held')
    })

    it('drop-site backs the site up into its archive, --no-archive into backups.path, --no-backup not at all', async () => {
      const dbName = siteConfig(bench, 'keep.localhost').db_name
      const a = await tenancy(bench, ['drop-site', 'keep.localhost', '--yes', '--json'], { env })
      expect(a.exitCode, a.stderr).toBe(0)
      expect(a.json.archived_to).toMatch(archiveOf(bench, 'keep.localhost'))
      expect(a.json.backup).toBe(join(a.json.archived_to, 'backup'))
      expect(readdirSync(a.json.archived_to).sort()).toEqual(['backup', 'site'])
      expect(existsSync(join(a.json.archived_to, 'site', 'site_config.json'))).toBe(true)
      expectBackupOf(backend, a.json.backup, 'keep.localhost', 'KEEP', 3)
      expect(a.json.database_dropped).toBe(true)
      if (backend !== 'sqlite') expect(await serverHas(backend, dbName)).toEqual({ database: false, user: false })
      // An archive's backup is not one of backups.path's sets.
      expect(setsOf(bench, 'keep.localhost')).toEqual([])

      // Text output says where the backup went.
      const b = await tenancy(bench, ['drop-site', 'b.localhost', '--yes', '--no-archive'], { env })
      expect(b.exitCode, b.stderr).toBe(0)
      const [set] = setsOf(bench, 'b.localhost')
      const setPath = join(bench, 'backups', 'b.localhost', set!)
      expect(b.stdout).toContain(`Dropped site b.localhost; backup in ${setPath}`)
      expectBackupOf(backend, setPath, 'b.localhost', 'BBB', 2)
      expect(archivesOf(bench, 'b.localhost')).toEqual([])
      expect(existsSync(join(bench, 'sites', 'b.localhost'))).toBe(false)
      const listed = await tenancy(bench, ['list-backups', '--site', 'b.localhost', '--json'])
      expect(listed.json.backups.map((x: any) => x.path)).toEqual([setPath])

      // --no-backup drops even a site the operator gave up on, whose user cannot log in (a drop runs as the admin).
      const cfg = siteConfig(bench, 'c.localhost')
      if (backend !== 'sqlite') await allowLogin(backend, [cfg.db_user], false)
      const c = await tenancy(bench, ['drop-site', 'c.localhost', '--yes', '--no-backup', '--json'], { env })
      expect(c.exitCode, c.stderr).toBe(0)
      expect(c.json).toMatchObject({ site: 'c.localhost', backup: null, database_dropped: true })
      expect(readdirSync(c.json.archived_to)).toEqual(['site'])
      expect(existsSync(join(bench, 'backups', 'c.localhost'))).toBe(false)
      if (backend !== 'sqlite') expect(await serverHas(backend, cfg.db_name)).toEqual({ database: false, user: false })
      const sites = (await tenancy(bench, ['list-sites', '--json'])).json.sites.map((s: any) => s.site)
      for (const site of ['keep.localhost', 'b.localhost', 'c.localhost']) expect(sites).not.toContain(site)
    })

    it("tenant delete backs the tenant's site up into its archive before removing anything", async () => {
      const del = await tenancy(bench, ['tenant', 'delete', 'held', '--yes', '--json'], { env })
      expect(del.exitCode, del.stderr).toBe(0)
      expect(del.json).toMatchObject({ tenant: 'held', site: 'held.localhost', site_dropped: true })
      expect(del.json.archived_to).toMatch(archiveOf(bench, 'held.localhost'))
      expect(del.json.backup).toBe(join(del.json.archived_to, 'backup'))
      expect(readdirSync(del.json.archived_to).sort()).toEqual(['backup', 'site'])
      // Taken while the tenant still existed: the manifest names it.
      expectBackupOf(backend, del.json.backup, 'held.localhost', 'HELD', 2, 'held')
      expect(await registryRows(bench, 'select name from tenants')).toEqual([{ name: 'beta' }])

      const text = await tenancy(bench, ['tenant', 'delete', 'beta', '--yes', '--no-backup'], { env })
      expect(text.exitCode, text.stderr).toBe(0)
      expect(text.stdout).toMatch(/^Deleted tenant beta; dropped site beta\.localhost \(archived to .*\)\n?$/)
      const [archive] = archivesOf(bench, 'beta.localhost')
      expect(readdirSync(join(bench, 'archived', 'sites', archive!))).toEqual(['site'])
      expect(
        await registryRows(bench, 'select name from sites where name in (?, ?)', 'held.localhost', 'beta.localhost'),
      ).toEqual([])
    })

    it('new-site --force backs the replaced site up into its archive; --no-backup replaces it without one', async () => {
      const forced = await tenancy(
        bench,
        ['new-site', 'r.localhost', '--force', '--install-app', 'tenant_ops', '--json'],
        {
          env,
        },
      )
      expect(forced.exitCode, forced.stderr).toBe(0)
      expect(forced.json.replaced_archived_to).toMatch(archiveOf(bench, 'r.localhost'))
      expect(forced.json.replaced_backup).toBe(join(forced.json.replaced_archived_to, 'backup'))
      expect(forced.stderr).toContain(
        `replaced site "r.localhost"; its old directory is in ${forced.json.replaced_archived_to}, ` +
          `with a backup in ${forced.json.replaced_backup}`,
      )
      expectBackupOf(backend, forced.json.replaced_backup, 'r.localhost', 'OLD', 2)
      // The new site starts empty.
      expect(Number((await asSite(bench, 'r.localhost', 'select count(*) as n from customers')).rows[0].n)).toBe(0)

      const bare = await tenancy(bench, ['new-site', 'r.localhost', '--force', '--no-backup', '--json'], { env })
      expect(bare.exitCode, bare.stderr).toBe(0)
      expect(bare.json.replaced_backup).toBeNull()
      expect(readdirSync(bare.json.replaced_archived_to)).toEqual(['site'])
    })
  })
})

describe('backup before a drop: what takes none, and kills', () => {
  it('a half-made site is dropped without a backup and without a refusal', async () => {
    const bench = makeBench()
    mkdirSync(join(bench, 'apps', 'broken', 'migrations'), { recursive: true })
    writeFileSync(join(bench, 'apps', 'broken', 'app.json'), JSON.stringify({ name: 'broken', version: '0.1.0' }))
    writeFileSync(join(bench, 'apps', 'broken', 'migrations', '0001_boom.sql'), 'CREATE TABLE;\n')
    const made = await tenancy(bench, ['new-site', 'half.localhost', '--install-app', 'broken', '--keep-on-failure'])
    expect(made.exitCode).toBe(1)
    const r = await tenancy(bench, ['drop-site', 'half.localhost', '--yes', '--json'])
    expect(r.exitCode, r.stderr).toBe(0)
    expect(r.json).toMatchObject({ site: 'half.localhost', backup: null })
    expect(readdirSync(r.json.archived_to)).toEqual(['site'])
    expect(existsSync(join(bench, 'backups'))).toBe(false)
  })

  it('pending-clear takes no backup', async () => {
    const bench = makeBench()
    const made = await tenancy(bench, ['pending-create', '--count', '2', '--json'])
    expect(made.exitCode, made.stderr).toBe(0)
    const cleared = await tenancy(bench, ['pending-clear', '--yes', '--json'])
    expect(cleared.exitCode, cleared.stderr).toBe(0)
    expect(cleared.json.cleared).toHaveLength(2)
    expect(readdirSync(join(bench, 'sites'))).toEqual([])
    expect(existsSync(join(bench, 'backups'))).toBe(false)
    expect(existsSync(join(bench, 'archived'))).toBe(false)
  })

  it('kill -9 during the backup leaves the site whole; doctor --fix removes the half set and its empty archive', async () => {
    const bench = makeBench()
    await newSite(bench, 'k.localhost', {})
    await insertPairs(bench, 'k.localhost', 'K', 0, 2)
    for (const fault of ['backup-after-dump', 'backup-before-rename']) {
      const r = await tenancy(bench, ['drop-site', 'k.localhost', '--yes'], { env: { TENANCY_FAULT: fault } })
      expect(r.exitCode, fault).not.toBe(0)
      const [row] = await registryRows(bench, 'select state from sites where name = ?', 'k.localhost')
      expect(row.state).toBe('ready')
      expect(Number((await asSite(bench, 'k.localhost', 'select count(*) as n from customers')).rows[0].n)).toBe(2)
    }
    const archives = archivesOf(bench, 'k.localhost')
    expect(archives).toHaveLength(2)
    const halfSets = archives.flatMap((a) =>
      readdirSync(join(bench, 'archived', 'sites', a)).map((d) => join(bench, 'archived', 'sites', a, d)),
    )
    expect(halfSets.every((p) => p.split('/').pop()!.startsWith('.tmp-'))).toBe(true)
    const look = await tenancy(bench, ['doctor', '--json'])
    expect(look.exitCode).toBe(1)
    expect(look.json.findings.map((f: any) => [f.kind, f.subject]).sort()).toEqual(
      halfSets.map((p) => ['abandoned_backup', p]).sort(),
    )
    const fix = await tenancy(bench, ['doctor', '--fix', '--json'])
    expect(fix.exitCode, fix.stderr).toBe(0)
    expect(archivesOf(bench, 'k.localhost')).toEqual([])
    const drop = await tenancy(bench, ['drop-site', 'k.localhost', '--yes', '--json'])
    expect(drop.exitCode, drop.stderr).toBe(0)
    expectBackupOf('sqlite', drop.json.backup, 'k.localhost', 'K', 2)
  })
})

describe('backup before a drop: a kill after it', () => {
  it('tenant delete and drop-site killed after their backup: doctor --fix archives the site beside that backup', async () => {
    const bench = makeBench({ lightSites: true })
    expect((await tenancy(bench, ['tenant', 'create', 'gone', '--no-pool'])).exitCode).toBe(0)
    await newSite(bench, 'd.localhost', {})
    await insertPairs(bench, 'd.localhost', 'D', 0, 2)
    for (const [site, args, fault] of [
      ['gone.localhost', ['tenant', 'delete', 'gone', '--yes'], 'delete-after-remove'],
      ['d.localhost', ['drop-site', 'd.localhost', '--yes'], 'drop-after-mark'],
    ] as const) {
      const killed = await tenancy(bench, [...args], { env: { TENANCY_FAULT: fault } })
      expect(killed.exitCode, fault).not.toBe(0)
      expect(archivesOf(bench, site), fault).toHaveLength(1)
      const fix = await tenancy(bench, ['doctor', '--fix', '--json'])
      expect(fix.exitCode, fix.stderr).toBe(0)
      expect(fix.json.findings.map((f: any) => [f.kind, f.subject, f.fixed])).toEqual([['unfinished_site', site, true]])
      // One archive: the backup taken first and the site's directory beside it.
      const archives = archivesOf(bench, site)
      expect(archives, fault).toHaveLength(1)
      const archive = join(bench, 'archived', 'sites', archives[0]!)
      expect(readdirSync(archive).sort(), fault).toEqual(['backup', 'site'])
      expect(existsSync(join(archive, 'site', 'site_config.json'))).toBe(true)
      expect(existsSync(join(bench, 'sites', site))).toBe(false)
      expect((await tenancy(bench, ['doctor', '--json'])).json.findings, fault).toEqual([])
    }
    expectBackupOf(
      'sqlite',
      join(bench, 'archived', 'sites', archivesOf(bench, 'd.localhost')[0]!, 'backup'),
      'd.localhost',
      'D',
      2,
    )
  })
})

describe('sites_path on another filesystem than the bench', () => {
  it('drop-site and tenant delete archive the site across filesystems (no EXDEV), leaving nothing behind', async () => {
    const bench = makeBench({ lightSites: true })
    const sites = mkdtempSync(join('/dev/shm', 'tenancy-sites-'))
    try {
      setConfig(bench, (c) => (c.sites_path = sites))
      expect((await tenancy(bench, ['new-site', 'x.localhost'])).exitCode).toBe(0)
      const dropped = await tenancy(bench, ['drop-site', 'x.localhost', '--yes', '--json'])
      expect(dropped.exitCode, dropped.stderr).toBe(0)
      expect(existsSync(join(dropped.json.archived_to, 'site', 'site_config.json'))).toBe(true)
      expect(existsSync(join(dropped.json.archived_to, 'backup'))).toBe(true)
      expect(existsSync(join(sites, 'x.localhost'))).toBe(false)
      expect((await tenancy(bench, ['tenant', 'create', 't2', '--no-pool'])).exitCode).toBe(0)
      const deleted = await tenancy(bench, ['tenant', 'delete', 't2', '--yes', '--json'])
      expect(deleted.exitCode, deleted.stderr).toBe(0)
      expect(existsSync(join(deleted.json.archived_to, 'site', 'site_config.json'))).toBe(true)
      expect(readdirSync(sites)).toEqual([])
      expect((await tenancy(bench, ['doctor', '--json'])).json.findings).toEqual([])
    } finally {
      rmSync(sites, { recursive: true, force: true })
    }
  })
})
