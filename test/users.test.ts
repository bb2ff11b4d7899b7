import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { describe, expect, it } from 'vitest'
import { checkPassword, usingBench } from '../src/index.js'
import { loadSecretBox } from '../src/secrets/secret-box.js'
import { cleanEnv, makeBench, setConfig, spawnTenancy, tenancy } from './helpers.js'
import { SITE_BACKENDS, asSite, registryRows, serverQuery, siteConfig, useBackend } from './backends.js'

// SPEC §9: add-user with roles and a password (add-system-manager its idempotent special case),
// set-admin-password for a site and its tenant's stored copy, and a log-in check through the
// stored hash. Passwords reach no argv, environment or output but the one generated and shown.

/** The log-in check of the library, as application code would make it. */
function logIn(bench: string, site: string, email: string, password: string): Promise<boolean> {
  return usingBench({ cwd: bench, env: cleanEnv() }, (b) => checkPassword(b, { site, email, password }))
}

/** The tenant's stored admin password, decrypted with the bench's key. */
async function storedAdminPassword(bench: string, tenant: string): Promise<string> {
  const [row] = await registryRows(bench, 'select admin_password_enc from tenants where name = ?', tenant)
  return loadSecretBox(join(bench, '.tenancy', 'secret.key'), {}).decrypt(row.admin_password_enc)
}

const rolesOf = async (bench: string, site: string, user: string) =>
  (await asSite(bench, site, `select role from user_roles where user_name = '${user}' order by role`)).rows.map(
    (r) => r.role,
  )

describe.each(SITE_BACKENDS)('users on $name sites', ({ name, skip }) => {
  it.skipIf(skip)(
    'add-user with two roles, duplicates refused, add-system-manager, set-admin-password then log-in',
    async () => {
      const bench = makeBench({ exampleApps: false })
      const env = { ...useBackend(bench, name), TENANCY_ADMIN_PASSWORD: 'first-admin-pw' }
      expect((await tenancy(bench, ['new-site', 'u.localhost', '--json'], { env })).exitCode).toBe(0)

      const file = join(bench, 'pw.txt')
      writeFileSync(file, 'ann-secret-pw\n')
      const add = await tenancy(
        bench,
        [
          'add-user',
          'Ann@Example.com',
          '--site',
          'u.localhost',
          '--role',
          'System Manager',
          '--role',
          'Guest',
          '--first-name',
          'Ann',
          '--password-file',
          file,
          '--json',
        ],
        { env },
      )
      expect(add.exitCode, add.stderr).toBe(0)
      expect(add.json).toEqual({ site: 'u.localhost', email: 'ann@example.com', roles: ['System Manager', 'Guest'] })
      expect(add.stdout + add.stderr).not.toContain('ann-secret-pw')
      expect(await rolesOf(bench, 'u.localhost', 'ann@example.com')).toEqual(['Guest', 'System Manager'])
      const [ann] = (await asSite(bench, 'u.localhost', "select * from users where name = 'ann@example.com'")).rows
      expect(ann).toMatchObject({ email: 'ann@example.com', first_name: 'Ann', last_name: null })
      expect(ann.password_hash).toMatch(/^scrypt\$/)
      expect(await logIn(bench, 'u.localhost', 'ann@example.com', 'ann-secret-pw')).toBe(true)
      expect(await logIn(bench, 'u.localhost', 'ANN@example.com', 'ann-secret-pw')).toBe(true)
      expect(await logIn(bench, 'u.localhost', 'ann@example.com', 'ann-secret-PW')).toBe(false)
      expect(await logIn(bench, 'u.localhost', 'nobody@example.com', 'ann-secret-pw')).toBe(false)

      // The same email (in any case) again: exit 2, the user as it was.
      const again = await tenancy(bench, ['add-user', 'ann@EXAMPLE.com', '--site', 'u.localhost', '--role', 'All'], {
        env: { ...env, TENANCY_USER_PASSWORD: 'other-pw' },
      })
      expect(again.exitCode).toBe(2)
      expect(again.stderr).toMatch(/user "ann@example.com" already exists on site "u.localhost"/)
      expect(await rolesOf(bench, 'u.localhost', 'ann@example.com')).toEqual(['Guest', 'System Manager'])
      expect(await logIn(bench, 'u.localhost', 'ann@example.com', 'ann-secret-pw')).toBe(true)

      // add-system-manager: unchanged output; over an add-user user it adds the role and keeps the password.
      const sm = await tenancy(bench, ['add-system-manager', 'api@u.localhost', '--site', 'u.localhost', '--json'], {
        env,
      })
      expect(sm.json).toEqual({ site: 'u.localhost', email: 'api@u.localhost', created: true, role_added: true })
      const smAgain = await tenancy(
        bench,
        ['add-system-manager', 'api@u.localhost', '--site', 'u.localhost', '--last-name', 'API', '--json'],
        { env },
      )
      expect(smAgain.json).toEqual({ site: 'u.localhost', email: 'api@u.localhost', created: false, role_added: false })
      expect(await rolesOf(bench, 'u.localhost', 'api@u.localhost')).toEqual(['System Manager'])
      expect(
        (await tenancy(bench, ['add-user', 'bo@example.com', '--site', 'u.localhost', '--json'], { env })).exitCode,
      ).toBe(0)
      const promote = await tenancy(
        bench,
        ['add-system-manager', 'bo@example.com', '--site', 'u.localhost', '--json'],
        {
          env,
        },
      )
      expect(promote.json).toEqual({ site: 'u.localhost', email: 'bo@example.com', created: false, role_added: true })
      expect(await rolesOf(bench, 'u.localhost', 'bo@example.com')).toEqual(['System Manager'])

      // set-admin-password: the new one logs in, the old one no longer does.
      expect(await logIn(bench, 'u.localhost', 'Administrator', 'first-admin-pw')).toBe(true)
      const set = await tenancy(bench, ['set-admin-password', '--site', 'u.localhost', '--json'], {
        env: { ...env, TENANCY_ADMIN_PASSWORD: 'second-admin-pw' },
      })
      expect(set.exitCode, set.stderr).toBe(0)
      expect(set.json).toEqual({
        site: 'u.localhost',
        user: 'Administrator',
        tenant: null,
        tenant_password_updated: false,
      })
      expect(set.stdout + set.stderr).not.toContain('second-admin-pw')
      expect(await logIn(bench, 'u.localhost', 'Administrator', 'second-admin-pw')).toBe(true)
      expect(await logIn(bench, 'u.localhost', 'Administrator', 'first-admin-pw')).toBe(false)
    },
  )
})

