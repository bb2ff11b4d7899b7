import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { makeBench, tenancy } from './helpers.js'

// tenancy use (SPEC §8): the default site for commands that need one; TENANCY_SITE overrides it.

describe('tenancy use', () => {
  it('sets, shows and clears the default site; commands without --site act on it', async () => {
    const bench = makeBench({ exampleApps: false })
    for (const site of ['a.localhost', 'b.localhost'])
      expect((await tenancy(bench, ['new-site', site])).exitCode).toBe(0)
    expect((await tenancy(bench, ['use', '--json'])).json).toEqual({ site: null, from: null })
    const none = await tenancy(bench, ['backup'])
    expect(none.exitCode).toBe(2)
    expect(none.stderr).toMatch(/no default site: give --site S or --site all \(or set one with "tenancy use S"\)/)

    const set = await tenancy(bench, ['use', 'a.localhost', '--json'])
    expect(set.json).toEqual({ site: 'a.localhost', from: 'tenancy use' })
    expect(readFileSync(join(bench, '.tenancy', 'current-site'), 'utf8')).toBe('a.localhost\n')
    const backup = await tenancy(bench, ['backup', '--json'])
    expect(backup.exitCode, backup.stderr).toBe(0)
    expect(backup.json.sites.map((s: any) => s.site)).toEqual(['a.localhost'])
    const apps = await tenancy(bench, ['list-apps', '--json'])
    expect(apps.exitCode, apps.stderr).toBe(0)
    // --site and TENANCY_SITE win over the file.
    const named = await tenancy(bench, ['backup', '--site', 'b.localhost', '--json'])
    expect(named.json.sites.map((s: any) => s.site)).toEqual(['b.localhost'])
    const env = await tenancy(bench, ['backup', '--json'], { env: { TENANCY_SITE: 'b.localhost' } })
    expect(env.json.sites.map((s: any) => s.site)).toEqual(['b.localhost'])
    expect((await tenancy(bench, ['use', '--json'], { env: { TENANCY_SITE: 'b.localhost' } })).json).toEqual({
      site: 'b.localhost',
      from: 'TENANCY_SITE',
    })
    // new-site never takes the default: it makes a new one.
    const made = await tenancy(bench, ['new-site'])
    expect(made.exitCode).toBe(2)
    expect(made.stderr).toMatch(
      /"new-site" needs a site: tenancy new-site acme\.localhost \(it never takes the default/,
    )
    // Nor does drop-site: `drop-site $SITE --yes` with SITE unset drops nothing.
    const dropped = await tenancy(bench, ['drop-site', '--yes'])
    expect(dropped.exitCode).toBe(2)
    expect(dropped.stderr).toMatch(
      /"drop-site" needs a site: tenancy drop-site acme\.localhost \(it never takes the default/,
    )
    expect(existsSync(join(bench, 'sites', 'a.localhost'))).toBe(true)

    const unknown = await tenancy(bench, ['use', 'nope.localhost'])
    expect(unknown.exitCode).toBe(2)
    expect(readFileSync(join(bench, '.tenancy', 'current-site'), 'utf8')).toBe('a.localhost\n')
    const both = await tenancy(bench, ['use', 'a.localhost', '--clear'])
    expect(both.exitCode).toBe(2)
    expect((await tenancy(bench, ['use', '--clear', '--json'])).json).toEqual({ site: null, from: null })
    expect((await tenancy(bench, ['use', '--clear'])).stdout).toBe(
      'default site cleared: commands that need a site now need --site',
    )
    expect(existsSync(join(bench, '.tenancy', 'current-site'))).toBe(false)
    expect((await tenancy(bench, ['backup'])).exitCode).toBe(2)
  })

  it('dropping the default site clears the default', async () => {
    const bench = makeBench({ exampleApps: false })
    for (const site of ['a.localhost', 'b.localhost'])
      expect((await tenancy(bench, ['new-site', site])).exitCode).toBe(0)
    expect((await tenancy(bench, ['use', 'b.localhost'])).exitCode).toBe(0)
    expect((await tenancy(bench, ['drop-site', 'a.localhost', '--yes', '--no-backup'])).exitCode).toBe(0)
    expect((await tenancy(bench, ['use', '--json'])).json.site).toBe('b.localhost')
    const dropped = await tenancy(bench, ['drop-site', 'b.localhost', '--yes', '--no-backup'])
    expect(dropped.exitCode, dropped.stderr).toBe(0)
    expect(existsSync(join(bench, '.tenancy', 'current-site'))).toBe(false)
    expect((await tenancy(bench, ['use', '--json'])).json).toEqual({ site: null, from: null })
  })

  it('set-config and list-apps act on the default site, as bench does; -g still writes the bench config', async () => {
    const bench = makeBench({ exampleApps: true })
    for (const site of ['a.localhost', 'b.localhost'])
      expect((await tenancy(bench, ['new-site', site, '--install-app', 'shared_lib'])).exitCode).toBe(0)
    const siteConfig = (site: string) =>
      JSON.parse(readFileSync(join(bench, 'sites', site, 'site_config.json'), 'utf8'))
    // No default yet: the refusal names the three ways out, and nothing is written.
    const none = await tenancy(bench, ['set-config', 'greeting', 'hi'])
    expect(none.exitCode).toBe(2)
    expect(none.stderr).toMatch(/needs --site SITE \(or a default site: "tenancy use SITE"\), or --global/)
    expect((await tenancy(bench, ['list-apps', '--json'])).json.apps.map((a: any) => a.app)).toEqual([
      'shared_lib',
      'tenant_ops',
    ])

    expect((await tenancy(bench, ['use', 'a.localhost'])).exitCode).toBe(0)
    const set = await tenancy(bench, ['set-config', 'greeting', 'hi', '--json'])
    expect(set.exitCode, set.stderr).toBe(0)
    expect(set.json.file).toBe(join(bench, 'sites', 'a.localhost', 'site_config.json'))
    expect(siteConfig('a.localhost').greeting).toBe('hi')
    expect(siteConfig('b.localhost').greeting).toBeUndefined()
    // TENANCY_SITE overrides the file; --site overrides both.
    await tenancy(bench, ['set-config', 'greeting', 'env'], { env: { TENANCY_SITE: 'b.localhost' } })
    expect(siteConfig('b.localhost').greeting).toBe('env')
    await tenancy(bench, ['set-config', 'greeting', 'flag', '--site', 'b.localhost'])
    expect(siteConfig('b.localhost').greeting).toBe('flag')
    expect(siteConfig('a.localhost').greeting).toBe('hi')
    // -g with a default site set writes tenancy.config.json, not the site's file.
    const global = await tenancy(bench, ['set-config', '-g', 'pending.count', '3'])
    expect(global.exitCode, global.stderr).toBe(0)
    expect(JSON.parse(readFileSync(join(bench, 'tenancy.config.json'), 'utf8')).pending.count).toBe(3)
    expect(siteConfig('a.localhost').pending).toBeUndefined()

    // list-apps: the default site's installed apps (shared_lib only), saying so on stderr.
    const apps = await tenancy(bench, ['list-apps', '--json'])
    expect(apps.json.site).toBe('a.localhost')
    expect(apps.json.apps.map((a: any) => a.app)).toEqual(['shared_lib'])
    const human = await tenancy(bench, ['list-apps'])
    expect(human.exitCode).toBe(0)
    expect(human.stderr).toMatch(/apps installed on the default site a\.localhost/)
    expect(human.stdout).not.toMatch(/tenant_ops/)
  })
})
