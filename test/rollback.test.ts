import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { makeBench, tenancy } from './helpers.js'
import { newSite, usingBench } from '../src/index.js'
import { SITE_BACKENDS, asSite, useBackend } from './backends.js'

// tenancy rollback (SPEC §8): newest applied migrations first, through down() or .down.sql;
// one transaction per site where the database allows, resumable on MariaDB.

/** An app whose three migrations make tables a, b and c; 0002's down can be made to fail half-way. */
function addRollApp(bench: string, failingDown = false): void {
  const dir = join(bench, 'apps', 'roll_app')
  mkdirSync(join(dir, 'migrations'), { recursive: true })
  writeFileSync(
    join(dir, 'app.json'),
    JSON.stringify({ name: 'roll_app', title: 'Roll', version: '1.0.0', description: 'rollback test', requires: [] }),
  )
  writeFileSync(join(dir, 'migrations', '0001_a.sql'), 'CREATE TABLE roll_a (id INTEGER PRIMARY KEY);\n')
  writeFileSync(join(dir, 'migrations', '0001_a.down.sql'), 'DROP TABLE roll_a;\n')
  writeFileSync(
    join(dir, 'migrations', '0002_b.mjs'),
    `export async function up(db) {
  await db.schema.createTable('roll_b').addColumn('id', 'integer', (c) => c.primaryKey()).execute()
  await db.schema.createTable('roll_b2').addColumn('id', 'integer', (c) => c.primaryKey()).execute()
}
export async function down(db, { sql }) {
  await db.schema.dropTable('roll_b2').execute()
  ${failingDown ? 'await sql`select * from no_such_table_here`.execute(db)' : ''}
  await db.schema.dropTable('roll_b').execute()
}
`,
  )
  writeFileSync(
    join(dir, 'migrations', '0003_c.mjs'),
    `export async function up(db) {
  await db.schema.createTable('roll_c').addColumn('id', 'integer', (c) => c.primaryKey()).execute()
}
export async function down(db) {
  await db.schema.dropTable('roll_c').execute()
}
`,
  )
}

async function applied(bench: string, site: string): Promise<string[]> {
  const r = await asSite(bench, site, "select name from tenancy_migrations where app = 'roll_app' order by name")
  expect(r.error).toBeUndefined()
  return r.rows.map((x) => x.name)
}

async function tables(bench: string, site: string): Promise<string[]> {
  const found: string[] = []
  for (const t of ['roll_a', 'roll_b', 'roll_b2', 'roll_c'])
    if (!(await asSite(bench, site, `select count(*) as n from ${t}`)).error) found.push(t)
  return found
}