describe('add-user', () => {
  it('generates a password shown once when none is given, and takes one from the environment', async () => {
    const bench = makeBench({ exampleApps: false })
    await tenancy(bench, ['new-site', 'a.localhost'])
    const generated = await tenancy(bench, ['add-user', 'gen@example.com', '--site', 'a.localhost', '--json'])
    expect(generated.exitCode, generated.stderr).toBe(0)
    expect(generated.json.roles).toEqual([])
    expect(generated.json.password).toMatch(/^[A-Za-z0-9_-]{20,}$/)
    expect(await logIn(bench, 'a.localhost', 'gen@example.com', generated.json.password)).toBe(true)
    const human = await tenancy(bench, ['add-user', 'gen2@example.com', '--site', 'a.localhost', '--add-role', 'Guest'])
    expect(human.exitCode).toBe(0)
    expect(human.stdout).toMatch(
      /^Created gen2@example.com on a.localhost with the roles Guest\nPassword \(generated; shown only now\): \S{20,}$/m,
    )

    const fromEnv = await tenancy(bench, ['add-user', 'env@example.com', '--site', 'a.localhost'], {
      env: { TENANCY_USER_PASSWORD: 'env-user-pw' },
    })
    expect(fromEnv.exitCode).toBe(0)
    expect(fromEnv.stdout + fromEnv.stderr).not.toContain('env-user-pw')
    expect(fromEnv.stdout).not.toMatch(/Password/)
    expect(await logIn(bench, 'a.localhost', 'env@example.com', 'env-user-pw')).toBe(true)

    // --password works, with the warning that argv is readable by others; the value is not echoed.
    const typed = await tenancy(bench, [
      'add-user',
      'flag@example.com',
      '--site',
      'a.localhost',
      '--password',
      'typed-pw',
    ])
    expect(typed.exitCode).toBe(0)
    expect(typed.stderr).toMatch(
      /warning: --password puts a password on the command line.*--password-file or TENANCY_USER_PASSWORD/,
    )
    expect(typed.stdout + typed.stderr).not.toContain('typed-pw')
    expect(await logIn(bench, 'a.localhost', 'flag@example.com', 'typed-pw')).toBe(true)
  })

  it('refuses a bad email, an empty, unknown or Administrator role and an empty password with exit 2, adding nobody', async () => {
    const bench = makeBench({ exampleApps: false })
    await tenancy(bench, ['new-site', 'a.localhost'])
    const users = () =>
      new Database(join(bench, 'sites', 'a.localhost', 'db.sqlite'), { readonly: true })
        .prepare('select name from users order by name')
        .all()
    const before = users()
    const cases: [string[], RegExp, Record<string, string>?][] = [
      [['add-user', 'not-an-email'], /invalid email "not-an-email"/],
      [['add-user', 'Administrator'], /"Administrator" already has every role/],
      [['add-user', 'x@example.com', '--role', '  '], /empty --role/],
      [['add-user', 'x@example.com', '--role', 'Guest', '--role', ''], /empty --role/],
      [
        ['add-user', 'x@example.com', '--role', 'system manager'],
        /role "system manager" does not exist on site "a.localhost"; give one of: All, Guest, System Manager/,
      ],
      [
        ['add-user', 'x@example.com', '--role', 'Administrator'],
        /Administrator role belongs to the Administrator user/,
      ],
      [['add-user', 'x@example.com'], /password from TENANCY_USER_PASSWORD is empty/, { TENANCY_USER_PASSWORD: '' }],
      [
        ['add-user', 'x@example.com', '--password-file', join(bench, 'missing')],
        /cannot read password for x@example.com from --password-file/,
      ],
      [['add-user', 'x@example.com', '--first-name', 'x'.repeat(141)], /--first-name is 141 characters long/],
      [['add-user', 'x@example.com', '--site', 'nope.localhost'], /site "nope.localhost" does not exist/],
    ]
    for (const [args, message, env] of cases) {
      const r = await tenancy(bench, [...(args.includes('--site') ? [] : ['--site', 'a.localhost']), ...args], { env })
      expect(r.exitCode, `${args.join(' ')}: ${r.stderr}`).toBe(2)
      expect(r.stderr, args.join(' ')).toMatch(message)
      expect(r.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1)
    }
    expect(users()).toEqual(before)
  })

  it('acts on the default site of "tenancy use" when --site is left out', async () => {
    const bench = makeBench({ exampleApps: false })
    await tenancy(bench, ['new-site', 'a.localhost'])
    await tenancy(bench, ['new-site', 'b.localhost'])
    const none = await tenancy(bench, ['add-user', 'd@example.com'])
    expect(none.exitCode).toBe(2)
    expect(none.stderr).toMatch(/needs --site SITE \(or a default site: "tenancy use SITE"\)/)
    expect((await tenancy(bench, ['use', 'b.localhost'])).exitCode).toBe(0)
    const r = await tenancy(bench, ['add-user', 'd@example.com', '--role', 'Guest', '--json'])
    expect(r.json).toMatchObject({ site: 'b.localhost', email: 'd@example.com' })
    const set = await tenancy(bench, ['set-admin-password', '--json'], { env: { TENANCY_ADMIN_PASSWORD: 'b-admin' } })
    expect(set.json.site).toBe('b.localhost')
    expect(await logIn(bench, 'b.localhost', 'd@example.com', r.json.password)).toBe(true)
    expect(await logIn(bench, 'a.localhost', 'd@example.com', r.json.password)).toBe(false)
    expect(await logIn(bench, 'b.localhost', 'Administrator', 'b-admin')).toBe(true)
  })
})

