import { mkdirSync, rmSync, writeFileSync, existsSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { makeBench, setConfig, sleep, spawnTenancy, tenancy, FLEET_SUMMARY_KEYS } from './helpers.js'
import { SITE_BACKENDS, asSite, registryRows, siteConfig, useBackend } from './backends.js'

// tenancy execute (SPEC §8): a module imported once, its function called per site with a Kysely on
// the site's database as the site's own user, each JSON-safe return value the site's result.

const MODULE = `
let calls = 0
/** Makes a notes table holding args[site] rows (creating tables proves the user owns its database). */
export async function seed({ db, site, args }) {
  await db.schema.createTable('notes').ifNotExists()
    .addColumn('id', 'integer', (c) => c.primaryKey()).addColumn('body', 'varchar(100)').execute()
  const n = args?.[site] ?? 0
  for (let i = 0; i < n; i++) await db.insertInto('notes').values({ id: i + 1, body: site + ' ' + i }).execute()
  return n
}
export default async ({ db, site, sitePath, dbType, args }) => {
  const { n } = await db.selectFrom('notes').select(db.fn.countAll().as('n')).executeTakeFirstOrThrow()
  return { site, dbType, sitePath, notes: Number(n), args }
}
/** Who the site's connection is, as the database sees it. */
export async function whoami({ db, sql, dbType }) {
  if (dbType === 'sqlite') return null
  const query = dbType === 'postgres' ? sql\`select current_user as u\` : sql\`select current_user() as u\`
  return (await query.execute(db)).rows[0].u
}
/** Counts its calls: the module is imported once, so the count goes on from site to site. */
export const counter = () => ++calls
let previous
/** Keeps the db of the site before and tries it: closed once its call returned. */
export async function leak({ db }) {
  const before = previous
  previous = db
  if (!before) return 'first'
  try {
    await before.selectFrom('users').selectAll().execute()
    return 'still open'
  } catch {
    return 'closed'
  }
}
export async function boom({ site }) {
  if (site === 'b.localhost') throw new Error('no notes on ' + site + '\\nsecond line')
  return site
}
export const notAFunction = 42
`

function writeModule(dir: string, name = 'notes.mjs', text = MODULE): string {
  writeFileSync(join(dir, name), text)
  return name
}

async function newSites(bench: string, names: string[], env: Record<string, string> = {}): Promise<void> {
  for (const site of names) {
    const r = await tenancy(bench, ['new-site', site], { env })
    expect(r.exitCode, r.stderr).toBe(0)
  }
}

const SITES = ['a.localhost', 'b.localhost', 'c.localhost']

describe.each(SITE_BACKENDS)('execute on $name', ({ name: backend, skip }) => {
  describe.skipIf(skip)('', () => {
    it("returns each site's value over --site all, with --args, as the site's own user", async () => {
      const bench = makeBench({ exampleApps: false })
      const env = useBackend(bench, backend)
      const sites = backend === 'sqlite' ? SITES : SITES.slice(0, 2)
      await newSites(bench, sites, env)
      writeModule(bench)
      const counts = Object.fromEntries(sites.map((s, i) => [s, i + 1]))
      const seeded = await tenancy(
        bench,
        ['execute', 'notes.mjs#seed', '--site', 'all', '--args', JSON.stringify(counts), '--json'],
        { env },
      )
      expect(seeded.exitCode, seeded.stderr).toBe(0)
      expect(seeded.json.sites.map((s: any) => [s.site, s.result])).toEqual(sites.map((s) => [s, counts[s]]))
      // What the module wrote is in each site's own database.
      for (const site of sites)
        expect(Number((await asSite(bench, site, 'select count(*) as n from notes')).rows[0].n)).toBe(counts[site])

      const r = await tenancy(bench, ['execute', 'notes.mjs', '--site', 'all', '--args', '{"k":[1,"two"]}', '--json'], {
        env,
      })
      expect(r.exitCode, r.stderr).toBe(0)
      expect(Object.keys(r.json)).toEqual(FLEET_SUMMARY_KEYS)
      expect(r.json).toMatchObject({ succeeded: sites.length, failed: 0, skipped: 0, interrupted: false })
      for (const [i, site] of sites.entries()) {
        const line = r.json.sites[i]
        expect(Object.keys(line)).toEqual(['site', 'status', 'result', 'error', 'duration_ms'])
        expect(line).toMatchObject({ site, status: 'succeeded', error: null })
        expect(line.result).toEqual({
          site,
          dbType: backend,
          sitePath: join(bench, 'sites', site),
          notes: counts[site],
          args: { k: [1, 'two'] },
        })
      }

      const who = await tenancy(bench, ['execute', 'notes.mjs#whoami', '--site', 'all', '--json'], { env })
      expect(who.exitCode, who.stderr).toBe(0)
      if (backend !== 'sqlite')
        for (const [i, site] of sites.entries()) {
          const user = siteConfig(bench, site).db_user
          // MariaDB's current_user() is user@host.
          expect(who.json.sites[i].result, site).toBe(backend === 'postgres' ? user : `${user}@%`)
        }
    })
  })
})

describe('execute', () => {
  it('prints one line per site off a terminal and a summary on stderr; the module is imported once, relative to the cwd', async () => {
    const bench = makeBench({ exampleApps: false })
    await newSites(bench, SITES)
    mkdirSync(join(bench, 'scripts'))
    writeModule(join(bench, 'scripts'))
    // From a directory inside the bench: the module's path is relative to it.
    const cwd = join(bench, 'scripts')
    const r = await tenancy(cwd, ['execute', 'notes.mjs#counter', '--site', 'all'])
    expect(r.exitCode, r.stderr).toBe(0)
    expect(r.stdout).toBe('a.localhost: 1\nb.localhost: 2\nc.localhost: 3')
    expect(r.stderr).toMatch(/^3 site\(s\): 3 succeeded, 0 failed, 0 skipped in \d+ ms$/m)
    // Each call's db is closed once the call returns.
    const leak = await tenancy(cwd, ['execute', 'notes.mjs#leak', '--site', 'all', '--json'])
    expect(leak.json.sites.map((s: any) => s.result)).toEqual(['first', 'closed', 'closed'])
    // --skip-site and a list of sites.
    const some = await tenancy(cwd, ['execute', 'notes.mjs#counter', '--site', 'all', '--skip-site', 'b.localhost'])
    expect(some.stdout).toBe('a.localhost: 1\nc.localhost: 2')
    const named = await tenancy(cwd, ['execute', 'notes.mjs#counter', '--site', 'c.localhost', '--site', 'a.localhost'])
    expect(named.stdout).toBe('a.localhost: 1\nc.localhost: 2')
  })

  it('a throw fails that site: later sites are skipped, or all are tried with --skip-failing; a stack only with -v', async () => {
    const bench = makeBench({ exampleApps: false })
    await newSites(bench, SITES)
    writeModule(bench)
    const r = await tenancy(bench, ['execute', 'notes.mjs#boom', '--site', 'all'])
    expect(r.exitCode).toBe(1)
    expect(r.stdout.split('\n')).toEqual([
      'a.localhost: "a.localhost"',
      'b.localhost: failed: no notes on b.localhost second line',
      'c.localhost: skipped: an earlier site failed, so it was not started (use --skip-failing to try every site)',
    ])
    expect(r.stderr).toMatch(
      /^3 site\(s\): 1 succeeded, 1 failed, 1 skipped in \d+ ms\n {2}failed: b.localhost: no notes/m,
    )
    expect(r.stderr).not.toMatch(/^\s+at /m)

    const all = await tenancy(bench, ['execute', 'notes.mjs#boom', '--site', 'all', '--skip-failing', '--json'])
    expect(all.exitCode).toBe(1)
    expect(all.json).toMatchObject({ succeeded: 2, failed: 1, skipped: 0, interrupted: false })
    expect(all.json.sites.map((s: any) => [s.status, s.result, s.error])).toEqual([
      ['succeeded', 'a.localhost', null],
      ['failed', null, 'no notes on b.localhost\nsecond line'],
      ['succeeded', 'c.localhost', null],
    ])

    const verbose = await tenancy(bench, ['execute', 'notes.mjs#boom', '--site', 'b.localhost', '-v'])
    expect(verbose.exitCode).toBe(1)
    expect(verbose.stderr).toMatch(/Error: no notes on b.localhost[\s\S]*\n\s+at boom \(file:\/\/.*notes\.mjs/)
  })

  it('a site whose database cannot be opened is a failed site, not a crash', async () => {
    const bench = makeBench({ exampleApps: false })
    await newSites(bench, SITES)
    writeModule(bench)
    rmSync(join(bench, 'sites', 'b.localhost', 'db.sqlite'))
    const r = await tenancy(bench, ['execute', 'notes.mjs#counter', '--site', 'all', '--skip-failing', '--json'])
    expect(r.exitCode).toBe(1)
    expect(r.json.sites.map((s: any) => s.status)).toEqual(['succeeded', 'failed', 'succeeded'])
    expect(r.json.sites[1].error).toMatch(/^cannot open the site database .*b\.localhost\/db\.sqlite/)
    // The function was not called for it.
    expect(r.json.sites[2].result).toBe(2)
  })

  it('return values: JSON data as it is, undefined as null, a bigint as its digits, Date as ISO; a function, a cycle, NaN or a Map fail the site', async () => {
    const bench = makeBench({ exampleApps: false })
    await newSites(bench, ['data.localhost', 'fn.localhost', 'cycle.localhost', 'nan.localhost', 'map.localhost'])
    writeModule(
      bench,
      'values.mjs',
      `export default ({ site }) => {
  const name = site.split('.')[0]
  if (name === 'data') return { big: 12345678901234567890n, at: new Date(0), list: [1, undefined, 'x'], gone: undefined, nested: { ok: true, none: null } }
  if (name === 'fn') return { rows: [{ id: 1, format: () => 'x' }] }
  if (name === 'cycle') { const a = { b: {} }; a.b.back = a; return a }
  if (name === 'nan') return { ratio: 0 / 0 }
  return new Map([[1, 2]])
}
export const nothing = () => {}
`,
    )
    const r = await tenancy(bench, ['execute', 'values.mjs', '--site', 'all', '--skip-failing', '--json'])
    expect(r.exitCode).toBe(1)
    const bySite = Object.fromEntries(r.json.sites.map((s: any) => [s.site.split('.')[0], s]))
    expect(bySite.data).toMatchObject({ status: 'succeeded', error: null })
    expect(bySite.data.result).toEqual({
      big: '12345678901234567890',
      at: '1970-01-01T00:00:00.000Z',
      list: [1, null, 'x'],
      nested: { ok: true, none: null },
    })
    const hint = ', which JSON cannot hold; return plain data (objects, arrays, strings, numbers, booleans, null)'
    expect(bySite.fn).toMatchObject({
      status: 'failed',
      result: null,
      error: `result.rows[0].format is a function${hint}`,
    })
    expect(bySite.cycle.error).toBe(`result.b.back is a reference back to result (a cycle)${hint}`)
    expect(bySite.nan.error).toBe(`result.ratio is NaN${hint}`)
    expect(bySite.map.error).toBe(`result is a Map${hint}`)
    const nothing = await tenancy(bench, ['execute', 'values.mjs#nothing', '--site', 'data.localhost'])
    expect(nothing.exitCode, nothing.stderr).toBe(0)
    expect(nothing.stdout).toBe('data.localhost: null')
  })

  it('refuses (exit 2) a missing module, a missing export, an export that is no function and bad --args, before touching a site', async () => {
    const bench = makeBench({ exampleApps: false })
    await newSites(bench, ['a.localhost'])
    writeModule(bench)
    writeModule(bench, 'broken.mjs', 'export default (\n')
    const cases: [string[], RegExp][] = [
      [['nope.mjs'], /module "nope\.mjs" does not exist \(.*\/nope\.mjs\); give the path of an ES module/],
      [['sites'], /module "sites" is a directory, not a file \(.*\/sites\); give the path of an ES module/],
      [
        ['notes.mjs#missing'],
        /module "notes\.mjs" has no export "missing"; it exports boom, counter, default, leak, notAFunction, seed, whoami \(choose one with notes\.mjs#name\)/,
      ],
      [
        ['notes.mjs#notAFunction'],
        /export "notAFunction" of module "notes\.mjs" is a number, not a function; its functions: boom, counter, default/,
      ],
      [['notes.mjs#bad-name'], /invalid export "bad-name"/],
      [['broken.mjs'], /cannot import module "broken\.mjs": /],
      [['notes.mjs', '--args', '{oops'], /invalid --args "\{oops": not JSON/],
    ]
    for (const [args, says] of cases) {
      const r = await tenancy(bench, ['execute', ...args, '--site', 'a.localhost', '--json'])
      expect(r.exitCode, args.join(' ')).toBe(2)
      expect(r.json.error.message, args.join(' ')).toMatch(says)
      expect(r.stderr).toMatch(says)
    }
  })

  it('--site all leaves pending sites out unless --with-pending; no --site takes the default site from tenancy use', async () => {
    const bench = makeBench({ exampleApps: false })
    await newSites(bench, ['a.localhost', 'b.localhost'])
    setConfig(bench, (c) => (c.provision.apps = []))
    const pool = await tenancy(bench, ['pending-create', '--count', '1', '--json'])
    expect(pool.exitCode, pool.stderr).toBe(0)
    writeModule(bench)
    const sitesOf = (r: any) => r.json.sites.map((s: any) => s.site)
    const plain = await tenancy(bench, ['execute', 'notes.mjs#counter', '--site', 'all', '--json'])
    expect(plain.exitCode, plain.stderr).toBe(0)
    expect(sitesOf(plain)).toEqual(['a.localhost', 'b.localhost'])
    const withPending = await tenancy(bench, [
      'execute',
      'notes.mjs#counter',
      '--site',
      'all',
      '--with-pending',
      '--json',
    ])
    expect(withPending.exitCode, withPending.stderr).toBe(0)
    expect(sitesOf(withPending)).toHaveLength(3)
    const pending = sitesOf(withPending).find((s: string) => !['a.localhost', 'b.localhost'].includes(s))
    expect(withPending.json.sites.map((s: any) => s.result)).toEqual([1, 2, 3])
    expect(
      sitesOf(await tenancy(bench, ['execute', 'notes.mjs#counter', '--site', 'all', '--with-pending=0', '--json'])),
    ).toEqual(['a.localhost', 'b.localhost'])
    // The pending tenant's site ran under its lease, given back afterwards.
    expect(pending).toMatch(/\.localhost$/)
    expect(await registryRows(bench, 'select lease_owner from tenants where site = ?', pending)).toEqual([
      { lease_owner: null },
    ])

    const none = await tenancy(bench, ['execute', 'notes.mjs#counter'])
    expect(none.exitCode).toBe(2)
    expect(none.stderr).toContain('no site given and no default site')
    expect((await tenancy(bench, ['use', 'b.localhost'])).exitCode).toBe(0)
    const byDefault = await tenancy(bench, ['execute', 'notes.mjs#counter'])
    expect(byDefault.exitCode, byDefault.stderr).toBe(0)
    expect(byDefault.stdout).toBe('b.localhost: 1')
  })

  it('Ctrl-C: the site under way finishes, the rest are interrupted, exit 130 with one JSON document', async () => {
    const bench = makeBench({ exampleApps: false })
    const sites = Array.from({ length: 6 }, (_, i) => `s${i}.localhost`)
    await newSites(bench, sites)
    const marks = join(bench, 'marks')
    mkdirSync(marks)
    writeModule(
      bench,
      'slow.mjs',
      `import { writeFileSync } from 'node:fs'
export default async ({ site }) => {
  writeFileSync(${JSON.stringify(marks)} + '/' + site, '')
  await new Promise((resolve) => setTimeout(resolve, 400))
  return site
}
`,
    )
    const child = spawnTenancy(bench, ['execute', 'slow.mjs', '--site', 'all', '--json'])
    while (!existsSync(join(marks, 's0.localhost'))) await sleep(20)
    child.kill('SIGINT')
    const r = await child
    expect(r.exitCode).toBe(130)
    const json = JSON.parse(String(r.stdout))
    expect(json.interrupted).toBe(true)
    expect(json.sites[0]).toMatchObject({ site: 's0.localhost', status: 'succeeded', result: 's0.localhost' })
    const rest = json.sites.slice(1)
    expect(
      rest.every((s: any) => s.status === 'interrupted' && s.error === 'not started: execute was interrupted'),
    ).toBe(true)
    expect(rest).toHaveLength(5)
  })
})