describe.each(SITE_BACKENDS)('rollback on $name', ({ name: backend, skip }) => {
  describe.skipIf(skip)('', () => {
    it('one step, several, to a named migration, of one app; --dry-run; --site all', async () => {
      const bench = makeBench()
      const env = useBackend(bench, backend)
      addRollApp(bench)
      // Two independent sites: made at once.
      const made = await Promise.all(
        ['x.localhost', 'y.localhost'].map((site) =>
          tenancy(bench, ['new-site', site, '--install-app', 'roll_app', '--install-app', 'shared_lib'], { env }),
        ),
      )
      for (const r of made) expect(r.exitCode, r.stderr).toBe(0)
      const dry = await tenancy(
        bench,
        ['rollback', '--site', 'all', '--app', 'roll_app', '--step', '2', '--dry-run', '--json'],
        { env },
      )
      expect(dry.exitCode, dry.stderr).toBe(0)
      expect(dry.json.sites.map((s: any) => [s.site, s.status, s.reverted])).toEqual([
        ['x.localhost', 'planned', ['roll_app/0003_c', 'roll_app/0002_b']],
        ['y.localhost', 'planned', ['roll_app/0003_c', 'roll_app/0002_b']],
      ])
      expect(await applied(bench, 'x.localhost')).toEqual(['0001_a', '0002_b', '0003_c'])

      const one = await tenancy(bench, ['rollback', '--site', 'x.localhost', '--app', 'roll_app', '--json'], { env })
      expect(one.json).toMatchObject({ rolled_back: 1, failed: 0, interrupted: false })
      expect(one.json.sites[0].reverted).toEqual(['roll_app/0003_c'])
      expect(await tables(bench, 'x.localhost')).toEqual(['roll_a', 'roll_b', 'roll_b2'])

      const to = await tenancy(
        bench,
        ['rollback', '--site', 'all', '--to', 'roll_app/0001_a', '--app', 'roll_app', '--json'],
        { env },
      )
      expect(to.exitCode, to.stderr).toBe(0)
      expect(to.json.sites.map((s: any) => s.reverted)).toEqual([
        ['roll_app/0002_b'],
        ['roll_app/0003_c', 'roll_app/0002_b'],
      ])
      for (const site of ['x.localhost', 'y.localhost']) {
        expect(await applied(bench, site)).toEqual(['0001_a'])
        expect(await tables(bench, site)).toEqual(['roll_a'])
      }
      // shared_lib was untouched by --app roll_app.
      const lib = await asSite(
        bench,
        'x.localhost',
        "select count(*) as n from tenancy_migrations where app = 'shared_lib'",
      )
      expect(Number(lib.rows[0].n)).toBe(4)
      // Several steps over every app, then migrate brings everything back.
      const many = await tenancy(bench, ['rollback', '--site', 'x.localhost', '--step', '3', '--json'], { env })
      expect(many.json.sites[0].reverted).toHaveLength(3)
      const again = await tenancy(bench, ['migrate', '--json'], { env })
      expect(again.exitCode, again.stderr).toBe(0)
      for (const site of ['x.localhost', 'y.localhost'])
        expect(await applied(bench, site)).toEqual(['0001_a', '0002_b', '0003_c'])
      const none = await tenancy(
        bench,
        ['rollback', '--site', 'x.localhost', '--app', 'roll_app', '--to', 'roll_app/0003_c', '--json'],
        {
          env,
        },
      )
      expect(none.json.sites[0].status).toBe('nothing_to_roll_back')
      // A site without the app is already where --to points: nothing to roll back, not a failure.
      const without = await tenancy(bench, ['new-site', 'z.localhost', '--install-app', 'shared_lib'], { env })
      expect(without.exitCode, without.stderr).toBe(0)
      const fleet = await tenancy(
        bench,
        ['rollback', '--site', 'all', '--app', 'roll_app', '--to', 'roll_app/0001_a', '--json'],
        { env },
      )
      expect(fleet.exitCode, fleet.stderr).toBe(0)
      expect(fleet.json.sites.map((s: any) => [s.site, s.status])).toEqual([
        ['x.localhost', 'rolled_back'],
        ['y.localhost', 'rolled_back'],
        ['z.localhost', 'nothing_to_roll_back'],
      ])
    })

    it('a down that fails half-way: the site as it was (transactional DDL), or resumable (MariaDB)', async () => {
      const bench = makeBench()
      const env = useBackend(bench, backend)
      addRollApp(bench, true)
      expect((await tenancy(bench, ['new-site', 'f.localhost', '--install-app', 'roll_app'], { env })).exitCode).toBe(0)
      const r = await tenancy(bench, ['rollback', '--site', 'f.localhost', '--step', '2', '--json'], { env })
      expect(r.exitCode).toBe(1)
      expect(r.json.sites[0]).toMatchObject({ status: 'failed' })
      expect(r.json.sites[0].error).toMatch(/roll_app\/0002_b \(down\) failed/)
      if (backend !== 'mariadb') {
        expect(await applied(bench, 'f.localhost')).toEqual(['0001_a', '0002_b', '0003_c'])
        expect(await tables(bench, 'f.localhost')).toEqual(['roll_a', 'roll_b', 'roll_b2', 'roll_c'])
      } else {
        // 0003 stays reverted; 0002's down stopped after dropping roll_b2, and resumes there.
        expect(await applied(bench, 'f.localhost')).toEqual(['0001_a', '0002_b'])
        expect(await tables(bench, 'f.localhost')).toEqual(['roll_a', 'roll_b'])
      }
      addRollApp(bench, false)
      const rest = backend === 'mariadb' ? '1' : '2'
      const fixed = await tenancy(bench, ['rollback', '--site', 'f.localhost', '--step', rest, '--json'], { env })
      expect(fixed.exitCode, fixed.stderr).toBe(0)
      expect(await applied(bench, 'f.localhost')).toEqual(['0001_a'])
      expect(await tables(bench, 'f.localhost')).toEqual(['roll_a'])
    })
  })
})