describe('set-admin-password', () => {
  it("replaces the tenant's stored copy too; takes a file or the argument (warned); refuses empty and missing", async () => {
    const bench = makeBench({ exampleApps: false })
    const created = await tenancy(bench, ['tenant', 'create', 'acme', '--json'])
    expect(created.exitCode, created.stderr).toBe(0)
    const original = await storedAdminPassword(bench, 'acme')
    expect(await logIn(bench, 'acme.localhost', 'Administrator', original)).toBe(true)

    const file = join(bench, 'admin.txt')
    writeFileSync(file, 'file-admin-pw\n')
    const set = await tenancy(bench, ['set-admin-password', '--site', 'acme.localhost', '--password-file', file])
    expect(set.exitCode, set.stderr).toBe(0)
    expect(set.stdout).toBe('Set the Administrator password of acme.localhost and the copy stored for tenant acme')
    expect(set.stdout + set.stderr).not.toContain('file-admin-pw')
    expect(await storedAdminPassword(bench, 'acme')).toBe('file-admin-pw')
    const show = await tenancy(bench, ['tenant', 'show', 'acme', '--show-secrets', '--json'])
    expect(show.json.admin_password).toBe('file-admin-pw')
    expect(await logIn(bench, 'acme.localhost', 'Administrator', 'file-admin-pw')).toBe(true)
    expect(await logIn(bench, 'acme.localhost', 'Administrator', original)).toBe(false)
    // Not in the registry's files in plain text.
    for (const name of readdirSync(join(bench, '.tenancy')))
      expect(readFileSync(join(bench, '.tenancy', name)).includes(Buffer.from('file-admin-pw')), name).toBe(false)

    const typed = await tenancy(bench, ['set-admin-password', 'typed-admin-pw', '--site', 'acme.localhost', '--json'])
    expect(typed.exitCode).toBe(0)
    expect(typed.json.tenant_password_updated).toBe(true)
    expect(typed.stderr).toMatch(/warning: the password argument puts a password on the command line/)
    expect(typed.stdout).not.toContain('typed-admin-pw')
    expect(await storedAdminPassword(bench, 'acme')).toBe('typed-admin-pw')

    const empty = await tenancy(bench, ['set-admin-password', '--site', 'acme.localhost'], {
      env: { TENANCY_ADMIN_PASSWORD: '' },
    })
    expect(empty.exitCode).toBe(2)
    expect(empty.stderr).toMatch(/password from TENANCY_ADMIN_PASSWORD is empty/)
    const missing = await tenancy(bench, ['set-admin-password', '--site', 'acme.localhost'])
    expect(missing.exitCode).toBe(2)
    expect(missing.stderr).toMatch(/looked in --password-file FILE, the TENANCY_ADMIN_PASSWORD environment variable/)
    const noSite = await tenancy(bench, ['set-admin-password', '--site', 'zz.localhost'], {
      env: { TENANCY_ADMIN_PASSWORD: 'x' },
    })
    expect(noSite.exitCode).toBe(2)
    expect(await storedAdminPassword(bench, 'acme')).toBe('typed-admin-pw')
    expect(await logIn(bench, 'acme.localhost', 'Administrator', 'typed-admin-pw')).toBe(true)
  })

  it('killed between the stored copy and the site: the copy holds the new password, and running it again finishes', async () => {
    const bench = makeBench({ exampleApps: false })
    expect((await tenancy(bench, ['tenant', 'create', 'acme'])).exitCode).toBe(0)
    const original = await storedAdminPassword(bench, 'acme')
    const env = { TENANCY_ADMIN_PASSWORD: 'after-crash-pw' }
    const killed = await tenancy(bench, ['set-admin-password', '--site', 'acme.localhost'], {
      env: { ...env, TENANCY_FAULT: 'admin-password-before-site-commit' },
    })
    expect(killed.exitCode).not.toBe(0)
    expect(await storedAdminPassword(bench, 'acme')).toBe('after-crash-pw')
    expect(await logIn(bench, 'acme.localhost', 'Administrator', original)).toBe(true)
    const again = await tenancy(bench, ['set-admin-password', '--site', 'acme.localhost'], { env })
    expect(again.exitCode, again.stderr).toBe(0)
    expect(await logIn(bench, 'acme.localhost', 'Administrator', 'after-crash-pw')).toBe(true)
    expect(await logIn(bench, 'acme.localhost', 'Administrator', original)).toBe(false)
  })

  it.skipIf(SITE_BACKENDS.find((b) => b.name === 'postgres')!.skip)(
    'a PostgreSQL site whose commit fails: the stored copy is put back; unreachable after it: told to run again',
    async () => {
      const bench = makeBench({ exampleApps: false })
      const env = useBackend(bench, 'postgres')
      expect((await tenancy(bench, ['tenant', 'create', 'acme'], { env })).exitCode).toBe(0)
      const original = await storedAdminPassword(bench, 'acme')
      const user = siteConfig(bench, 'acme.localhost').db_user as string
      expect(user).toMatch(/^[a-z0-9_]+$/)
      const stored = async () => (await registryRows(bench, 'select admin_password_enc as e from tenants'))[0].e
      const before = await stored()

      /** Runs set-admin-password paused after the registry write, does `fault` then, and returns the result. */
      const withFault = async (password: string, fault: string[]) => {
        const child = spawnTenancy(bench, ['set-admin-password', '--site', 'acme.localhost', '--json'], {
          ...env,
          TENANCY_ADMIN_PASSWORD: password,
          TENANCY_FAULT: 'pause:admin-password-before-site-commit',
        })
        const seen = before
        for (let i = 0; (await stored()) === seen; i++) {
          if (i > 2000) throw new Error('the registry write never came')
          await new Promise((r) => setTimeout(r, 20))
        }
        for (const sql of fault) {
          const r = await serverQuery('postgres', sql)
          expect(r.error).toBeUndefined()
        }
        const r = await child
        return { exitCode: r.exitCode, json: JSON.parse(String(r.stdout)), stderr: String(r.stderr) }
      }

      // The site's connection is cut before its commit: nothing changed on either side.
      const cut = await withFault('cut-pw', [
        `select pg_terminate_backend(pid) from pg_stat_activity where usename = '${user}'`,
      ])
      expect(cut.exitCode, cut.stderr).toBe(1)
      expect(cut.json.error.message).not.toContain('cut-pw')
      expect(await stored()).toBe(before)
      expect(await logIn(bench, 'acme.localhost', 'Administrator', original)).toBe(true)
      expect(await logIn(bench, 'acme.localhost', 'Administrator', 'cut-pw')).toBe(false)

      // Cut and refused new connections: what the site has cannot be known, so the error says to run again.
      const refused = await withFault('refused-pw', [
        `alter role "${user}" nologin`,
        `select pg_terminate_backend(pid) from pg_stat_activity where usename = '${user}'`,
      ])
      await serverQuery('postgres', `alter role "${user}" login`)
      expect(refused.exitCode).toBe(1)
      expect(refused.json.error.message).toMatch(
        /tenant "acme" already stores the new one: run "tenancy set-admin-password --site acme.localhost" again/,
      )
      expect(refused.json.error.message).not.toContain('refused-pw')
      expect(await storedAdminPassword(bench, 'acme')).toBe('refused-pw')
      const again = await tenancy(bench, ['set-admin-password', '--site', 'acme.localhost'], {
        env: { ...env, TENANCY_ADMIN_PASSWORD: 'refused-pw' },
      })
      expect(again.exitCode, again.stderr).toBe(0)
      expect(await logIn(bench, 'acme.localhost', 'Administrator', 'refused-pw')).toBe(true)
      expect(await logIn(bench, 'acme.localhost', 'Administrator', original)).toBe(false)
    },
  )
})

