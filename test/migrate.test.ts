import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { describe, expect, it } from 'vitest'
import { makeBench, spawnTenancy, tenancy, query, setConfig } from './helpers.js'
import { newSite, usingBench } from '../src/index.js'

const siteDb = (bench: string, site: string) => join(bench, 'sites', site, 'db.sqlite')
const addMigration = (bench: string, file: string, text: string) =>
  writeFileSync(join(bench, 'apps', 'shared_lib', 'migrations', file), text)

/** Sites with shared_lib, made in-process (faster than spawning). */
async function makeSites(bench: string, names: string[]): Promise<void> {
  await usingBench({ cwd: bench, env: { ...process.env, TENANCY_ADMIN_PASSWORD: 'pw' } }, async (b) => {
    for (const site of names) await newSite(b, { site, installApps: ['shared_lib'] })
  })
}

describe('tenancy migrate', () => {
  it('applies a migration added after the sites exist, once; --dry-run changes nothing; a second run is a no-op', async () => {
    const bench = makeBench()
    await makeSites(bench, ['a.localhost', 'b.localhost'])
    addMigration(
      bench,
      '0005_invoices.sql',
      'CREATE TABLE invoices (id VARCHAR(32) PRIMARY KEY, amount DECIMAL(12,2));\nCREATE INDEX invoices_amount ON invoices (amount);\n',
    )
    const dry = await tenancy(bench, ['migrate', '--dry-run', '--json'])
    expect(dry.exitCode).toBe(0)
    expect(dry.json.sites.map((s: any) => [s.site, s.status, s.pending])).toEqual([
      ['a.localhost', 'pending', ['shared_lib/0005_invoices']],
      ['b.localhost', 'pending', ['shared_lib/0005_invoices']],
    ])
    expect(
      query(siteDb(bench, 'a.localhost'), "select count(*) as n from sqlite_master where name = 'invoices'"),
    ).toEqual([{ n: 0 }])
    const onSite = await tenancy(bench, ['list-apps', '--site', 'a.localhost', '--json'])
    expect(onSite.json.apps[0].pending_migrations).toEqual(['0005_invoices'])
    const run = await tenancy(bench, ['migrate', '--json'])
    expect(run.exitCode, run.stderr).toBe(0)
    expect(run.json).toMatchObject({ migrated: 2, failed: 0 })
    expect(run.json.sites.map((s: any) => [s.site, s.status, s.applied, s.error])).toEqual([
      ['a.localhost', 'migrated', ['shared_lib/0005_invoices'], null],
      ['b.localhost', 'migrated', ['shared_lib/0005_invoices'], null],
    ])
    expect(typeof run.json.duration_ms).toBe('number')
    for (const site of ['a.localhost', 'b.localhost']) {
      expect(
        query(siteDb(bench, site), "select count(*) as n from tenancy_migrations where name = '0005_invoices'"),
      ).toEqual([{ n: 1 }])
    }
    const again = await tenancy(bench, ['migrate', '--json'])
    expect(again.json).toMatchObject({ migrated: 0, up_to_date: 2 })
    const one = await tenancy(bench, ['migrate', '--site', 'a.localhost', '--json'])
    expect(one.json.sites.map((s: any) => s.site)).toEqual(['a.localhost'])
    expect((await tenancy(bench, ['migrate', '--site', 'nope.localhost'])).exitCode).toBe(2)
  })

  it('three sites, the middle one broken: stops without --skip-failing, tries all with it; the broken site is left as it was', async () => {
    const bench = makeBench()
    await makeSites(bench, ['a.localhost', 'b.localhost', 'c.localhost'])
    addMigration(bench, '0005_invoices.sql', 'CREATE TABLE invoices (id VARCHAR(32) PRIMARY KEY);\n')
    addMigration(bench, '0006_blocker.sql', 'CREATE TABLE blocker (id VARCHAR(32) PRIMARY KEY);\n')
    // A table in the way on b: 0006 fails there after 0005 succeeded in the same run.
    const db = new Database(siteDb(bench, 'b.localhost'))
    db.exec('CREATE TABLE blocker (x INTEGER)')
    db.close()
    const stop = await tenancy(bench, ['migrate', '--concurrency', '1', '--json'])
    expect(stop.exitCode).toBe(1)
    expect(stop.json.sites.map((s: any) => [s.site, s.status])).toEqual([
      ['a.localhost', 'migrated'],
      ['b.localhost', 'failed'],
      ['c.localhost', 'skipped'],
    ])
    expect(stop.json.sites[1]).toMatchObject({ app: 'shared_lib', migration: '0006_blocker' })
    expect(stop.json.sites[1].error).toMatch(/table blocker already exists/)
    // Nothing of the failed run is left on b: 0005 was rolled back with 0006.
    expect(
      query(siteDb(bench, 'b.localhost'), "select count(*) as n from sqlite_master where name = 'invoices'"),
    ).toEqual([{ n: 0 }])
    expect(
      query(
        siteDb(bench, 'b.localhost'),
        "select count(*) as n from tenancy_migrations where name in ('0005_invoices', '0006_blocker')",
      ),
    ).toEqual([{ n: 0 }])
    const human = await tenancy(bench, ['migrate', '--skip-failing', '--concurrency', '1'])
    expect(human.exitCode).toBe(1)
    expect(human.stdout).toMatch(/1 migrated, 1 up to date, 1 failed, 0 skipped/)
    expect(human.stdout).toMatch(/failed: b.localhost \(shared_lib\/0006_blocker\): .*table blocker already exists/)
    rmSync(siteDb(bench, 'b.localhost'))
    const gone = await tenancy(bench, ['migrate', '--skip-failing', '--json'])
    expect(gone.json.sites.find((s: any) => s.site === 'b.localhost').error).toMatch(/cannot open the site database/)
  })

  it('--with-pending: absent, true, 1, false, 0 with include_in_queries true and false', async () => {
    const bench = makeBench()
    await tenancy(bench, ['tenant', 'create', 'real'])
    await tenancy(bench, ['pending-create', '--count', '1'])
    for (const include of [false, true]) {
      setConfig(bench, (c) => (c.pending.include_in_queries = include))
      const cases: [string[], number][] = [
        [[], include ? 2 : 1],
        [['--with-pending'], 2],
        [['--with-pending=true'], 2],
        [['--with-pending=1'], 2],
        [['--with-pending=false'], 1],
        [['--with-pending=0'], 1],
      ]
      for (const [flags, count] of cases) {
        const r = await tenancy(bench, ['migrate', ...flags, '--json'])
        expect(r.json.sites, `${flags} include=${include}`).toHaveLength(count)
      }
    }
  })

  it('two concurrent migrate runs (worker threads) never apply a migration twice', async () => {
    const bench = makeBench()
    const names = Array.from({ length: 24 }, (_, i) => `s${i}.localhost`)
    await makeSites(bench, names)
    addMigration(
      bench,
      '0005_invoices.sql',
      "CREATE TABLE invoices (id VARCHAR(32) PRIMARY KEY);\nINSERT INTO invoices VALUES ('first');\n",
    )
    const runs = await Promise.all([0, 1].map(() => spawnTenancy(bench, ['migrate', '--concurrency', '2', '--json'])))
    const applied = runs.flatMap((r) => {
      expect(r.exitCode, String(r.stderr)).toBe(0)
      return JSON.parse(String(r.stdout))
        .sites.filter((s: any) => s.applied.includes('shared_lib/0005_invoices'))
        .map((s: any) => s.site)
    })
    expect(applied.sort()).toEqual([...names].sort())
    for (const site of names) {
      expect(
        query(siteDb(bench, site), "select count(*) as n from tenancy_migrations where name = '0005_invoices'"),
      ).toEqual([{ n: 1 }])
      expect(query(siteDb(bench, site), 'select count(*) as n from invoices')).toEqual([{ n: 1 }])
    }
  })
})