describe('rollback refusals', () => {
  it('a migration without a down fails that site, changing nothing; bad targets are exit 2', async () => {
    const bench = makeBench()
    addRollApp(bench)
    writeFileSync(
      join(bench, 'apps', 'roll_app', 'migrations', '0004_nodown.sql'),
      'CREATE TABLE roll_d (id INTEGER);\n',
    )
    const made = await Promise.all(
      ['n.localhost', 'm.localhost'].map((site) => tenancy(bench, ['new-site', site, '--install-app', 'roll_app'])),
    )
    for (const r of made) expect(r.exitCode, r.stderr).toBe(0)
    const r = await tenancy(bench, ['rollback', '--site', 'all', '--step', '2', '--json'])
    expect(r.exitCode).toBe(1)
    expect(r.json.sites.map((s: any) => s.status)).toEqual(['failed', 'skipped'])
    expect(r.json.sites[1].site).toBe('n.localhost')
    expect(r.json.sites[0].error).toMatch(
      /nothing was changed: roll_app\/0004_nodown has no 0004_nodown\.down\.sql beside it/,
    )
    expect(await applied(bench, 'm.localhost')).toEqual(['0001_a', '0002_b', '0003_c', '0004_nodown'])
    const skipping = await tenancy(bench, [
      'rollback',
      '--site',
      'all',
      '--skip-failing',
      '--skip-site',
      'n.localhost',
      '--json',
    ])
    expect(skipping.json.sites.map((s: any) => s.site)).toEqual(['m.localhost'])
    for (const [args, message] of [
      [['--step', '1', '--to', 'roll_app/0001_a'], /give --step N or --to APP\/MIGRATION, not both/],
      [['--to', 'roll_app'], /invalid --to "roll_app": give APP\/MIGRATION/],
      [['--to', 'roll_app/0009_x'], /has no migration "0009_x"/],
      [['--app', 'nope'], /app "nope" is not in this bench/],
      [['--step', '0'], /--step/],
      [['--step', ''], /--step/],
    ] as const) {
      const bad = await tenancy(bench, ['rollback', '--site', 'm.localhost', ...args])
      expect(bad.exitCode, String(args)).toBe(2)
      expect(bad.stderr).toMatch(message)
    }
    const noSite = await tenancy(bench, ['rollback'])
    expect(noSite.exitCode).toBe(2)
    expect(noSite.stderr).toMatch(/no site given and no default site/)
  })
})

describe('rollback on worker threads (16 SQLite sites or more)', () => {
  it('reverts every site, --dry-run too; a down ending its thread fails the sites in flight, one JSON document', async () => {
    const bench = makeBench()
    addRollApp(bench)
    const names = Array.from({ length: 17 }, (_, i) => `t${String(i).padStart(2, '0')}.localhost`)
    await usingBench({ cwd: bench, env: { ...process.env, TENANCY_ADMIN_PASSWORD: 'pw' } }, async (b) => {
      for (const site of names) await newSite(b, { site, installApps: ['roll_app'] })
    })
    const threads = ['rollback', '--site', 'all', '--concurrency', '2', '--json']
    const dry = await tenancy(bench, [...threads, '--dry-run'])
    expect(dry.exitCode, dry.stderr).toBe(0)
    expect(dry.json.sites.map((s: any) => [s.site, s.status, s.reverted])).toEqual(
      names.map((n) => [n, 'planned', ['roll_app/0003_c']]),
    )
    expect(await applied(bench, names[16]!)).toEqual(['0001_a', '0002_b', '0003_c'])
    const r = await tenancy(bench, threads)
    expect(r.exitCode, r.stderr).toBe(0)
    expect(r.json.sites.map((s: any) => [s.site, s.status, s.reverted])).toEqual(
      names.map((n) => [n, 'rolled_back', ['roll_app/0003_c']]),
    )
    for (const site of [names[0]!, names[16]!])
      expect(await tables(bench, site)).toEqual(['roll_a', 'roll_b', 'roll_b2'])

    // process.exit in a down ends the worker thread running it (not tenancy).
    writeFileSync(
      join(bench, 'apps', 'roll_app', 'migrations', '0003_c.mjs'),
      'export async function up() {}\nexport async function down() {\n  process.exit(3)\n}\n',
    )
    expect((await tenancy(bench, ['migrate', '--json'])).exitCode).toBe(0)
    const crash = await tenancy(bench, threads)
    expect(crash.exitCode).toBe(1)
    expect(crash.json.sites.map((s: any) => s.site)).toEqual(names)
    const failed = crash.json.sites.filter((s: any) => s.status === 'failed')
    expect(failed.length).toBeGreaterThan(0)
    for (const s of failed) expect(s.error).toMatch(/rollback worker crashed: it exited with code 3/)
    expect(crash.json.sites.filter((s: any) => s.status !== 'failed').every((s: any) => s.status === 'skipped')).toBe(
      true,
    )
    // With --skip-failing every site is tried: once no thread is left, each fails the same way.
    const every = await tenancy(bench, [...threads, '--skip-failing'])
    expect(every.json.failed).toBe(17)
    for (const s of every.json.sites) expect(s.error).toMatch(/rollback worker crashed/)
    // The crashed transactions changed nothing.
    for (const site of [failed[0].site, names[16]!])
      expect(await applied(bench, site)).toEqual(['0001_a', '0002_b', '0003_c'])
  })
})
