import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { describe, expect, it } from 'vitest'
import { makeBench, tempDir, tenancy } from './helpers.js'

/** An archive directory a drop makes: `archived/sites/<site>-<UTC stamp>`. */
const ARCHIVE_OF = (site: string) => new RegExp(`/archived/sites/${site.replace(/\./g, '\\.')}-\\d{8}T\\d{9}Z$`)

function siteDb(bench: string, site: string) {
  return new Database(join(bench, 'sites', site, 'db.sqlite'), { readonly: true, fileMustExist: true })
}

describe('tenancy init', () => {
  it('creates a bench with the example apps and refuses to overwrite one', async () => {
    const dir = tempDir()
    const first = await tenancy(dir, ['init', 'bench', '--with-example-apps', '--json'])
    expect(first.exitCode).toBe(0)
    expect(first.json.apps).toEqual(['shared_lib', 'tenant_ops'])
    for (const path of [
      'tenancy.config.json',
      'apps/shared_lib/app.json',
      'apps/tenant_ops/hooks/after_install.mjs',
      'sites',
      '.tenancy',
    ]) {
      expect(existsSync(join(dir, 'bench', path)), path).toBe(true)
    }
    const bare = await tenancy(dir, ['init', 'bare', '--json'])
    expect(JSON.parse(readFileSync(join(dir, 'bare', 'tenancy.config.json'), 'utf8')).provision.apps).toEqual([])
    expect(bare.json.apps).toEqual([])
    const again = await tenancy(dir, ['init', 'bench'])
    expect(again.exitCode).toBe(2)
    expect(again.stderr).toMatch(/is a bench/)
  })
})