describe('tenancy migrate: versions and states', () => {
  it('records a new app version on the site and in the registry; a named site that is not ready is skipped', async () => {
    const bench = makeBench()
    await makeSites(bench, ['a.localhost'])
    const manifest = join(bench, 'apps', 'shared_lib', 'app.json')
    writeFileSync(manifest, JSON.stringify({ ...JSON.parse(readFileSync(manifest, 'utf8')), version: '1.1.0' }))
    const r = await tenancy(bench, ['migrate', '--json'])
    expect(r.json.sites[0]).toMatchObject({ status: 'migrated', versions: ['shared_lib 1.0.0 -> 1.1.0'] })
    const sites = await tenancy(bench, ['list-sites', '--json'])
    expect(sites.json.sites[0].apps).toEqual([{ name: 'shared_lib', version: '1.1.0' }])
    const db = new Database(join(bench, '.tenancy', 'registry.db'))
    db.prepare("update sites set state = 'failed' where name = 'a.localhost'").run()
    db.close()
    const named = await tenancy(bench, ['migrate', '--site', 'a.localhost', '--json'])
    expect(named.exitCode).toBe(0)
    expect(named.json.sites[0]).toMatchObject({
      site: 'a.localhost',
      status: 'skipped',
      error: expect.stringMatching(/state "failed"/),
    })
  })
})

describe('a migrate worker thread that ends without an error', () => {
  it('a migration calling process.exit fails the sites in flight; the run ends with one JSON document', async () => {
    const bench = makeBench()
    const names = Array.from({ length: 17 }, (_, i) => `x${i}.localhost`)
    await makeSites(bench, names)
    addMigration(bench, '0005_exits.mjs', 'export async function up() {\n  process.exit(3)\n}\n')
    const r = await tenancy(bench, ['migrate', '--concurrency', '2', '--json'])
    expect(r.exitCode, String(r.stderr)).toBe(1)
    const sites = r.json.sites as { site: string; status: string; error: string | null }[]
    expect(sites.map((s) => s.site).sort()).toEqual([...names].sort())
    expect(sites.filter((s) => s.status === 'failed').length).toBeGreaterThan(0)
    for (const s of sites.filter((s) => s.status === 'failed')) expect(s.error).toMatch(/migrate worker crashed/)
  })
})
