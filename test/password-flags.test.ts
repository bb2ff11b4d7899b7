// Bench's password flags (SPEC §2, §11): `--admin-password`, `--db-root-password` and its alias
// `--mariadb-root-password` work on every command where bench has them, each with a warning
// that other users can read argv, and the password itself printed nowhere.
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { checkPassword, usingBench } from '../src/index.js'
import { enabled, serverHas, serverUrl, siteConfig, useBackend } from './backends.js'
import { cleanEnv, makeBench, tempDir, tenancy } from './helpers.js'

const ARGV_WARNING =
  /warning: --(db-root|mariadb-root|admin)-password puts a password on the command line, where other users of this machine can read it/

const logIn = (bench: string, site: string, password: string) =>
  usingBench({ cwd: bench, env: cleanEnv() }, (b) => checkPassword(b, { site, email: 'Administrator', password }))

describe("bench's password flags", () => {
  it('are declared where bench has them: new-site, drop-site and restore (and tenant delete, pending-clear)', async () => {
    const bench = makeBench({ exampleApps: false })
    const commands: [string[], { admin: boolean }][] = [
      [['new-site'], { admin: true }],
      [['drop-site'], { admin: false }],
      [['restore'], { admin: true }],
      [['tenant', 'delete'], { admin: false }],
      [['pending-clear'], { admin: false }],
    ]
    for (const [command, { admin }] of commands) {
      const help = (await tenancy(bench, [...command, '--help'])).stdout
      const name = command.join(' ')
      expect(help, name).toMatch(/--db-root-password <password>/)
      expect(help, name).toMatch(/--db-root-password-file <file>/)
      expect(help.includes('--admin-password <password>'), name).toBe(admin)
      // The alias is accepted (below), not advertised.
      expect(help, name).not.toContain('--mariadb-root-password')
    }
  })

  it.skipIf(!enabled('mariadb'))(
    'reach the server: new-site --db-root-password and drop-site --mariadb-root-password, with the warning',
    async () => {
      const bench = makeBench({ exampleApps: false })
      useBackend(bench, 'mariadb')
      const password = decodeURIComponent(new URL(serverUrl('mariadb')).password)
      // No TENANCY_DB_ROOT_PASSWORD: the flag is the only place the password is.
      const made = await tenancy(bench, ['new-site', 'm.localhost', '--db-root-password', password, '--json'])
      expect(made.exitCode, made.stderr).toBe(0)
      expect(made.stderr).toMatch(ARGV_WARNING)
      const db = siteConfig(bench, 'm.localhost').db_name as string
      expect(await serverHas('mariadb', db)).toEqual({ database: true, user: true })
      const dropped = await tenancy(bench, ['drop-site', 'm.localhost', '--yes', '--mariadb-root-password', password])
      expect(dropped.exitCode, dropped.stderr).toBe(0)
      expect(dropped.stderr).toMatch(/warning: --mariadb-root-password puts a password on the command line/)
      expect(await serverHas('mariadb', db)).toEqual({ database: false, user: false })
    },
  )

  it("restore --admin-password sets the restored site's Administrator password, as bench's does", async () => {
    const bench = makeBench({ exampleApps: false })
    const first = join(tempDir(), 'admin-pw')
    writeFileSync(first, 'first-Admin-pw\n')
    expect((await tenancy(bench, ['new-site', 'a.localhost', '--admin-password-file', first])).exitCode).toBe(0)
    const backup = await tenancy(bench, ['backup', '--site', 'a.localhost', '--json'])
    expect(backup.exitCode, backup.stderr).toBe(0)
    const set = JSON.stringify(backup.json).match(/"(\/[^"]+\/backups\/a\.localhost\/[^"]+)"/)![1]!

    // Without the flag the backup's password stays, even with TENANCY_ADMIN_PASSWORD set (that is for new sites).
    const plain = await tenancy(bench, ['restore', 'a.localhost', set, '--yes', '--json'], {
      env: { TENANCY_ADMIN_PASSWORD: 'from-env' },
    })
    expect(plain.exitCode, plain.stderr).toBe(0)
    expect(plain.json.admin_password_set).toBe(false)
    expect(await logIn(bench, 'a.localhost', 'first-Admin-pw')).toBe(true)

    const secret = 'second-Admin-pw'
    const r = await tenancy(bench, ['restore', 'a.localhost', set, '--yes', '--admin-password', secret, '--json'])
    expect(r.exitCode, r.stderr).toBe(0)
    expect(r.stderr).toMatch(ARGV_WARNING)
    expect(r.json.admin_password_set).toBe(true)
    expect(r.stdout + r.stderr).not.toContain(secret)
    expect(await logIn(bench, 'a.localhost', secret)).toBe(true)
    expect(await logIn(bench, 'a.localhost', 'first-Admin-pw')).toBe(false)

    // A file that cannot be read, or an empty password, stops the restore before anything changes.
    const before = readFileSync(join(bench, 'sites', 'a.localhost', 'site_config.json'), 'utf8')
    const missing = await tenancy(bench, ['restore', 'a.localhost', set, '--yes', '--admin-password-file', '/nope'])
    expect(missing.exitCode).toBe(2)
    expect(missing.stderr).toMatch(
      /cannot read admin password from --admin-password-file "\/nope": no such file; check the path/,
    )
    const empty = await tenancy(bench, ['restore', 'a.localhost', set, '--yes', '--admin-password', ''])
    expect(empty.exitCode).toBe(2)
    expect(empty.stderr).toMatch(/the admin password from --admin-password is empty/)
    expect(readFileSync(join(bench, 'sites', 'a.localhost', 'site_config.json'), 'utf8')).toBe(before)
    expect(await logIn(bench, 'a.localhost', secret)).toBe(true)
  })

  it("set-admin-password's positional password (bench's form) works, with the warning", async () => {
    const bench = makeBench({ exampleApps: false })
    expect((await tenancy(bench, ['new-site', 'b.localhost'])).exitCode).toBe(0)
    const r = await tenancy(bench, ['--site', 'b.localhost', 'set-admin-password', 'Third-pw'])
    expect(r.exitCode, r.stderr).toBe(0)
    expect(r.stderr).toMatch(/warning: the password argument puts a password on the command line/)
    expect(await logIn(bench, 'b.localhost', 'Third-pw')).toBe(true)
  })
})