describe('new-site', () => {
  it('creates directory, 0600 database and config, core tables, Administrator and the apps with their hook', async () => {
    const bench = makeBench()
    const r = await tenancy(bench, ['new-site', 'acme.localhost', '--install-app', 'tenant_ops', '--json'])
    expect(r.exitCode, r.stderr).toBe(0)
    expect(r.json.site).toBe('acme.localhost')
    expect(r.json.db_name).toMatch(/^_[0-9a-f]{16}$/)
    expect(r.json.apps.map((a: any) => [a.app, a.status])).toEqual([
      ['shared_lib', 'installed'],
      ['tenant_ops', 'installed'],
    ])
    expect(r.json.admin_password).toMatch(/^[A-Za-z0-9_-]{20,}$/)
    const sitePath = join(bench, 'sites', 'acme.localhost')
    expect(statSync(join(sitePath, 'db.sqlite')).mode & 0o777).toBe(0o600)
    expect(statSync(join(sitePath, 'site_config.json')).mode & 0o777).toBe(0o600)
    expect(JSON.parse(readFileSync(join(sitePath, 'site_config.json'), 'utf8'))).toMatchObject({
      db_type: 'sqlite',
      db_name: r.json.db_name,
    })
    const db = siteDb(bench, 'acme.localhost')
    const admin = db.prepare("select password_hash from users where name = 'Administrator'").get() as any
    expect(admin.password_hash).toMatch(/^scrypt\$/)
    expect(db.prepare('select name, version from installed_apps order by name').all()).toEqual([
      { name: 'shared_lib', version: '1.0.0' },
      { name: 'tenant_ops', version: '1.0.0' },
    ])
    // tenant_ops' after_install hook made its onboarding project and audit row, once.
    expect(db.prepare("select count(*) as n from projects where id = 'PRJ-ONBOARDING'").get()).toEqual({ n: 1 })
    expect(
      db.prepare("select count(*) as n from audit_log where action = 'app_installed' and ref_id = 'tenant_ops'").get(),
    ).toEqual({ n: 1 })
    const ledger = db.prepare('select app, count(*) as n from tenancy_migrations group by app order by app').all()
    expect(ledger).toEqual([
      { app: 'core', n: 2 },
      { app: 'shared_lib', n: 4 },
      { app: 'tenant_ops', n: 6 },
    ])
    db.close()
    const list = await tenancy(bench, ['list-sites', '--json'])
    expect(list.json.sites).toEqual([
      expect.objectContaining({
        site: 'acme.localhost',
        state: 'ready',
        db_type: 'sqlite',
        tenant: null,
        pending: false,
        apps: [
          { name: 'shared_lib', version: '1.0.0' },
          { name: 'tenant_ops', version: '1.0.0' },
        ],
      }),
    ])
  })

  it('takes the admin password from a file or the environment and never prints it', async () => {
    const bench = makeBench({ exampleApps: false })
    const file = join(bench, 'pw.txt')
    writeFileSync(file, 'from-file-pw\n')
    const r = await tenancy(bench, ['new-site', 'a.localhost', '--admin-password-file', file, '--json'])
    expect(r.exitCode, r.stderr).toBe(0)
    expect(r.json.admin_password).toBeUndefined()
    expect(r.stdout + r.stderr).not.toContain('from-file-pw')
    const e = await tenancy(bench, ['new-site', 'b.localhost', '--json'], { env: { TENANCY_ADMIN_PASSWORD: 'env-pw' } })
    expect(e.exitCode).toBe(0)
    expect(e.stdout + e.stderr).not.toContain('env-pw')
    const { verifyPassword } = await import('../src/secrets/hashing.js')
    for (const [site, pw] of [
      ['a.localhost', 'from-file-pw'],
      ['b.localhost', 'env-pw'],
    ] as const) {
      const db = siteDb(bench, site)
      const row = db.prepare("select password_hash from users where name = 'Administrator'").get() as any
      db.close()
      expect(await verifyPassword(pw, row.password_hash)).toBe(true)
    }
    const missing = await tenancy(bench, ['new-site', 'c.localhost', '--admin-password-file', join(bench, 'nope.txt')])
    expect(missing.exitCode).toBe(2)
    expect(missing.stderr).toMatch(/--admin-password-file/)
    expect(existsSync(join(bench, 'sites', 'c.localhost'))).toBe(false)
  })

  it('warns when the admin password comes from the config file (seed-compatible key)', async () => {
    const bench = makeBench({ exampleApps: false })
    const config = JSON.parse(readFileSync(join(bench, 'tenancy.config.json'), 'utf8'))
    writeFileSync(join(bench, 'tenancy.config.json'), JSON.stringify({ ...config, provision_admin_password: 'cfg-pw' }))
    const r = await tenancy(bench, ['new-site', 'a.localhost'])
    expect(r.exitCode).toBe(0)
    expect(r.stderr).toMatch(/warning: admin password is read from "provision_admin_password".*TENANCY_ADMIN_PASSWORD/)
    expect(r.stderr + r.stdout).not.toContain('cfg-pw')
    const shown = await tenancy(bench, ['show-config', '--json'])
    expect(shown.json.provision_admin_password).toBe('********')
  })

  it('refuses bad names with exit 2 and creates nothing', async () => {
    const bench = makeBench({ exampleApps: false })
    for (const bad of ['../evil', 'a/b', 'UPPER.localhost', 'sp ace', 'x'.repeat(300)]) {
      const r = await tenancy(bench, ['new-site', bad])
      expect(r.exitCode, bad).toBe(2)
      expect(r.stderr).toMatch(/invalid site name/)
      expect(r.stderr).not.toMatch(/at .*\.js:\d+/)
    }
    const db = await tenancy(bench, ['new-site', 'ok.localhost', '--db-name', 'Bad-Name'])
    expect(db.exitCode).toBe(2)
    const app = await tenancy(bench, ['new-site', 'ok.localhost', '--install-app', 'missing_app'])
    expect(app.exitCode).toBe(2)
    expect(app.stderr).toMatch(/app "missing_app" is not in/)
    expect(readdirSync(join(bench, 'sites'))).toEqual([])
    expect(existsSync(join(bench, 'archived'))).toBe(false)
    const list = await tenancy(bench, ['list-sites', '--json'])
    expect(list.json.sites).toEqual([])
  })

  it('refuses an existing site without --force and replaces it with --force', async () => {
    const bench = makeBench({ exampleApps: false })
    const first = await tenancy(bench, ['new-site', 'a.localhost', '--db-name', 'first_db', '--json'])
    expect(first.exitCode).toBe(0)
    const again = await tenancy(bench, ['new-site', 'a.localhost'])
    expect(again.exitCode).toBe(2)
    expect(again.stderr).toMatch(/already exists.*--force/)
    const forced = await tenancy(bench, ['new-site', 'a.localhost', '--force', '--json'])
    expect(forced.exitCode, forced.stderr).toBe(0)
    expect(forced.json.db_name).not.toBe('first_db')
    expect(forced.stderr).toMatch(/warning: replaced site "a.localhost"; its old directory is in .*archived/)
    expect(forced.json.replaced_archived_to).toMatch(ARCHIVE_OF('a.localhost'))
    expect(existsSync(join(forced.json.replaced_archived_to, 'site', 'site_config.json'))).toBe(true)
    expect(forced.json.replaced_backup).toBe(join(forced.json.replaced_archived_to, 'backup'))
    const list = await tenancy(bench, ['list-sites', '--json'])
    expect(list.json.sites.map((s: any) => [s.site, s.db_name])).toEqual([['a.localhost', forced.json.db_name]])
  })

  it('refuses a stray directory that is not a registered site', async () => {
    const bench = makeBench({ exampleApps: false })
    const { mkdirSync } = await import('node:fs')
    mkdirSync(join(bench, 'sites', 'stray.localhost'))
    writeFileSync(join(bench, 'sites', 'stray.localhost', 'keep.txt'), 'operator data')
    const r = await tenancy(bench, ['new-site', 'stray.localhost'])
    expect(r.exitCode).toBe(2)
    expect(r.stderr).toMatch(/exists but no site is registered/)
    expect(readFileSync(join(bench, 'sites', 'stray.localhost', 'keep.txt'), 'utf8')).toBe('operator data')
    expect((await tenancy(bench, ['list-sites', '--json'])).json.sites).toEqual([])
  })
})

