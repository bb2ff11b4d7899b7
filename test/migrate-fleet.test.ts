// migrate over a fleet large enough for worker threads (16 sites or more): sites already up
// to date are read on the main thread and never reach a thread; sites with work are migrated
// in the threads; the registry's summary of each site's apps is written only where it differs
// (and put right by the next run when a run left it behind); a failure stops sites not started.
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { describe, expect, it } from 'vitest'
import { benchTemplate, query, sleep, spawnTenancy, tenancy } from './helpers.js'
import { newSite, usingBench } from '../src/index.js'

const SITES = Array.from({ length: 20 }, (_, i) => `s${String(i).padStart(2, '0')}.localhost`)
const siteDb = (bench: string, site: string) => join(bench, 'sites', site, 'db.sqlite')
const registryDb = (bench: string) => join(bench, '.tenancy', 'registry.db')
const addMigration = (bench: string, file: string, text: string) =>
  writeFileSync(join(bench, 'apps', 'shared_lib', 'migrations', file), text)
const applied = (bench: string, site: string, name: string) =>
  query(siteDb(bench, site), 'select count(*) as n from tenancy_migrations where name = ?', name)[0].n as number
const registryApps = (bench: string, site: string) =>
  query(registryDb(bench), 'select apps, updated_at from sites where name = ?', site)[0] as {
    apps: string
    updated_at: string
  }
/** Runs `sql` on an SQLite file (a site's database, the registry), as something other than tenancy would. */
const write = (file: string, sql: string, ...params: unknown[]) => {
  const db = new Database(file)
  try {
    db.prepare(sql).run(...params)
  } finally {
    db.close()
  }
}

async function waitFor(check: () => boolean, what: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(20)
  }
}

const fleet = benchTemplate(async (bench) => {
  await usingBench({ cwd: bench, env: { ...process.env, TENANCY_ADMIN_PASSWORD: 'pw' } }, async (b) => {
    for (const site of SITES) await newSite(b, { site, installApps: ['shared_lib'] })
  })
})

describe('migrate on worker threads', () => {
  it('migrates the sites with work, reports the others up to date, and applies each migration once', async () => {
    const { bench } = await fleet()
    addMigration(bench, '0005_invoices.sql', 'CREATE TABLE invoices (id VARCHAR(32) PRIMARY KEY);\n')
    // Half the fleet first (named sites, fewer than a thread pool is worth): the rest is still behind.
    const half = SITES.filter((_, i) => i % 2 === 0)
    const first = await tenancy(bench, ['migrate', ...half.flatMap((s) => ['--site', s]), '--json'])
    expect(first.json).toMatchObject({ migrated: 10, failed: 0 })
    const r = await tenancy(bench, ['migrate', '--concurrency', '2', '--json'])
    expect(r.exitCode, r.stderr).toBe(0)
    expect(r.json).toMatchObject({ migrated: 10, up_to_date: 10, failed: 0, skipped: 0 })
    expect(r.json.sites.map((s: any) => s.site)).toEqual(SITES)
    for (const s of r.json.sites) {
      const ran = !half.includes(s.site)
      expect(s.status, s.site).toBe(ran ? 'migrated' : 'up_to_date')
      expect(s.applied).toEqual(ran ? ['shared_lib/0005_invoices'] : [])
      expect(applied(bench, s.site, '0005_invoices')).toBe(1)
    }
    // A dry run over the fleet, now up to date, lists nothing; nor does a second run change anything.
    const dry = await tenancy(bench, ['migrate', '--dry-run', '--json'])
    expect(dry.json.sites.every((s: any) => s.status === 'up_to_date')).toBe(true)
    expect((await tenancy(bench, ['migrate', '--json'])).json).toMatchObject({ migrated: 0, up_to_date: 20 })
  })

  it('a site without fixture digests yet (core migration 0002 not applied) is read and brought up to date', async () => {
    const { bench } = await fleet()
    write(siteDb(bench, 's03.localhost'), 'DROP TABLE tenancy_fixtures')
    write(
      siteDb(bench, 's03.localhost'),
      "DELETE FROM tenancy_migrations WHERE app = 'core' AND name = ?",
      '0002_fixture_digests',
    )
    const r = await tenancy(bench, ['migrate', '--concurrency', '2', '--json'])
    expect(r.exitCode, r.stderr).toBe(0)
    expect(r.json.sites.find((s: any) => s.site === 's03.localhost')).toMatchObject({
      status: 'migrated',
      applied: ['core/0002_fixture_digests'],
      fixtures_synced: ['shared_lib'],
    })
    expect(r.json).toMatchObject({ migrated: 1, up_to_date: 19 })
    expect(query(siteDb(bench, 's03.localhost'), 'select app from tenancy_fixtures')).toEqual([{ app: 'shared_lib' }])
  })

  it('a failing site without --skip-failing: sites not started by then are skipped and left as they were', async () => {
    const { bench } = await fleet()
    addMigration(bench, '0005_blocker.sql', 'CREATE TABLE blocker (id VARCHAR(32) PRIMARY KEY);\n')
    // A table in the way on one site: its migration fails there.
    write(siteDb(bench, 's04.localhost'), 'CREATE TABLE blocker (x INTEGER)')
    const stop = await tenancy(bench, ['migrate', '--concurrency', '2', '--json'])
    expect(stop.exitCode).toBe(1)
    const sites = stop.json.sites as { site: string; status: string; error: string | null }[]
    expect(sites.map((s) => s.site)).toEqual(SITES)
    expect(sites.filter((s) => s.status === 'failed').map((s) => s.site)).toEqual(['s04.localhost'])
    const skipped = sites.filter((s) => s.status === 'skipped')
    // Sites are taken in order, a few at a time: most of those after the failure never started.
    expect(skipped.length).toBeGreaterThan(5)
    for (const s of skipped) {
      expect(s.error).toMatch(/an earlier site failed/)
      expect(applied(bench, s.site, '0005_blocker'), s.site).toBe(0)
    }
    for (const s of sites.filter((s) => s.status === 'migrated')) expect(applied(bench, s.site, '0005_blocker')).toBe(1)
    const all = await tenancy(bench, ['migrate', '--concurrency', '2', '--skip-failing', '--json'])
    expect(all.json).toMatchObject({ failed: 1, skipped: 0, migrated: skipped.length })
  })
})

