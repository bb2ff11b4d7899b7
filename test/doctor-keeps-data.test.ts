import { existsSync, renameSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { SITE_BACKENDS, asSite, serverHas, serverQuery, siteConfig, useBackend } from './backends.js'
import { makeBench, tempDir, tenancy } from './helpers.js'

/**
 * SPEC §6: `doctor --fix` never moves or deletes a site whose database holds data. A site
 * that merely cannot be opened (its config gone, its directory moved, its password changed)
 * is reported and left alone; only an SQLite site whose database file is gone is rebuilt.
 */
describe.each(SITE_BACKENDS)('doctor --fix keeps a site that may hold data ($name)', ({ name, skip }) => {
  it.skipIf(skip)(
    'a lost site_config.json or a moved directory: reported, nothing dropped, no tenant re-provisioned',
    async () => {
      const bench = makeBench()
      const env = useBackend(bench, name)
      expect((await tenancy(bench, ['tenant', 'create', 'keep', '--no-pool'], { env })).exitCode).toBe(0)
      const site = 'keep.localhost'
      // The site's data: the onboarding project the app's after_install hook made.
      const data = "select id from projects where id = 'PRJ-ONBOARDING'"
      expect((await asSite(bench, site, data)).rows).toHaveLength(1)
      const config = siteConfig(bench, site)
      const sitePath = join(bench, 'sites', site)
      // SQLite: the config goes missing beside the database file. Servers: the whole directory is moved away.
      const away = join(tempDir(), 'moved')
      if (name === 'sqlite') renameSync(join(sitePath, 'site_config.json'), away)
      else renameSync(sitePath, away)
      const fix = await tenancy(bench, ['doctor', '--fix', '--json'], { env })
      expect(fix.exitCode).toBe(1)
      expect(fix.json.findings).toMatchObject([
        { kind: 'damaged_site', subject: site, fixed: false, fix_error: 'refused: its database may hold data' },
      ])
      const human = await tenancy(bench, ['doctor', '--fix'], { env })
      expect(human.stderr).toMatch(
        /site "keep\.localhost" cannot be opened: .*: refused: its database may hold data; restore what is missing/,
      )
      expect(human.stderr).not.toMatch(/could not nothing|would nothing/)
      // Put it back: the data is all there, the tenant is the same one.
      if (name === 'sqlite') renameSync(away, join(sitePath, 'site_config.json'))
      else renameSync(away, sitePath)
      expect((await asSite(bench, site, data)).rows).toHaveLength(1)
      if (name !== 'sqlite') expect(await serverHas(name, config.db_name)).toEqual({ database: true, user: true })
      const show = await tenancy(bench, ['tenant', 'show', 'keep', '--json'], { env })
      expect(show.json).toMatchObject({ status: 'active', provisioning_status: 'completed' })
      expect((await tenancy(bench, ['doctor'], { env })).exitCode).toBe(0)
    },
  )

  // The shared PostgreSQL here trusts every local login, so a changed password shows on MariaDB only.
  it.skipIf(skip || name !== 'mariadb')(
    'a site password changed by a DBA: the database and its data stay',
    async () => {
      const bench = makeBench()
      const env = useBackend(bench, 'mariadb')
      expect((await tenancy(bench, ['new-site', 'rot.localhost'], { env })).exitCode).toBe(0)
      const config = siteConfig(bench, 'rot.localhost')
      // (serverQuery reports a statement without rows as an error; the doctor finding below proves it ran.)
      await serverQuery('mariadb', `alter user '${config.db_user}'@'%' identified by 'rotated-by-dba'`)
      const fix = await tenancy(bench, ['doctor', '--fix', '--json'], { env })
      expect(fix.exitCode).toBe(1)
      expect(fix.json.findings).toMatchObject([{ kind: 'damaged_site', subject: 'rot.localhost', fixed: false }])
      expect(await serverHas('mariadb', config.db_name)).toEqual({ database: true, user: true })
      expect(existsSync(join(bench, 'sites', 'rot.localhost', 'site_config.json'))).toBe(true)
    },
  )
})

describe('doctor --fix still rebuilds what holds nothing', () => {
  it('an SQLite tenant site whose database file is gone is provisioned again; the old directory is archived, not deleted', async () => {
    const bench = makeBench()
    expect((await tenancy(bench, ['tenant', 'create', 'gone', '--no-pool'])).exitCode).toBe(0)
    rmSync(join(bench, 'sites', 'gone.localhost', 'db.sqlite'))
    const fix = await tenancy(bench, ['doctor', '--fix', '--json'])
    expect(fix.exitCode, fix.stderr).toBe(0)
    expect(fix.json.findings).toMatchObject([{ kind: 'missing_site', subject: 'gone.localhost', fixed: true }])
    expect(existsSync(join(bench, 'sites', 'gone.localhost', 'db.sqlite'))).toBe(true)
    expect(existsSync(join(bench, 'archived', 'sites'))).toBe(true)
  })
})