describe('drop-site', () => {
  it('needs --yes without a terminal, archives by default, deletes with --no-archive', async () => {
    const bench = makeBench({ exampleApps: false })
    await tenancy(bench, ['new-site', 'a.localhost'])
    await tenancy(bench, ['new-site', 'b.localhost'])
    const refused = await tenancy(bench, ['drop-site', 'a.localhost'])
    expect(refused.exitCode).toBe(2)
    expect(refused.stderr).toMatch(/pass --yes/)
    expect(existsSync(join(bench, 'sites', 'a.localhost', 'db.sqlite'))).toBe(true)
    const dropped = await tenancy(bench, ['drop-site', 'a.localhost', '--yes', '--json'])
    expect(dropped.exitCode).toBe(0)
    expect(dropped.json).toEqual({
      site: 'a.localhost',
      archived_to: expect.stringMatching(ARCHIVE_OF('a.localhost')),
      database_dropped: true,
      backup: join(dropped.json.archived_to, 'backup'),
    })
    expect(dropped.json.archived_to.startsWith(join(bench, 'archived', 'sites', 'a.localhost-'))).toBe(true)
    expect(existsSync(join(bench, 'sites', 'a.localhost'))).toBe(false)
    expect(existsSync(join(dropped.json.archived_to, 'site', 'site_config.json'))).toBe(true)
    const gone = await tenancy(bench, ['-y', 'drop-site', 'b.localhost', '--no-archive'])
    expect(gone.exitCode).toBe(0)
    expect(existsSync(join(bench, 'sites', 'b.localhost'))).toBe(false)
    expect(readdirSync(join(bench, 'archived', 'sites')).filter((d) => d.startsWith('b.localhost'))).toHaveLength(0)
    // Its backup went to backups.path instead.
    expect(readdirSync(join(bench, 'backups', 'b.localhost'))).toHaveLength(1)
    expect((await tenancy(bench, ['list-sites', '--json'])).json.sites).toEqual([])
    const unknown = await tenancy(bench, ['drop-site', 'nope.localhost', '--yes'])
    expect(unknown.exitCode).toBe(2)
    expect(unknown.stderr).toMatch(/site "nope.localhost" does not exist; run "tenancy list-sites"/)
    await tenancy(bench, ['new-site', 'acme.localhost'])
    const typo = await tenancy(bench, ['--site', 'acme.localhst', 'drop-site', '--yes'])
    expect(typo.exitCode).toBe(2)
    expect(typo.stderr).toMatch(/did you mean "acme.localhost"\?/)
    const upper = await tenancy(bench, ['list-apps', '--site', 'ACME.localhost'])
    expect(upper.stderr).toMatch(/site names are lower case; did you mean "acme.localhost"\?/)
    const viaFlag = await tenancy(bench, ['--site', 'acme.localhost', 'drop-site', '--yes', '--json'])
    expect(viaFlag.json.site).toBe('acme.localhost')
  })
})

