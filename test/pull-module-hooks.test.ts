import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { makeBench, query, setConfig, tenancy } from './helpers.js'
import { SITE_BACKENDS, asSite, useBackend, type BackendName } from './backends.js'

/**
 * Two apps with module `after_rename` hooks (run in the API user's transaction of the site, each
 * under a savepoint): `mh_a` notes the rename; `mh_b` requires it, notes the rename too, then
 * throws while the bench has a `fail-hook` file, after its write, so that the write must be undone,
 * and kills the process (kill -9) while it has a `kill-hook` file.
 */
function addModuleHookApps(bench: string): void {
  const hook = (app: string, fails: boolean) =>
    "import { existsSync } from 'node:fs'\nimport { join } from 'node:path'\n" +
    'export default async function afterRename({ db, site, previousSite, sitePath }) {\n' +
    `  await db.insertInto('mh_notes').values({ note: \`${app} \${previousSite} \${site}\` }).execute()\n` +
    (fails
      ? "  if (existsSync(join(sitePath, '..', '..', 'fail-hook'))) throw new Error('mh_b cannot rename today')\n" +
        "  if (existsSync(join(sitePath, '..', '..', 'kill-hook'))) process.kill(process.pid, 'SIGKILL')\n"
      : '') +
    '}\n'
  for (const [app, requires] of [
    ['mh_a', []],
    ['mh_b', ['mh_a']],
  ] as const) {
    const dir = join(bench, 'apps', app)
    mkdirSync(join(dir, 'hooks'), { recursive: true })
    const manifest = { name: app, version: '1.0.0', requires, hooks: { after_rename: { module: 'hooks/rename.mjs' } } }
    writeFileSync(join(dir, 'app.json'), JSON.stringify(manifest))
    writeFileSync(join(dir, 'hooks', 'rename.mjs'), hook(app, app === 'mh_b'))
  }
  mkdirSync(join(bench, 'apps', 'mh_a', 'migrations'))
  writeFileSync(
    join(bench, 'apps', 'mh_a', 'migrations', '0001_notes.sql'),
    'create table mh_notes (note varchar(255) not null);\n',
  )
  setConfig(bench, (c) => (c.provision.apps = ['mh_b']))
}

/** A bench of sites on `backend` with the two apps and one pool tenant ready, and that tenant's placeholder site. */
async function pooled(backend: BackendName) {
  const bench = makeBench({ exampleApps: false })
  const env = useBackend(bench, backend)
  addModuleHookApps(bench)
  expect((await tenancy(bench, ['pending-create', '--count', '1'], { env })).exitCode).toBe(0)
  const listed = await tenancy(bench, ['tenant', 'list', '--only-pending', '--json'])
  const placeholder: string = listed.json.tenants[0].site
  return { bench, env, placeholder }
}

const notes = async (bench: string, site: string) =>
  (await asSite(bench, site, 'select note from mh_notes order by note')).rows.map((r: any) => r.note)

describe('a pull whose module after_rename hook fails', () => {
  for (const backend of SITE_BACKENDS) {
    it.skipIf(backend.skip)(
      `${backend.name}: the pull completes, the failure is reported and logged, the hook's writes are undone and the rest is committed`,
      async () => {
        const { bench, env, placeholder } = await pooled(backend.name)
        writeFileSync(join(bench, 'fail-hook'), '')
        const pulled = await tenancy(bench, ['tenant', 'create', 'acme', '--json'], { env })
        expect(pulled.exitCode, pulled.stderr).toBe(0)
        expect(pulled.json).toMatchObject({ mode: 'pulled', site: 'acme.localhost', pulled_from: placeholder })
        expect(pulled.json.warning).toMatch(
          /the after_rename hook of app "mh_b" on site "acme.localhost" failed: mh_b cannot rename today.*rename-site/,
        )
        // mh_a's write and the API user's move committed; mh_b's write went with its savepoint.
        expect(await notes(bench, 'acme.localhost')).toEqual([`mh_a ${placeholder} acme.localhost`])
        expect((await asSite(bench, 'acme.localhost', "select name from users where name like 'api@%'")).rows).toEqual([
          { name: 'api@acme.localhost' },
        ])
        const tenant = (await tenancy(bench, ['tenant', 'show', 'acme', '--show-secrets', '--json'])).json
        const verified = await tenancy(bench, ['verify-key', tenant.api_key, '--site', 'acme.localhost'], {
          input: tenant.api_secret,
          env,
        })
        expect(verified.exitCode, verified.stderr).toBe(0)
        const registry = join(bench, '.tenancy', 'registry.db')
        expect(query(registry, 'select name, state, rename_from from sites')).toEqual([
          { name: 'acme.localhost', state: 'ready', rename_from: placeholder },
        ])
        expect(query(registry, 'select pull_from, pending_since from tenants')).toEqual([
          { pull_from: null, pending_since: null },
        ])
        const errors = (await tenancy(bench, ['errors', '--json'])).json.errors
        expect(errors[0]).toMatchObject({ site: 'acme.localhost', step: 'after_rename' })
        // Fixed, the rename again runs both hooks, which now commit.
        rmSync(join(bench, 'fail-hook'))
        const again = await tenancy(bench, ['rename-site', placeholder, 'acme.localhost', '--json'], { env })
        expect(again.exitCode, again.stderr).toBe(0)
        expect(again.json.hooks).toEqual(['mh_a', 'mh_b'])
        expect(await notes(bench, 'acme.localhost')).toEqual([
          `mh_a ${placeholder} acme.localhost`,
          `mh_a ${placeholder} acme.localhost`,
          `mh_b ${placeholder} acme.localhost`,
        ])
        expect(query(registry, 'select rename_from from sites')).toEqual([{ rename_from: null }])
      },
    )
  }

  for (const backend of SITE_BACKENDS) {
    it.skipIf(backend.skip)(
      `${backend.name}: killed in a hook after the one before it wrote, the next command finishes the pull, each hook's write once`,
      async () => {
        const { bench, env, placeholder } = await pooled(backend.name)
        writeFileSync(join(bench, 'kill-hook'), '')
        const killed = await tenancy(bench, ['tenant', 'create', 'acme'], { env })
        expect(killed.exitCode).not.toBe(0)
        rmSync(join(bench, 'kill-hook'))
        // mh_a's write died with the transaction it shared with the API user's move.
        const shown = await tenancy(bench, ['tenant', 'show', 'acme', '--show-secrets', '--json'], { env })
        expect(shown.json).toMatchObject({ site: 'acme.localhost', status: 'active', pending_since: null })
        expect(await notes(bench, 'acme.localhost')).toEqual([
          `mh_a ${placeholder} acme.localhost`,
          `mh_b ${placeholder} acme.localhost`,
        ])
        const verified = await tenancy(bench, ['verify-key', shown.json.api_key, '--site', 'acme.localhost'], {
          input: shown.json.api_secret,
          env,
        })
        expect(verified.exitCode, verified.stderr).toBe(0)
        expect(query(join(bench, '.tenancy', 'registry.db'), 'select rename_from from sites')).toEqual([
          { rename_from: null },
        ])
      },
    )
  }
})
