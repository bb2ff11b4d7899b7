import { existsSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { makeBench, setConfig, tenancy } from './helpers.js'
import { SITE_BACKENDS, asSite, useBackend } from './backends.js'
import { tableNames } from './restore-helpers.js'

// tenancy uninstall-app (SPEC §8): refused while required; backs up first; before_uninstall;
// every applied migration's down, newest first; no table of the app left behind.

describe.each(SITE_BACKENDS)('uninstall-app on $name', ({ name: backend, skip }) => {
  describe.skipIf(skip)('', () => {
    it('a leaf app leaves no table of it behind, after a backup and its before_uninstall hook', async () => {
      const bench = makeBench()
      const env = useBackend(bench, backend)
      expect((await tenancy(bench, ['new-site', 'u.localhost', '--install-app', 'shared_lib'], { env })).exitCode).toBe(
        0,
      )
      const before = await tableNames(bench, 'u.localhost')
      const add = await tenancy(bench, ['install-app', 'tenant_ops', '--site', 'u.localhost'], { env })
      expect(add.exitCode, add.stderr).toBe(0)
      expect((await tableNames(bench, 'u.localhost')).length).toBeGreaterThan(before.length)

      const refused = await tenancy(bench, ['uninstall-app', 'shared_lib', '--site', 'u.localhost', '--yes'], { env })
      expect(refused.exitCode).toBe(2)
      expect(refused.stderr).toMatch(
        /app "tenant_ops" on site "u\.localhost" requires "shared_lib"; uninstall "tenant_ops" first/,
      )

      const r = await tenancy(bench, ['uninstall-app', 'tenant_ops', '--site', 'u.localhost', '--yes', '--json'], {
        env,
      })
      expect(r.exitCode, r.stderr).toBe(0)
      expect(r.json.reverted[0]).toBe('tenant_ops/0006_customer_billing_terms')
      expect(r.json.reverted).toHaveLength(6)
      expect(existsSync(join(r.json.backup, 'manifest.json'))).toBe(true)
      // tenant_ops's own before_uninstall hook cleaned what it had put in shared_lib's tables.
      expect(r.json.hook_output).toMatch(/tenant_ops: removed 1 tag link\(s\), 0 attachment\(s\) and \d+ setting\(s\)/)
      const audit = await asSite(
        bench,
        'u.localhost',
        "select count(*) as n from audit_log where action = 'app_uninstalled'",
      )
      expect(Number(audit.rows[0].n)).toBe(1)
      expect(await tableNames(bench, 'u.localhost')).toEqual(before)
      const rows = await asSite(
        bench,
        'u.localhost',
        "select count(*) as n from tenancy_migrations where app = 'tenant_ops'",
      )
      expect(Number(rows.rows[0].n)).toBe(0)
      const apps = await tenancy(bench, ['list-apps', '--site', 'u.localhost', '--json'], { env })
      expect(JSON.stringify(apps.json)).not.toContain('tenant_ops')
      // And it installs again, whole.
      const again = await tenancy(bench, ['install-app', 'tenant_ops', '--site', 'u.localhost'], { env })
      expect(again.exitCode, again.stderr).toBe(0)
    })
  })
})

describe('uninstall-app refusals', () => {
  it('not installed, unknown, no --site, a failing backup: exit with nothing changed; --no-backup takes none', async () => {
    const bench = makeBench()
    expect((await tenancy(bench, ['new-site', 'v.localhost', '--install-app', 'tenant_ops'])).exitCode).toBe(0)
    const tables = await tableNames(bench, 'v.localhost')
    for (const [args, code, message] of [
      [['uninstall-app', 'nope', '--site', 'v.localhost', '--yes'], 2, /app "nope" is not in/],
      [['uninstall-app', 'tenant_ops', '--yes'], 2, /needs --site SITE/],
      [['uninstall-app', 'tenant_ops', '--site', 'v.localhost'], 2, /pass --yes/],
    ] as const) {
      const r = await tenancy(bench, [...args])
      expect(r.exitCode, r.stderr).toBe(code)
      expect(r.stderr).toMatch(message)
    }
    // A backup path that is a file: the backup fails, and so the uninstall changes nothing.
    writeFileSync(join(bench, 'not-a-dir'), 'x')
    setConfig(bench, (c) => (c.backups = { path: 'not-a-dir' }))
    const failed = await tenancy(bench, ['uninstall-app', 'tenant_ops', '--site', 'v.localhost', '--yes'])
    expect(failed.exitCode).toBe(1)
    expect(failed.stderr).toMatch(/backup of site "v\.localhost" failed: .*nothing was changed \(use --no-backup/)
    expect(await tableNames(bench, 'v.localhost')).toEqual(tables)
    const bare = await tenancy(bench, [
      'uninstall-app',
      'tenant_ops',
      '--site',
      'v.localhost',
      '--yes',
      '--no-backup',
      '--json',
    ])
    expect(bare.exitCode, bare.stderr).toBe(0)
    expect(bare.json.backup).toBeNull()
    const again = await tenancy(bench, ['uninstall-app', 'tenant_ops', '--site', 'v.localhost', '--yes'])
    expect(again.exitCode).toBe(2)
    expect(again.stderr).toMatch(/app "tenant_ops" is not installed on site "v\.localhost"/)
  })
})
