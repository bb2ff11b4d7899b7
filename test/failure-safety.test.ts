import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { describe, expect, it } from 'vitest'
import { addApp, makeBench, spawnTenancy, tenancy } from './helpers.js'

function registryRows(bench: string): { name: string; state: string }[] {
  if (!existsSync(join(bench, '.tenancy', 'registry.db'))) return []
  const db = new Database(join(bench, '.tenancy', 'registry.db'), { readonly: true })
  try {
    return db.prepare('select name, state from sites order by name').all() as any
  } finally {
    db.close()
  }
}

async function waitFor(check: () => boolean, what: string, ms = 20_000): Promise<void> {
  const until = Date.now() + ms
  while (!check()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

const SLOW_HOOK = `
import { writeFileSync } from 'node:fs'
writeFileSync(process.env.MARKER, String(process.pid))
setTimeout(() => {}, 60_000)
`

describe('a failed new-site leaves nothing behind', () => {
  it('rolls back directory, database and registry row when an app migration throws', async () => {
    const bench = makeBench()
    addApp(
      bench,
      'broken',
      { requires: ['shared_lib'] },
      {
        'migrations/0001_ok.sql': 'CREATE TABLE broken_things (id VARCHAR(20) PRIMARY KEY);\n',
        'migrations/0002_boom.mjs': 'export async function up() { throw new Error("boom in migration") }\n',
      },
    )
    const r = await tenancy(bench, ['new-site', 'x.localhost', '--install-app', 'broken'])
    expect(r.exitCode).toBe(1)
    expect(r.stderr).toMatch(/migration broken\/0002_boom failed: boom in migration/)
    expect(r.stderr).toMatch(/rolled back/)
    expect(existsSync(join(bench, 'sites', 'x.localhost'))).toBe(false)
    expect(registryRows(bench)).toEqual([])
  })

  it('rolls back when an after_install hook fails, showing its output', async () => {
    const bench = makeBench()
    addApp(
      bench,
      'badhook',
      { hooks: { after_install: 'node hook.mjs' } },
      {
        'hook.mjs': 'console.error("cannot reach the billing service"); process.exit(3)\n',
      },
    )
    const r = await tenancy(bench, ['new-site', 'x.localhost', '--install-app', 'badhook'])
    expect(r.exitCode).toBe(1)
    expect(r.stderr).toMatch(/after_install hook of app "badhook" on site "x.localhost" exited with code 3/)
    expect(r.stderr).toMatch(/cannot reach the billing service/)
    expect(readdirSync(join(bench, 'sites'))).toEqual([])
    expect(registryRows(bench)).toEqual([])
  })

  it('gives hooks names in the environment and no secrets in the environment or argv', async () => {
    const bench = makeBench()
    const out = join(bench, 'hook-env.json')
    addApp(
      bench,
      'spy',
      { hooks: { after_install: 'node hook.mjs --flag' } },
      {
        'hook.mjs': `import { writeFileSync } from 'node:fs'\nwriteFileSync(${JSON.stringify(out)}, JSON.stringify({ env: process.env, argv: process.argv, cwd: process.cwd() }))\n`,
      },
    )
    const r = await tenancy(bench, ['new-site', 'x.localhost', '--install-app', 'spy'], {
      env: {
        TENANCY_ADMIN_PASSWORD: 'admin-pw-123',
        TENANCY_DB_ROOT_PASSWORD: 'root-pw-456',
        SMTP_PASSWORD: 'smtp-pw-789',
      },
    })
    expect(r.exitCode, r.stderr).toBe(0)
    const seen = JSON.parse(readFileSync(out, 'utf8'))
    expect(seen.env).toMatchObject({
      TENANCY_SITE: 'x.localhost',
      TENANCY_SITE_PATH: join(bench, 'sites', 'x.localhost'),
      TENANCY_APP: 'spy',
      TENANCY_BENCH_PATH: bench,
      TENANCY_DB_TYPE: 'sqlite',
    })
    expect(seen.env.TENANCY_LIB).toMatch(/dist[\\/]index\.js$/)
    expect(seen.argv.slice(2)).toEqual(['--flag'])
    expect(seen.cwd).toBe(join(bench, 'apps', 'spy'))
    const text = JSON.stringify(seen)
    for (const secret of ['admin-pw-123', 'root-pw-456', 'smtp-pw-789']) expect(text).not.toContain(secret)
  })

  it('stops a hook that runs past provision.step_timeout and rolls back', async () => {
    const bench = makeBench()
    const config = JSON.parse(readFileSync(join(bench, 'tenancy.config.json'), 'utf8'))
    writeFileSync(
      join(bench, 'tenancy.config.json'),
      JSON.stringify({ ...config, provision: { ...config.provision, step_timeout: 1 } }),
    )
    addApp(
      bench,
      'sleepy',
      { hooks: { after_install: 'node hook.mjs' } },
      { 'hook.mjs': 'console.log("warming up"); setTimeout(() => {}, 60_000)\n' },
    )
    const started = Date.now()
    const r = await tenancy(bench, ['new-site', 'x.localhost', '--install-app', 'sleepy'])
    expect(r.exitCode).toBe(1)
    expect(r.stderr).toMatch(
      /after_install hook of app "sleepy" on site "x.localhost" timed out after 1 s; output:\nwarming up/,
    )
    expect(Date.now() - started).toBeLessThan(20_000)
    expect(readdirSync(join(bench, 'sites'))).toEqual([])
    expect(registryRows(bench)).toEqual([])
  })

  it('keeps a failed site with --keep-on-failure, and drop-site removes it', async () => {
    const bench = makeBench()
    addApp(bench, 'broken', {}, { 'migrations/0001_boom.sql': 'CREATE TABLE;\n' })
    const r = await tenancy(bench, ['new-site', 'x.localhost', '--install-app', 'broken', '--keep-on-failure'])
    expect(r.exitCode).toBe(1)
    expect(r.stderr).toMatch(/kept for debugging/)
    expect(existsSync(join(bench, 'sites', 'x.localhost', 'db.sqlite'))).toBe(true)
    expect(registryRows(bench)).toEqual([{ name: 'x.localhost', state: 'failed' }])
    const use = await tenancy(bench, ['list-apps', '--site', 'x.localhost'])
    expect(use.exitCode).toBe(1)
    expect(use.stderr).toMatch(/failed to be created.*drop-site/)
    const drop = await tenancy(bench, ['drop-site', 'x.localhost', '--yes', '--no-archive'])
    expect(drop.exitCode, drop.stderr).toBe(0)
    expect(readdirSync(join(bench, 'sites'))).toEqual([])
    expect(registryRows(bench)).toEqual([])
  })

  it('a failing install-app on an existing site leaves the site as it was', async () => {
    const bench = makeBench()
    await tenancy(bench, ['new-site', 'a.localhost', '--install-app', 'shared_lib'])
    addApp(
      bench,
      'broken',
      {},
      {
        'migrations/0001_ok.sql':
          "CREATE TABLE broken_things (id VARCHAR(20) PRIMARY KEY);\nINSERT INTO broken_things VALUES ('x');\n",
        'migrations/0002_boom.sql': 'INSERT INTO missing_table VALUES (1);\n',
      },
    )
    const r = await tenancy(bench, ['install-app', 'broken', '--site', 'a.localhost'])
    expect(r.exitCode).toBe(1)
    expect(r.stderr).toMatch(/migration broken\/0002_boom failed: no such table: missing_table/)
    const db = new Database(join(bench, 'sites', 'a.localhost', 'db.sqlite'), { readonly: true })
    expect(db.prepare("select count(*) as n from sqlite_master where name = 'broken_things'").get()).toEqual({ n: 0 })
    expect(db.prepare("select count(*) as n from tenancy_migrations where app = 'broken'").get()).toEqual({ n: 0 })
    expect(db.prepare('select name from installed_apps').all()).toEqual([{ name: 'shared_lib' }])
    db.close()
  })

  it('refuses requirement cycles and missing requirements before creating anything', async () => {
    const bench = makeBench()
    addApp(bench, 'ping', { requires: ['pong'] }, {})
    addApp(bench, 'pong', { requires: ['ping'] }, {})
    addApp(bench, 'lonely', { requires: ['ghost'] }, {})
    const cycle = await tenancy(bench, ['new-site', 'x.localhost', '--install-app', 'ping'])
    expect(cycle.exitCode).toBe(2)
    expect(cycle.stderr).toMatch(/cycle: ping -> pong -> ping/)
    const missing = await tenancy(bench, ['new-site', 'x.localhost', '--install-app', 'lonely'])
    expect(missing.exitCode).toBe(2)
    expect(missing.stderr).toMatch(/app "lonely" requires "ghost", which is not in/)
    addApp(bench, 'misnamed', {}, { 'migrations/1_bad.sql': 'select 1;' })
    const badFile = await tenancy(bench, ['new-site', 'x.localhost', '--install-app', 'misnamed'])
    expect(badFile.exitCode).toBe(2)
    expect(badFile.stderr).toMatch(/"1_bad.sql" must be named NNNN_name/)
    expect(readdirSync(join(bench, 'sites'))).toEqual([])
    expect(registryRows(bench)).toEqual([])
  })
})

describe('races and kills, with real processes', () => {
  it('two processes creating the same site: one site, one clear error', async () => {
    const bench = makeBench()
    const runs = await Promise.all(
      [0, 1].map(() => spawnTenancy(bench, ['new-site', 'same.localhost', '--install-app', 'tenant_ops'])),
    )
    const codes = runs.map((r) => r.exitCode).sort()
    expect(codes).toEqual([0, 2])
    const loser = runs.find((r) => r.exitCode === 2)!
    expect(String(loser.stderr)).toMatch(
      /site "same.localhost" already exists \(or is being created by another process\)/,
    )
    expect(readdirSync(join(bench, 'sites'))).toEqual(['same.localhost'])
    expect(registryRows(bench)).toEqual([{ name: 'same.localhost', state: 'ready' }])
    const db = new Database(join(bench, 'sites', 'same.localhost', 'db.sqlite'), { readonly: true })
    expect(db.prepare("select count(*) as n from projects where id = 'PRJ-ONBOARDING'").get()).toEqual({ n: 1 })
    db.close()
  })

  it('two processes installing the same app on one site: one installs, the other finds it installed', async () => {
    const bench = makeBench()
    await tenancy(bench, ['new-site', 'a.localhost'])
    const runs = await Promise.all(
      [0, 1].map(() => spawnTenancy(bench, ['install-app', 'shared_lib', '--site', 'a.localhost', '--json'])),
    )
    const statuses = runs.map((r) => {
      expect(r.exitCode, String(r.stderr)).toBe(0)
      return JSON.parse(String(r.stdout)).apps[0].status
    })
    expect(statuses.sort()).toEqual(['already_installed', 'installed'])
    const db = new Database(join(bench, 'sites', 'a.localhost', 'db.sqlite'), { readonly: true })
    expect(db.prepare("select count(*) as n from tenancy_migrations where app = 'shared_lib'").get()).toEqual({ n: 4 })
    db.close()
  })

  it('eight processes creating different sites on a fresh bench all succeed', async () => {
    const bench = makeBench()
    const runs = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        spawnTenancy(bench, ['new-site', `s${i}.localhost`, '--install-app', 'shared_lib']),
      ),
    )
    for (const r of runs) expect(r.exitCode, String(r.stderr)).toBe(0)
    expect(registryRows(bench).map((r) => r.state)).toEqual(Array(8).fill('ready'))
  })

  it('SIGINT during an app hook rolls back and exits 130', async () => {
    const bench = makeBench()
    const marker = join(bench, 'hook.pid')
    addApp(bench, 'slow', { hooks: { after_install: 'node hook.mjs' } }, { 'hook.mjs': SLOW_HOOK })
    const child = spawnTenancy(bench, ['new-site', 'x.localhost', '--install-app', 'slow'], { MARKER: marker })
    await waitFor(() => existsSync(marker), 'the hook to start')
    child.kill('SIGINT')
    const r = await child
    expect(String(r.stderr)).toMatch(/interrupted/)
    expect(r.exitCode).toBe(130)
    expect(readdirSync(join(bench, 'sites'))).toEqual([])
    expect(registryRows(bench)).toEqual([])
    const hookPid = Number(readFileSync(marker, 'utf8'))
    await waitFor(() => !alive(hookPid), 'the hook to be stopped', 10_000)
  })

  it('kill -9 in the middle leaves a row that names what may exist; drop-site or new-site --force clears it', async () => {
    const bench = makeBench()
    const marker = join(bench, 'hook.pid')
    addApp(bench, 'slow', { hooks: { after_install: 'node hook.mjs' } }, { 'hook.mjs': SLOW_HOOK })
    for (const cleanup of [
      ['drop-site', 'x.localhost', '--yes', '--no-archive'],
      ['new-site', 'x.localhost', '--force'],
    ]) {
      const child = spawnTenancy(bench, ['new-site', 'x.localhost', '--install-app', 'slow'], { MARKER: marker })
      await waitFor(() => existsSync(marker), 'the hook to start')
      child.kill('SIGKILL')
      await child
      process.kill(Number(readFileSync(marker, 'utf8')), 'SIGKILL')
      writeFileSync(marker, '')
      const { rmSync } = await import('node:fs')
      rmSync(marker)
      expect(registryRows(bench)).toEqual([{ name: 'x.localhost', state: 'creating' }])
      const listed = await tenancy(bench, ['list-sites', '--json'])
      expect(listed.json.sites[0]).toMatchObject({ site: 'x.localhost', state: 'creating' })
      const blocked = await tenancy(bench, ['new-site', 'x.localhost'])
      expect(blocked.exitCode).toBe(2)
      expect(blocked.stderr).toMatch(/an earlier new-site of "x.localhost" was interrupted/)
      const fixed = await tenancy(bench, cleanup)
      expect(fixed.exitCode, fixed.stderr).toBe(0)
      if (cleanup[0] === 'drop-site') {
        expect(readdirSync(join(bench, 'sites'))).toEqual([])
        expect(registryRows(bench)).toEqual([])
      } else {
        expect(registryRows(bench)).toEqual([{ name: 'x.localhost', state: 'ready' }])
        await tenancy(bench, ['drop-site', 'x.localhost', '--yes', '--no-archive'])
      }
    }
  })

  it('concurrent first opens of a new registry apply its schema once', async () => {
    const bench = makeBench({ exampleApps: false })
    const runs = await Promise.all(Array.from({ length: 8 }, () => spawnTenancy(bench, ['list-sites', '--json'])))
    for (const r of runs) expect(r.exitCode, String(r.stderr)).toBe(0)
    const db = new Database(join(bench, '.tenancy', 'registry.db'), { readonly: true })
    const versions = db.prepare('select version from registry_migrations order by version').all() as {
      version: number
    }[]
    expect(versions.map((v) => v.version)).toEqual([...new Set(versions.map((v) => v.version))])
    expect(versions.length).toBeGreaterThanOrEqual(2)
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal')
    db.close()
  })
})

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}
