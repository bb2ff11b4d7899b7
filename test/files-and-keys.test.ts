// Issue 11, "no silent data loss": files written whole or not at all (a full disk included),
// modes kept, one key per registry, numeric flags that never default to "everything", and
// storage failures named instead of reported as bugs.
import { chmodSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { initBench } from '../src/sites/init.js'
import { fillDisk, makeBench, query, setConfig, smallDisk, tempDir, tenancy } from './helpers.js'

const BIG = 'x'.repeat(100_000)
const configOf = (bench: string) => join(bench, 'tenancy.config.json')
const siteConfigOf = (bench: string, site: string) => join(bench, 'sites', site, 'site_config.json')
const modeOf = (file: string) => statSync(file).mode & 0o777

/** The one line an error prints: no stack, no "this looks like a bug". */
function oneLine(stderr: string): string {
  const lines = stderr.trim().split('\n')
  expect(lines, stderr).toHaveLength(1)
  expect(stderr).not.toMatch(/looks like a bug|\n\s+at /)
  return lines[0]!
}

/** Temporary files a failed write must not leave behind. */
const leftovers = (dir: string) => readdirSync(dir).filter((f) => f.endsWith('.tmp'))

// ---- real small filesystems: smallDisk and fillDisk in helpers.ts ------------------------

describe('a full disk never leaves a half-written file', () => {
  it('a short write is finished, not taken for the whole file (TENANCY_FAULT=short-write)', async () => {
    const bench = makeBench({ exampleApps: false })
    expect((await tenancy(bench, ['new-site', 'a.localhost'])).exitCode).toBe(0)
    const global = await tenancy(bench, ['set-config', '-g', 'bigval', BIG], { env: { TENANCY_FAULT: 'short-write' } })
    expect(global.exitCode, global.stderr).toBe(0)
    expect(JSON.parse(readFileSync(configOf(bench), 'utf8')).bigval).toBe(BIG)
    const site = await tenancy(bench, ['set-config', '--site', 'a.localhost', 'bigval', BIG], {
      env: { TENANCY_FAULT: 'short-write' },
    })
    expect(site.exitCode, site.stderr).toBe(0)
    expect(JSON.parse(readFileSync(siteConfigOf(bench, 'a.localhost'), 'utf8')).bigval).toBe(BIG)
  })

  it('a write cut short by ENOSPC keeps the old file and exits 1 naming it (TENANCY_FAULT=disk-full)', async () => {
    const bench = makeBench({ exampleApps: false })
    expect((await tenancy(bench, ['new-site', 'a.localhost'])).exitCode).toBe(0)
    for (const [file, args] of [
      [configOf(bench), ['set-config', '-g', 'bigval', BIG]],
      [siteConfigOf(bench, 'a.localhost'), ['set-config', '--site', 'a.localhost', 'bigval', BIG]],
    ] as const) {
      const before = readFileSync(file, 'utf8')
      const mode = modeOf(file)
      const r = await tenancy(bench, [...args], { env: { TENANCY_FAULT: 'disk-full' } })
      expect(r.exitCode, r.stderr).toBe(1)
      expect(r.stdout).not.toMatch(/Set bigval/)
      expect(oneLine(r.stderr)).toBe(
        `error: disk full: cannot write the file ${file}; free some space on its filesystem and run the command again`,
      )
      expect(readFileSync(file, 'utf8')).toBe(before)
      expect(modeOf(file)).toBe(mode)
      expect(leftovers(join(file, '..'))).toEqual([])
    }
    expect((await tenancy(bench, ['show-config', '--site', 'a.localhost'])).exitCode).toBe(0)
  })

  it('on a real full tmpfs, set-config fails with "disk full" and tenancy.config.json and site_config.json stay whole', async (ctx) => {
    const disk = await smallDisk(() => ctx.skip())
    const bench = join(disk, 'bench')
    initBench(bench)
    // The registry lives elsewhere, so the writes under test are the JSON files themselves.
    setConfig(bench, (c) => (c.registry = `sqlite:${join(tempDir(), 'registry.db')}`))
    chmodSync(configOf(bench), 0o600)
    expect((await tenancy(bench, ['new-site', 'a.localhost'])).exitCode).toBe(0)
    const files = [configOf(bench), siteConfigOf(bench, 'a.localhost')]
    const before = files.map((f) => readFileSync(f, 'utf8'))
    fillDisk(disk)
    const global = await tenancy(bench, ['set-config', '-g', 'bigval', BIG])
    expect(global.exitCode, global.stderr).toBe(1)
    expect(oneLine(global.stderr)).toMatch(
      /^error: disk full: cannot write the file .*tenancy\.config\.json; free some space/,
    )
    const site = await tenancy(bench, ['set-config', '--site', 'a.localhost', 'bigval', BIG])
    expect(site.exitCode, site.stderr).toBe(1)
    expect(oneLine(site.stderr)).toMatch(
      /^error: disk full: cannot write the file .*site_config\.json; free some space/,
    )
    expect(files.map((f) => readFileSync(f, 'utf8'))).toEqual(before)
    expect(files.map(modeOf)).toEqual([0o600, 0o600])
    expect(leftovers(bench)).toEqual([])
    expect(leftovers(join(bench, 'sites', 'a.localhost'))).toEqual([])
    // Every later command still works: nothing was left truncated.
    const show = await tenancy(bench, ['show-config', '--site', 'a.localhost', '--json'])
    expect(show.exitCode, show.stderr).toBe(0)
    expect(show.json.bigval).toBeUndefined()
    // With space again the same write succeeds.
    rmSync(join(disk, 'filler'))
    expect((await tenancy(bench, ['set-config', '-g', 'bigval', BIG])).exitCode).toBe(0)
    expect(JSON.parse(readFileSync(configOf(bench), 'utf8')).bigval).toBe(BIG)
    expect(modeOf(configOf(bench))).toBe(0o600)
  })

  it('on a real full tmpfs, the registry and a site database say "disk full" and name their file (exit 1)', async (ctx) => {
    const disk = await smallDisk(() => ctx.skip())
    const bench = join(disk, 'bench')
    initBench(bench)
    // The site on the small disk, the registry on another, then the registry on the small disk.
    const elsewhere = join(tempDir(), 'registry.db')
    setConfig(bench, (c) => (c.registry = `sqlite:${elsewhere}`))
    expect((await tenancy(bench, ['new-site', 'a.localhost'])).exitCode).toBe(0)
    expect((await tenancy(bench, ['new-site', 'b.localhost'])).exitCode).toBe(0)
    fillDisk(disk)
    const db = join(bench, 'sites', 'a.localhost', 'db.sqlite')
    const user = await tenancy(bench, ['add-system-manager', 'ops@example.com', '--site', 'a.localhost'])
    expect(user.exitCode, user.stderr).toBe(1)
    expect(oneLine(user.stderr)).toBe(
      `error: disk full: cannot write the site database ${db}; free some space on its filesystem and run the command again`,
    )
    expect(query(db, "select count(*) as n from users where name = 'ops@example.com'")).toEqual([{ n: 0 }])
    rmSync(join(disk, 'filler'))
    // Now the registry on the small disk.
    const registry = join(bench, '.tenancy', 'registry.db')
    setConfig(bench, (c) => (c.registry = 'sqlite:.tenancy/registry.db'))
    // A new registry beside existing sites is refused until it is built from them.
    expect((await tenancy(bench, ['doctor', '--adopt'])).exitCode).toBe(0)
    expect((await tenancy(bench, ['list-sites'])).exitCode).toBe(0)
    fillDisk(disk, 0)
    const list = await tenancy(bench, ['new-site', 'c.localhost', '--json'])
    expect(list.exitCode, list.stderr).toBe(1)
    expect(oneLine(list.stderr)).toBe(
      `error: disk full: cannot write the registry ${registry}; free some space on its filesystem and run the command again`,
    )
    expect(list.json.error).toMatchObject({ exit_code: 1 })
    expect(existsSync(join(bench, 'sites', 'c.localhost'))).toBe(false)
  })
})

describe('a rewrite keeps the file mode; files holding secrets are 0600', () => {
  it('set-config -g keeps 0600 and 0640, and makes the config 0600 once it holds a password', async () => {
    const bench = makeBench({ exampleApps: false })
    const file = configOf(bench)
    for (const mode of [0o600, 0o640]) {
      chmodSync(file, mode)
      const r = await tenancy(bench, ['set-config', '-g', 'greeting', `mode ${mode}`])
      expect(r.exitCode, r.stderr).toBe(0)
      expect(modeOf(file)).toBe(mode)
    }
    chmodSync(file, 0o644)
    expect((await tenancy(bench, ['set-config', '-g', 'greeting', 'hello'])).exitCode).toBe(0)
    expect(modeOf(file)).toBe(0o644)
    const secret = await tenancy(bench, ['set-config', '-g', 'provision_admin_password', 'hunter2-secret'])
    expect(secret.exitCode, secret.stderr).toBe(0)
    expect(modeOf(file)).toBe(0o600)
    // It stays 0600, even once the password is gone again.
    expect((await tenancy(bench, ['set-config', '-g', 'provision_admin_password', '""', '-p'])).exitCode).toBe(0)
    expect((await tenancy(bench, ['set-config', '-g', 'greeting', 'again'])).exitCode).toBe(0)
    expect(modeOf(file)).toBe(0o600)
  })

  it('site_config.json is 0600 after every rewrite, even one an operator widened', async () => {
    const bench = makeBench({ exampleApps: false })
    expect((await tenancy(bench, ['new-site', 'a.localhost'])).exitCode).toBe(0)
    const file = siteConfigOf(bench, 'a.localhost')
    expect(modeOf(file)).toBe(0o600)
    expect((await tenancy(bench, ['set-config', '--site', 'a.localhost', 'theme', 'dark'])).exitCode).toBe(0)
    expect(modeOf(file)).toBe(0o600)
    chmodSync(file, 0o644)
    expect((await tenancy(bench, ['set-config', '--site', 'a.localhost', 'theme', 'light'])).exitCode).toBe(0)
    expect(modeOf(file)).toBe(0o600)
  })
})

// ---- one bench with a pending tenant, for the key and flag tests -----------------------

let pool: string
let pending: { name: string; site: string }

/** Everything the registry holds about sites and tenants, to prove "nothing changed". */
function registrySnapshot(bench: string): unknown {
  const file = join(bench, '.tenancy', 'registry.db')
  return Object.fromEntries(
    ['sites', 'tenants', 'steps', 'jobs', 'meta'].map((t) => [t, query(file, `select * from ${t} order by 1`)]),
  )
}

function siteSnapshot(bench: string, site: string): unknown {
  const db = join(bench, 'sites', site, 'db.sqlite')
  return {
    users: query(db, 'select * from users order by name'),
    api_keys: query(db, 'select * from api_keys order by api_key'),
    dirs: readdirSync(join(bench, 'sites')).sort(),
  }
}

beforeAll(async () => {
  pool = mkdtempSync(join(tmpdir(), 'tenancy-pool-'))
  initBench(pool, { withExampleApps: true })
  const created = await tenancy(pool, ['pending-create', '--count', '1', '--json'])
  expect(created.exitCode, created.stderr).toBe(0)
  const list = await tenancy(pool, ['tenant', 'list', '--only-pending', '--json'])
  pending = { name: list.json.tenants[0].name, site: list.json.tenants[0].site }
})

afterAll(() => {
  rmSync(pool, { recursive: true, force: true })
})

describe('one key per registry', () => {
  const wrongKey = randomBytes(32).toString('base64')
  const keyFile = () => join(pool, '.tenancy', 'secret.key')

  it('a pool pull with a wrong TENANCY_ENCRYPTION_KEY is exit 2 and leaves the tenant in the pool', async () => {
    const registry = registrySnapshot(pool)
    const site = siteSnapshot(pool, pending.site)
    const r = await tenancy(pool, ['tenant', 'create', 'acme', '--json'], { env: { TENANCY_ENCRYPTION_KEY: wrongKey } })
    expect(r.exitCode, r.stderr).toBe(2)
    expect(oneLine(r.stderr)).toMatch(
      /^error: wrong encryption key: TENANCY_ENCRYPTION_KEY is not the key this registry's secrets were encrypted with; nothing was changed/,
    )
    expect(r.json.error.exit_code).toBe(2)
    expect(registrySnapshot(pool)).toEqual(registry)
    expect(siteSnapshot(pool, pending.site)).toEqual(site)
  })

  it('generate-keys with a wrong key is exit 2 before the site gets a new secret', async () => {
    const registry = registrySnapshot(pool)
    const site = siteSnapshot(pool, pending.site)
    const r = await tenancy(pool, ['generate-keys', `api@${pending.site}`, '--site', pending.site], {
      env: { TENANCY_ENCRYPTION_KEY: wrongKey },
    })
    expect(r.exitCode, r.stderr).toBe(2)
    expect(oneLine(r.stderr)).toMatch(/TENANCY_ENCRYPTION_KEY is not the key/)
    expect(r.stdout).toBe('')
    expect(registrySnapshot(pool)).toEqual(registry)
    expect(siteSnapshot(pool, pending.site)).toEqual(site)
  })

  it('a wrong key file is refused too, also for a registry whose secrets predate the check value', async () => {
    const good = readFileSync(keyFile(), 'utf8')
    const registryFile = join(pool, '.tenancy', 'registry.db')
    const meta = query(registryFile, "select value from meta where key = 'key_check'")
    expect(meta).toHaveLength(1)
    try {
      writeFileSync(keyFile(), `${wrongKey}\n`, { mode: 0o600 })
      const { default: Database } = await import('better-sqlite3')
      const db = new Database(registryFile)
      db.prepare("delete from meta where key = 'key_check'").run()
      db.close()
      const registry = registrySnapshot(pool)
      const r = await tenancy(pool, ['tenant', 'show', pending.name, '--show-secrets'])
      expect(r.exitCode, r.stderr).toBe(2)
      expect(oneLine(r.stderr)).toContain(`${keyFile()} is not the key this registry's secrets were encrypted with`)
      expect(registrySnapshot(pool)).toEqual(registry)
    } finally {
      writeFileSync(keyFile(), good, { mode: 0o600 })
    }
    // The right key opens the secrets and records the check value again.
    const ok = await tenancy(pool, ['tenant', 'show', pending.name, '--show-secrets', '--json'])
    expect(ok.exitCode, ok.stderr).toBe(0)
    expect(ok.json.api_secret).toMatch(/\S{16,}/)
    expect(query(registryFile, "select count(*) as n from meta where key = 'key_check'")).toEqual([{ n: 1 }])
  })

  it('tenant show --show-secrets with secret.key deleted is exit 2 and makes no new key', async () => {
    const good = readFileSync(keyFile(), 'utf8')
    rmSync(keyFile())
    try {
      const registry = registrySnapshot(pool)
      const r = await tenancy(pool, ['tenant', 'show', pending.name, '--show-secrets', '--json'])
      expect(r.exitCode, r.stderr).toBe(2)
      expect(oneLine(r.stderr)).toBe(
        `error: ${keyFile()} is missing, and the registry holds secrets encrypted with it; restore the file from a backup, or copy it from a machine that shares this registry (or set TENANCY_ENCRYPTION_KEY to that key): a new key could not read them`,
      )
      expect(r.stdout).not.toMatch(/api_secret/)
      expect(existsSync(keyFile())).toBe(false)
      expect(registrySnapshot(pool)).toEqual(registry)
      // The original key given through the environment works without the file.
      const env = await tenancy(pool, ['tenant', 'show', pending.name, '--show-secrets', '--json'], {
        env: { TENANCY_ENCRYPTION_KEY: good.trim() },
      })
      expect(env.exitCode, env.stderr).toBe(0)
      expect(existsSync(keyFile())).toBe(false)
    } finally {
      writeFileSync(keyFile(), good, { mode: 0o600 })
    }
  })
})

describe('numeric flags: never empty, blank, negative, fractional or absurd', () => {
  const FLAGS: { flag: string; args: (value: string) => string[] }[] = [
    { flag: '--older-than-days', args: (v) => ['pending-clear', '--older-than-days', v] },
    { flag: '--older-than-hours', args: (v) => ['pending-clear', '--older-than-hours', v] },
    { flag: '--count', args: (v) => ['pending-create', '--count', v] },
    { flag: '--concurrency', args: (v) => ['pending-create', '--concurrency', v] },
    { flag: '--concurrency', args: (v) => ['worker', '--once', '--concurrency', v] },
    { flag: '--concurrency', args: (v) => ['migrate', '--concurrency', v] },
    { flag: '--limit', args: (v) => ['errors', '--limit', v] },
    { flag: '--db-port', args: (v) => ['new-site', 'port.localhost', '--db-type', 'postgres', '--db-port', v] },
  ]
  const INPUTS = ['', ' ', 'abc', '-1', '1.5', '1e3', '99999999999999999999']

  it('each is exit 2 with one line quoting the input and the allowed range, and nothing changes', async () => {
    const registry = registrySnapshot(pool)
    const cases = FLAGS.flatMap(({ flag, args }) => INPUTS.map((input) => ({ flag, input, args: args(input) })))
    const results: Awaited<ReturnType<typeof tenancy>>[] = []
    // Four at a time: the machine's cores are shared.
    for (let i = 0; i < cases.length; i += 4)
      results.push(...(await Promise.all(cases.slice(i, i + 4).map((c) => tenancy(pool, c.args)))))
    cases.forEach((c, i) => {
      const r = results[i]!
      const what = `${c.args.join(' ')} (input ${JSON.stringify(c.input)})`
      expect(r.exitCode, what).toBe(2)
      const line = oneLine(r.stderr)
      expect(
        line.startsWith(`error: invalid ${c.flag} ${JSON.stringify(c.input)}: give a whole number `),
        `${what}: ${line}`,
      ).toBe(true)
      expect(line, what).toMatch(/: give a whole number( of [a-z]+)? from \d+ to \d+$/)
    })
    expect(registrySnapshot(pool)).toEqual(registry)
    expect(existsSync(join(pool, 'sites', 'port.localhost'))).toBe(false)
    const list = await tenancy(pool, ['tenant', 'list', '--only-pending', '--json'])
    expect(list.json.tenants.map((t: any) => t.name)).toEqual([pending.name])
  })

  it('the message says the unit and range, as the SPEC words it', async () => {
    const days = await tenancy(pool, ['pending-clear', '--older-than-days', ''])
    expect(days.stderr.trim()).toBe('error: invalid --older-than-days "": give a whole number of days from 0 to 36500')
    const count = await tenancy(pool, ['pending-create', '--count', '-1', '--json'])
    expect(count.json.error).toEqual({
      message: 'invalid --count "-1": give a whole number of tenants from 0 to 100000',
      exit_code: 2,
    })
    // A bound that is well-formed still works: nothing is older than 1000 days.
    const fine = await tenancy(pool, ['pending-clear', '--older-than-days', '1000', '--json'])
    expect(fine.exitCode, fine.stderr).toBe(0)
    expect(fine.json.cleared).toEqual([])
  })
})

describe('a damaged registry or site database is named, not reported as a bug', () => {
  it('garbage in .tenancy/registry.db is exit 2 naming the file and what to do', async () => {
    const bench = makeBench({ exampleApps: false })
    expect((await tenancy(bench, ['new-site', 'a.localhost'])).exitCode).toBe(0)
    const registry = join(bench, '.tenancy', 'registry.db')
    writeFileSync(registry, randomBytes(64 * 1024))
    for (const args of [
      ['list-sites'],
      ['tenant', 'list', '--json'],
      ['set-config', '--site', 'a.localhost', 'k', 'v'],
    ]) {
      const r = await tenancy(bench, args)
      expect(r.exitCode, r.stderr).toBe(2)
      expect(oneLine(r.stderr)).toBe(
        `error: the registry ${registry} is corrupt (file is not a database); restore it from a backup`,
      )
    }
  })

  it('damaged pages behind a good header (SQLITE_CORRUPT) are exit 2 too', async () => {
    const bench = makeBench({ exampleApps: false })
    for (const site of ['a.localhost', 'b.localhost'])
      expect((await tenancy(bench, ['new-site', site])).exitCode).toBe(0)
    const registry = join(bench, '.tenancy', 'registry.db')
    const bytes = readFileSync(registry)
    // Page 1 (the header and schema) stays; every other page becomes noise.
    randomBytes(bytes.length - 4096).copy(bytes, 4096)
    writeFileSync(registry, bytes)
    const r = await tenancy(bench, ['list-sites'])
    expect(r.exitCode, r.stderr).toBe(2)
    expect(oneLine(r.stderr)).toMatch(
      new RegExp(
        `^error: the registry ${registry.replace(/[.]/g, '\\.')} is corrupt \\(.+\\); restore it from a backup$`,
      ),
    )
  })

  it('a corrupt site database is exit 1 naming it', async () => {
    const bench = makeBench({ exampleApps: false })
    expect((await tenancy(bench, ['new-site', 'a.localhost'])).exitCode).toBe(0)
    const db = join(bench, 'sites', 'a.localhost', 'db.sqlite')
    writeFileSync(db, randomBytes(16 * 1024))
    const r = await tenancy(bench, ['add-system-manager', 'ops@example.com', '--site', 'a.localhost'])
    expect(r.exitCode, r.stderr).toBe(1)
    expect(oneLine(r.stderr)).toBe(
      `error: the site database ${db} is corrupt (file is not a database); restore it from a backup`,
    )
  })
})