describe('install-app and list-apps', () => {
  it('installs requirements first, says when already installed, and lists migrations', async () => {
    const bench = makeBench()
    await tenancy(bench, ['new-site', 'a.localhost'])
    const first = await tenancy(bench, ['--site', 'a.localhost', 'install-app', 'tenant_ops', '--json'])
    expect(first.exitCode, first.stderr).toBe(0)
    expect(first.json.apps.map((a: any) => a.app)).toEqual(['shared_lib', 'tenant_ops'])
    const again = await tenancy(bench, ['install-app', 'tenant_ops', '--site', 'a.localhost'])
    expect(again.exitCode).toBe(0)
    expect(again.stderr).toMatch(/tenant_ops is already installed/)
    const apps = await tenancy(bench, ['list-apps', '--json'])
    expect(apps.json.apps.map((a: any) => [a.app, a.requires])).toEqual([
      ['shared_lib', []],
      ['tenant_ops', ['shared_lib']],
    ])
    const onSite = await tenancy(bench, ['list-apps', '--site', 'a.localhost', '--json'])
    expect(onSite.json.apps).toEqual([
      expect.objectContaining({ app: 'shared_lib', version: '1.0.0', pending_migrations: [] }),
      expect.objectContaining({ app: 'tenant_ops', version: '1.0.0', pending_migrations: [] }),
    ])
    expect(onSite.json.apps[1].applied_migrations).toHaveLength(6)
    const sites = await tenancy(bench, ['list-sites', '--json'])
    expect(sites.json.sites[0].apps.map((a: any) => a.name)).toEqual(['shared_lib', 'tenant_ops'])
  })

  it('refuses unknown apps and sites, and a missing --site', async () => {
    const bench = makeBench()
    await tenancy(bench, ['new-site', 'a.localhost'])
    expect((await tenancy(bench, ['install-app', 'nope', '--site', 'a.localhost'])).exitCode).toBe(2)
    expect((await tenancy(bench, ['install-app', 'tenant_ops', '--site', 'b.localhost'])).exitCode).toBe(2)
    const noSite = await tenancy(bench, ['install-app', 'tenant_ops'])
    expect(noSite.exitCode).toBe(2)
    expect(noSite.stderr).toMatch(/needs --site SITE/)
  })
})

describe('set-config and show-config', () => {
  it('coerces values as bench does, parses with -p, writes the global config with -g, masks secrets', async () => {
    const bench = makeBench({ exampleApps: false })
    await tenancy(bench, ['new-site', 'a.localhost'])
    expect((await tenancy(bench, ['set-config', 'developer_mode', '1', '--site', 'a.localhost'])).exitCode).toBe(0)
    expect((await tenancy(bench, ['--site', 'a.localhost', 'set-config', 'maintenance', 'false'])).exitCode).toBe(0)
    expect(
      (await tenancy(bench, ['--site', 'a.localhost', 'set-config', 'limits', '{"users": 5}', '-p'])).exitCode,
    ).toBe(0)
    expect((await tenancy(bench, ['--site', 'a.localhost', 'set-config', 'smtp_password', 'hunter2'])).exitCode).toBe(0)
    const siteConfig = JSON.parse(readFileSync(join(bench, 'sites', 'a.localhost', 'site_config.json'), 'utf8'))
    expect(siteConfig).toMatchObject({
      developer_mode: 1,
      maintenance: false,
      limits: { users: 5 },
      smtp_password: 'hunter2',
    })
    const shown = await tenancy(bench, ['show-config', '--site', 'a.localhost', '--json'])
    expect(shown.json).toMatchObject({
      developer_mode: 1,
      smtp_password: '********',
      db_type: 'sqlite',
      default_site_domain: 'localhost',
    })
    expect(shown.stdout).not.toContain('hunter2')
    await tenancy(bench, ['--site', 'a.localhost', 'set-config', 'zip', '01234'])
    await tenancy(bench, ['--site', 'a.localhost', 'set-config', 'dsn', 'postgres://app:s3cr3t@db/app'])
    const masked = await tenancy(bench, ['show-config', '--site', 'a.localhost', '--json'])
    expect(masked.json.zip).toBe('01234')
    expect(masked.json.dsn).toBe('postgres://app:********@db/app')
    const global = await tenancy(bench, ['set-config', '-g', 'pending.count', '3'])
    expect(global.exitCode).toBe(0)
    expect(JSON.parse(readFileSync(join(bench, 'tenancy.config.json'), 'utf8')).pending.count).toBe(3)
    const bad = await tenancy(bench, ['set-config', '-g', 'db.type', 'oracle'])
    expect(bad.exitCode).toBe(2)
    expect(bad.stderr).toMatch(/cannot set "db.type" to "oracle": it must be one of/)
    expect(JSON.parse(readFileSync(join(bench, 'tenancy.config.json'), 'utf8')).db.type).toBe('sqlite')
    const managed = await tenancy(bench, ['set-config', 'db_name', 'x', '--site', 'a.localhost'])
    expect(managed.exitCode).toBe(2)
    const neither = await tenancy(bench, ['set-config', 'x', '1'])
    expect(neither.exitCode).toBe(2)
    expect(neither.stderr).toMatch(/needs --site SITE \(or a default site: "tenancy use SITE"\), or --global/)
  })

  it('names file, line and column of a malformed config, and a bad value, with exit 2', async () => {
    const bench = makeBench({ exampleApps: false })
    writeFileSync(join(bench, 'tenancy.config.json'), '{\n  "db": {\n    "type": "sqlite"\n  \n')
    const r = await tenancy(bench, ['list-sites'])
    expect(r.exitCode).toBe(2)
    expect(r.stderr).toMatch(/malformed JSON in .*tenancy\.config\.json at line \d+, column \d+/)
    writeFileSync(join(bench, 'tenancy.config.json'), '{"pending": {"count": "five"}}')
    const v = await tenancy(bench, ['list-sites'])
    expect(v.exitCode).toBe(2)
    expect(v.stderr).toMatch(/"pending\.count" must be a whole number from 0 to 100000 \(got "five"\)/)
    const none = await tenancy(tempDir(), ['list-sites'])
    expect(none.exitCode).toBe(2)
    expect(none.stderr).toMatch(/no tenancy\.config\.json found/)
  })
})