describe('passwords and child processes', () => {
  it('no password reaches the argv, environment or stdin of a child the commands start (a notify command)', async () => {
    const bench = makeBench({ exampleApps: false })
    writeFileSync(
      join(bench, 'record.mjs'),
      `import { appendFileSync, readFileSync } from 'node:fs'
const read = (p) => { try { return readFileSync(p, 'utf8') } catch { return '' } }
appendFileSync('calls.jsonl', JSON.stringify({ seen: read('/proc/self/environ') + read('/proc/self/cmdline') + read(0) }) + '\\n')
`,
    )
    setConfig(bench, (c) => (c.provision.notify = { run: `"${process.execPath}" record.mjs` }))
    expect((await tenancy(bench, ['tenant', 'create', 'acme'])).exitCode).toBe(0)
    const calls = () =>
      readFileSync(join(bench, 'calls.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line).seen as string)
    expect(calls()).toHaveLength(1)
    // The tenant's event made due again, so the next command's delivery starts the child.
    const due = () => {
      const db = new Database(join(bench, '.tenancy', 'registry.db'))
      db.prepare("update events set delivered_at = null, next_attempt_at = '2000-01-01T00:00:00.000Z'").run()
      db.close()
    }
    due()
    const file = join(bench, 'pw.txt')
    writeFileSync(file, 'file-secret-1\n')
    const set = await tenancy(bench, ['set-admin-password', '--site', 'acme.localhost', '--password-file', file])
    expect(set.exitCode, set.stderr).toBe(0)
    due()
    const env = await tenancy(bench, ['set-admin-password', '--site', 'acme.localhost'], {
      env: { TENANCY_ADMIN_PASSWORD: 'env-secret-2' },
    })
    expect(env.exitCode, env.stderr).toBe(0)
    due()
    const user = await tenancy(bench, ['add-user', 'u@example.com', '--site', 'acme.localhost', '--role', 'Guest'], {
      env: { TENANCY_USER_PASSWORD: 'env-secret-3' },
    })
    expect(user.exitCode, user.stderr).toBe(0)
    const seen = calls()
    expect(seen).toHaveLength(4)
    for (const secret of ['file-secret-1', 'env-secret-2', 'env-secret-3'])
      for (const call of seen) expect(call.includes(secret), secret).toBe(false)
    expect(seen[3]).toContain('tenant.active')
    expect(await logIn(bench, 'acme.localhost', 'u@example.com', 'env-secret-3')).toBe(true)
  })
})