describe('Ctrl-C during a migrate on threads', () => {
  it('sites being migrated finish, the others (waiting in a thread too) are interrupted; exit 130', async () => {
    const { bench } = await fleet()
    const started = join(bench, 'started')
    const release = join(bench, 'release')
    // Each site's migration says it started, then waits for the test to let it finish.
    addMigration(
      bench,
      '0005_wait.mjs',
      `import { appendFileSync, existsSync } from 'node:fs'
export async function up(db, { site }) {
  appendFileSync(process.env.STARTED, site + '\\n')
  while (!existsSync(process.env.RELEASE)) await new Promise((r) => setTimeout(r, 20))
  await db.schema.createTable('waited').addColumn('id', 'integer').execute()
}
`,
    )
    const child = spawnTenancy(bench, ['migrate', '--concurrency', '2', '--json'], {
      STARTED: started,
      RELEASE: release,
    })
    await waitFor(() => existsSync(started), 'a site to start')
    child.kill('SIGINT')
    // The signal is handled at once (the main thread only waits on the threads); then the sites let go.
    await sleep(500)
    writeFileSync(release, '')
    const r = await child
    expect(r.exitCode, String(r.stderr)).toBe(130)
    const json = JSON.parse(String(r.stdout))
    expect(json.interrupted).toBe(true)
    const sites = json.sites as { site: string; status: string }[]
    expect(sites.map((s) => s.site)).toEqual(SITES)
    const ran = readFileSync(started, 'utf8').trim().split('\n')
    for (const s of sites) {
      expect(['migrated', 'interrupted'], s.site).toContain(s.status)
      // A site was migrated whole or not at all, and only a site whose migration started was.
      expect(applied(bench, s.site, '0005_wait'), s.site).toBe(s.status === 'migrated' ? 1 : 0)
      if (s.status === 'migrated') expect(ran).toContain(s.site)
    }
    // Two sites were at work (one a thread); the ones waiting in the threads never started.
    expect(sites.filter((s) => s.status === 'interrupted').length).toBeGreaterThanOrEqual(SITES.length - 2)
  })
})

describe("the registry's summary of each site's apps", () => {
  it('a new app version and changed fixtures reach every site and the registry; the next run writes nothing', async () => {
    const { bench } = await fleet()
    const manifest = join(bench, 'apps', 'shared_lib', 'app.json')
    writeFileSync(manifest, JSON.stringify({ ...JSON.parse(readFileSync(manifest, 'utf8')), version: '1.1.0' }))
    const tags = join(bench, 'apps', 'shared_lib', 'fixtures', '02_tags.json')
    const fixture = JSON.parse(readFileSync(tags, 'utf8'))
    fixture.rows[0].color = '#000000'
    writeFileSync(tags, JSON.stringify(fixture))
    const r = await tenancy(bench, ['migrate', '--concurrency', '2', '--json'])
    expect(r.exitCode, r.stderr).toBe(0)
    for (const s of r.json.sites)
      expect(s).toMatchObject({
        status: 'migrated',
        versions: ['shared_lib 1.0.0 -> 1.1.0'],
        fixtures_synced: ['shared_lib'],
      })
    const listed = await tenancy(bench, ['list-sites', '--json'])
    for (const s of listed.json.sites) expect(s.apps).toEqual([{ name: 'shared_lib', version: '1.1.0' }])
    for (const site of SITES)
      expect(query(siteDb(bench, site), "select color from tags where id = 'TAG-URGENT'")).toEqual([
        { color: '#000000' },
      ])
    // The fixture digest was recorded with the sync: nothing is due any more, and nothing is rewritten.
    const before = registryApps(bench, 's07.localhost')
    const again = await tenancy(bench, ['migrate', '--concurrency', '2', '--json'])
    expect(again.json).toMatchObject({ migrated: 0, up_to_date: 20 })
    expect(registryApps(bench, 's07.localhost')).toEqual(before)
  })

  it('a summary a run left behind (killed before writing it) is put right by the next run, not by a dry run', async () => {
    const { bench } = await fleet()
    const stale = '[{"name":"shared_lib","version":"0.9.0"}]'
    const untouched = registryApps(bench, 's12.localhost')
    for (const site of ['s02.localhost', 's15.localhost'])
      write(registryDb(bench), 'update sites set apps = ? where name = ?', stale, site)
    const dry = await tenancy(bench, ['migrate', '--dry-run', '--json'])
    expect(dry.exitCode).toBe(0)
    expect(registryApps(bench, 's02.localhost').apps).toBe(stale)
    // On threads (the whole fleet) and on this thread alone (one named site, after another is made stale).
    await tenancy(bench, ['migrate', '--concurrency', '2', '--json'])
    write(registryDb(bench), 'update sites set apps = ? where name = ?', stale, 's09.localhost')
    await tenancy(bench, ['migrate', '--site', 's09.localhost', '--json'])
    for (const site of ['s02.localhost', 's15.localhost', 's09.localhost'])
      expect(JSON.parse(registryApps(bench, site).apps), site).toEqual([{ name: 'shared_lib', version: '1.0.0' }])
    expect(registryApps(bench, 's12.localhost')).toEqual(untouched)
  })
})