describe('users and API keys', () => {
  it('add-system-manager is idempotent; generate-keys keeps the key and rotates the secret; verify-key reads stdin', async () => {
    const bench = makeBench({ exampleApps: false })
    await tenancy(bench, ['new-site', 'a.localhost'])
    const created = await tenancy(bench, [
      'add-system-manager',
      'api@a.localhost',
      '--site',
      'a.localhost',
      '--first-name',
      'Platform',
      '--last-name',
      'API',
      '--json',
    ])
    expect(created.json).toEqual({ site: 'a.localhost', email: 'api@a.localhost', created: true, role_added: true })
    const again = await tenancy(bench, ['add-system-manager', 'API@A.localhost', '--site', 'a.localhost', '--json'])
    expect(again.json).toEqual({ site: 'a.localhost', email: 'api@a.localhost', created: false, role_added: false })
    const noUser = await tenancy(bench, ['generate-keys', 'who@a.localhost', '--site', 'a.localhost'])
    expect(noUser.exitCode).toBe(2)
    expect(noUser.stderr).toMatch(/add-system-manager/)

    const one = await tenancy(bench, ['generate-keys', 'api@a.localhost', '--site', 'a.localhost'])
    expect(one.exitCode).toBe(0)
    const k1 = JSON.parse(one.stdout)
    expect(Object.keys(k1)).toEqual(['api_key', 'api_secret'])
    const k2 = (await tenancy(bench, ['generate-keys', 'api@a.localhost', '--site', 'a.localhost', '--json'])).json
    expect(k2.api_key).toBe(k1.api_key)
    expect(k2.api_secret).not.toBe(k1.api_secret)

    const good = await tenancy(bench, ['verify-key', k2.api_key, '--site', 'a.localhost', '--json'], {
      input: `${k2.api_secret}\n`,
    })
    expect(good.exitCode).toBe(0)
    expect(good.json).toEqual({ valid: true, user: 'api@a.localhost' })
    const old = await tenancy(bench, ['verify-key', k1.api_key, '--site', 'a.localhost'], { input: k1.api_secret })
    expect(old.exitCode).toBe(1)
    const wrongKey = await tenancy(bench, ['verify-key', 'nokey', '--site', 'a.localhost'], { input: k2.api_secret })
    expect(wrongKey.exitCode).toBe(1)

    const db = siteDb(bench, 'a.localhost')
    const row = db.prepare('select secret_hash from api_keys').get() as any
    db.close()
    expect(row.secret_hash).not.toContain(k2.api_secret)
    const roles = new Database(join(bench, 'sites', 'a.localhost', 'db.sqlite'), { readonly: true })
    expect(roles.prepare("select role from user_roles where user_name = 'api@a.localhost'").all()).toEqual([
      { role: 'System Manager' },
    ])
    roles.close()
  })
})

