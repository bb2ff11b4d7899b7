import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { killWhen, sleep, tenancy } from './helpers.js'
import { SITE_BACKENDS, siteConfig } from './backends.js'
import {
  allTables,
  changeData,
  databaseExists,
  ok,
  recordedDb,
  sharedSiteWithData,
  siteWithData,
  write,
} from './restore-helpers.js'

// kill -9 during restore (SPEC §6, §7): at each point of a restore, and of its whole process group at
// timed instants of the load, the site is left wholly on one database and doctor --fix drops the other.

describe.each(SITE_BACKENDS)('restore under kill -9 on $name', ({ name: backend, skip }) => {
  describe.skipIf(skip)('', () => {
    // One site with data and its backup for both tests (making them is what costs): the first
    // leaves the site restored from the set, whole, with nothing left over.
    const site = sharedSiteWithData(backend)

    it('kill -9 at each point of a restore: the site is wholly on one database, doctor --fix drops the other', async () => {
      const { bench, env, set, saved } = site
      await changeData(bench, 'r.localhost', 'LATER')
      let current = await allTables(bench, 'r.localhost')
      for (const point of [
        'restore-after-create',
        'restore-after-load',
        'restore-after-switch',
        'restore-before-drop',
      ]) {
        const old = siteConfig(bench, 'r.localhost')
        const killed = await tenancy(bench, ['restore', 'r.localhost', set, '--yes', '--no-backup'], {
          env: { ...env, TENANCY_FAULT: point },
        })
        expect(killed.exitCode, point).not.toBe(0)
        const intent = JSON.parse(readFileSync(join(bench, 'sites', 'r.localhost', '.restore.json'), 'utf8'))
        const switched = point === 'restore-after-switch' || point === 'restore-before-drop'

        const fix = await ok(bench, ['doctor', '--fix', '--json'], env)
        expect(
          fix.json.findings.map((f: any) => [f.kind, f.fixed]),
          point,
        ).toEqual([['interrupted_restore', true]])
        const now = siteConfig(bench, 'r.localhost')
        const kept = switched ? intent.new : intent.old
        const gone = switched ? intent.old : intent.new
        expect(now.db_name, point).toBe(kept.db_name)
        expect(await recordedDb(bench, 'r.localhost')).toBe(kept.db_name)
        expect(await databaseExists(backend, bench, 'r.localhost', { name: gone.db_name, file: gone.db_file })).toBe(
          false,
        )
        expect(await databaseExists(backend, bench, 'r.localhost', { name: kept.db_name, file: kept.db_file })).toBe(
          true,
        )
        if (!switched) expect(now.db_name).toBe(old.db_name)
        expect(await allTables(bench, 'r.localhost'), point).toEqual(switched ? saved : current)
        current = await allTables(bench, 'r.localhost')
        expect((await ok(bench, ['doctor', '--json'], env)).json.findings, point).toEqual([])
      }
      // A kill the next restore finds is finished by that restore first.
      await tenancy(bench, ['restore', 'r.localhost', set, '--yes', '--no-backup'], {
        env: { ...env, TENANCY_FAULT: 'restore-after-load' },
      })
      await changeData(bench, 'r.localhost', 'AGAIN')
      await ok(bench, ['restore', 'r.localhost', set, '--yes', '--no-backup'], env)
      expect(await allTables(bench, 'r.localhost')).toEqual(saved)
      expect(existsSync(join(bench, 'sites', 'r.localhost', '.restore.json'))).toBe(false)
      expect((await ok(bench, ['doctor', '--json'], env)).json.findings).toEqual([])
    })

    it('kill -9 of the process group at timed instants of the load: whole on one database after doctor --fix', async () => {
      const { bench, env, set } = site
      // Enough rows that loading them takes a while, so the kills land inside the load.
      const values = Array.from({ length: 400 }, (_, i) => `('BULK-${i}', '${'x'.repeat(100)}', 'now', 'now')`)
      for (let i = 0; i < 5; i++) {
        const rows = values.map((v) => v.replace("'BULK-", `'BULK-${i}-`)).join(', ')
        const r = await write(
          bench,
          'r.localhost',
          `insert into customers (id, customer_name, created_at, updated_at) values ${rows}`,
        )
        expect(r.error).toBeUndefined()
      }
      const big = (await ok(bench, ['backup', '--site', 'r.localhost', '--json'], env)).json.sites[0].path
      const bigTables = await allTables(bench, 'r.localhost')
      await ok(bench, ['restore', 'r.localhost', set, '--yes', '--no-backup'], env)
      let current = await allTables(bench, 'r.localhost')
      const intentFile = join(bench, 'sites', 'r.localhost', '.restore.json')
      const seen: string[] = []
      for (const delay of [0, 150]) {
        const old = siteConfig(bench, 'r.localhost')
        // From the moment the intent is on disk (the fresh database is being made and loaded),
        // polled every 5 ms: a SQLite load of these rows can be over in less than the default 25.
        await killWhen(
          bench,
          ['restore', 'r.localhost', big, '--yes', '--no-backup'],
          env,
          async () => {
            if (!existsSync(intentFile)) return false
            await sleep(delay)
            return true
          },
          5,
        )
        const intent = existsSync(intentFile) ? JSON.parse(readFileSync(intentFile, 'utf8')) : undefined
        await ok(bench, ['doctor', '--fix'], env)
        expect(existsSync(intentFile)).toBe(false)
        const now = siteConfig(bench, 'r.localhost')
        const tables = await allTables(bench, 'r.localhost')
        if (now.db_name === old.db_name) {
          expect(tables, `kill after ${delay} ms`).toEqual(current)
          seen.push('old')
        } else {
          expect(tables, `kill after ${delay} ms`).toEqual(bigTables)
          seen.push('new')
        }
        expect(await recordedDb(bench, 'r.localhost')).toBe(now.db_name)
        // Nothing of the killed restore is left in the site (its scratch directory held a password file).
        expect(readdirSync(join(bench, 'sites', 'r.localhost')).filter((n) => n.startsWith('.'))).toEqual([])
        if (intent)
          for (const db of [intent.old, intent.new].filter((d: any) => d.db_name !== now.db_name))
            expect(await databaseExists(backend, bench, 'r.localhost', { name: db.db_name, file: db.db_file })).toBe(
              false,
            )
        expect((await ok(bench, ['doctor', '--json'], env)).json.findings).toEqual([])
        current = tables
        // Back to the small state, so the next kill has something to replace.
        if (now.db_name !== old.db_name) {
          await ok(bench, ['restore', 'r.localhost', set, '--yes', '--no-backup'], env)
          current = await allTables(bench, 'r.localhost')
        }
      }
      // At least one kill landed before the switch (the load is the long part).
      expect(seen).toContain('old')
    })
  })
})

describe('two restores of one site at once', () => {
  it('take turns or one is refused; the site ends whole on one database with nothing left over', async () => {
    const { bench, env, set, saved } = await siteWithData('sqlite')
    for (let round = 0; round < 2; round++) {
      await changeData(bench, 'r.localhost', `ROUND${round}`)
      const runs = await Promise.all(
        [0, 1].map(() => tenancy(bench, ['restore', 'r.localhost', set, '--yes', '--no-backup'], { env })),
      )
      const codes = runs.map((r) => r.exitCode).sort()
      expect(codes[0], runs.map((r) => r.stderr).join('\n')).toBe(0)
      for (const r of runs.filter((x) => x.exitCode !== 0)) {
        expect(r.exitCode).toBe(2)
        expect(r.stderr).toMatch(/is being restored by (another )?process|was restored by another process meanwhile/)
      }
      expect(await allTables(bench, 'r.localhost')).toEqual(saved)
      const files = readdirSync(join(bench, 'sites', 'r.localhost'))
      expect(files.sort()).toEqual([siteConfig(bench, 'r.localhost').db_file, 'site_config.json'].sort())
      expect((await ok(bench, ['doctor', '--json'], env)).json.findings).toEqual([])
    }
  })
})