describe('output', () => {
  it('--json prints an error document on stdout when a command fails', async () => {
    const bench = makeBench()
    const r = await tenancy(bench, ['drop-site', 'nope.localhost', '--yes', '--json'])
    expect(r.exitCode).toBe(2)
    expect(r.json).toEqual({
      error: { message: expect.stringMatching(/site "nope.localhost" does not exist/), exit_code: 2 },
    })
    const usage = await tenancy(bench, ['list-sites', '--bogus', '--json'])
    expect(usage.exitCode).toBe(2)
    expect(usage.json.error.exit_code).toBe(2)
  })

  it('--json prints exactly one document on stdout for every command; messages go to stderr', async () => {
    const bench = makeBench()
    const commands = [
      ['new-site', 'a.localhost', '--install-app', 'shared_lib'],
      ['list-sites'],
      ['list-apps'],
      ['list-apps', '--site', 'a.localhost'],
      ['install-app', 'tenant_ops', '--site', 'a.localhost'],
      ['set-config', 'x', '1', '--site', 'a.localhost'],
      ['show-config', '--site', 'a.localhost'],
      ['add-system-manager', 'u@a.localhost', '--site', 'a.localhost'],
      ['generate-keys', 'u@a.localhost', '--site', 'a.localhost'],
      ['drop-site', 'a.localhost', '--yes'],
    ]
    for (const args of commands) {
      const r = await tenancy(bench, [...args, '--json'])
      expect(r.exitCode, `${args.join(' ')}: ${r.stderr}`).toBe(0)
      expect(() => JSON.parse(r.stdout), args.join(' ')).not.toThrow()
    }
  })

  it('prints no colour codes with NO_COLOR or without a terminal, and no stack trace without --verbose', async () => {
    const bench = makeBench()
    const r = await tenancy(bench, ['new-site', 'a.localhost', '--install-app', 'tenant_ops'])
    expect(r.stderr).not.toMatch(/\u001b\[/)
    const bad = await tenancy(bench, ['install-app', 'x', '--site', 'zzz.localhost'])
    expect(bad.stderr.trim().split('\n')).toHaveLength(1)
    const verbose = await tenancy(bench, ['install-app', 'x', '--site', 'zzz.localhost', '--verbose'])
    expect(verbose.stderr).toMatch(/TenancyError/)
  })

  it('stops quietly when the reader of its output goes away (| head)', async () => {
    const { execa } = await import('execa')
    const { BIN } = await import('./helpers.js')
    const r = await execa('sh', ['-c', `"${process.execPath}" "${BIN}" --help | head -1`], { reject: false })
    expect(r.stdout).toMatch(/^Usage: tenancy/)
    expect(r.stderr).toBe('')
  })

  it('answers --version and --help with exit 0 and unknown commands or flags with exit 2', async () => {
    const dir = tempDir()
    const version = await tenancy(dir, ['--version'])
    expect(version.exitCode).toBe(0)
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/)
    expect((await tenancy(dir, ['--help'])).exitCode).toBe(0)
    expect((await tenancy(dir, ['frobnicate'])).exitCode).toBe(2)
    expect((await tenancy(dir, ['list-sites', '--nope'])).exitCode).toBe(2)
  })

  it("commander's usage errors are one line naming where the usage is, or what was meant", async () => {
    const dir = tempDir()
    const cases: [string[], string][] = [
      [['tenant', 'show'], `error: missing required argument 'name' (see "tenancy tenant show --help")`],
      [['list-sites', '--nope'], `error: unknown option '--nope' (see "tenancy list-sites --help")`],
      [['list-sites', '--limt', '3'], `error: unknown option '--limt' (did you mean --limit?)`],
      [['tenant', 'creat', 'x'], `error: unknown command 'creat' (did you mean create?)`],
      [['frobnicate'], `error: unknown command 'frobnicate' (see "tenancy --help")`],
      [['help', 'frobnicate'], `error: unknown command 'frobnicate' (see "tenancy --help")`],
    ]
    for (const [args, says] of cases) {
      const r = await tenancy(dir, args)
      expect(r.exitCode, args.join(' ')).toBe(2)
      expect(r.stderr.trim(), args.join(' ')).toBe(says)
      expect(r.stdout, args.join(' ')).toBe('')
    }
  })
})
