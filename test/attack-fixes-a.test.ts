import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { describe, expect, it } from 'vitest'
import { makeBench, query, setRunStep, tenancy } from './helpers.js'
import { SITE_BACKENDS, registryRows, serverHas, siteConfig, useBackend } from './backends.js'

const configFile = (bench: string, site: string) => join(bench, 'sites', site, 'site_config.json')

/** What the registry holds of sites and tenants, to prove a refused command changed nothing. */
async function snapshot(bench: string): Promise<unknown> {
  return {
    sites: await registryRows(
      bench,
      'select name, state, db_type, db_name, db_host, db_port, db_user, tenant_id from sites order by name',
    ),
    tenants: await registryRows(bench, 'select name, site, provisioning_status from tenants order by name'),
  }
}

/** Whether a site's database is still there (server: database and user; SQLite: its file). */
async function databaseThere(bench: string, backend: string, cfg: Record<string, any>, site: string): Promise<boolean> {
  if (backend === 'sqlite') return existsSync(join(bench, 'sites', site, cfg.db_file ?? 'db.sqlite'))
  const has = await serverHas(backend as 'mariadb' | 'postgres', cfg.db_name)
  return has.database && has.user
}

describe('dropping goes by the registry row, not by site_config.json', () => {
  for (const backend of SITE_BACKENDS) {
    it.skipIf(backend.skip)(
      `${backend.name}: a config pointing at another site's database is refused; both databases survive`,
      async () => {
        const bench = makeBench({ exampleApps: false })
        const env = useBackend(bench, backend.name)
        for (const name of ['a', 'b']) {
          const r = await tenancy(bench, ['tenant', 'create', name], { env })
          expect(r.exitCode, r.stderr).toBe(0)
        }
        const a = siteConfig(bench, 'a.localhost')
        const b = siteConfig(bench, 'b.localhost')
        const original = readFileSync(configFile(bench, 'a.localhost'), 'utf8')
        // The hostile edit: every mention of A's database becomes B's.
        writeFileSync(configFile(bench, 'a.localhost'), original.replaceAll(a.db_name, b.db_name))
        const before = await snapshot(bench)
        for (const args of [
          ['tenant', 'delete', 'a', '--yes'],
          ['drop-site', 'a.localhost', '--yes'],
          ['new-site', 'a.localhost', '--force'],
        ]) {
          const r = await tenancy(bench, args, { env })
          expect(r.exitCode, `${args.join(' ')}: ${r.stderr}`).toBe(2)
          if (args[0] === 'tenant') {
            expect(r.stderr).toContain(`"${b.db_name}"`)
            expect(r.stderr).toContain(`"${a.db_name}"`)
            expect(r.stderr).toMatch(/nothing was changed/)
          }
        }
        expect(await databaseThere(bench, backend.name, b, 'b.localhost')).toBe(true)
        expect(await databaseThere(bench, backend.name, a, 'a.localhost')).toBe(true)
        expect(await snapshot(bench)).toEqual(before)
        // Doctor's repairs drop nothing through it either.
        await tenancy(bench, ['doctor', '--fix'], { env })
        expect(await databaseThere(bench, backend.name, b, 'b.localhost')).toBe(true)
        // Restored, the config agrees with the row: the delete drops A's database and only it.
        writeFileSync(configFile(bench, 'a.localhost'), original)
        const del = await tenancy(bench, ['tenant', 'delete', 'a', '--yes'], { env })
        expect(del.exitCode, del.stderr).toBe(0)
        if (backend.name !== 'sqlite')
          expect(await serverHas(backend.name, a.db_name)).toEqual({ database: false, user: false })
        expect(await databaseThere(bench, backend.name, b, 'b.localhost')).toBe(true)
        expect((await tenancy(bench, ['tenant', 'show', 'b'], { env })).exitCode).toBe(0)
      },
    )
  }

  for (const backend of SITE_BACKENDS.filter((b) => b.name !== 'sqlite')) {
    it.skipIf(backend.skip)(
      `${backend.name}: a registry row naming another site's database user is never dropped through this site`,
      async () => {
        const bench = makeBench({ exampleApps: false })
        const env = useBackend(bench, backend.name)
        for (const name of ['a', 'b'])
          expect((await tenancy(bench, ['tenant', 'create', name], { env })).exitCode).toBe(0)
        const b = siteConfig(bench, 'b.localhost')
        const bUser = b.db_user ?? b.db_name
        // Row and config agree, and both name B's user: the registry itself was tampered with.
        const db = new Database(join(bench, '.tenancy', 'registry.db'))
        db.prepare('update sites set db_user = ? where name = ?').run(bUser, 'a.localhost')
        db.close()
        const cfg = siteConfig(bench, 'a.localhost')
        writeFileSync(configFile(bench, 'a.localhost'), JSON.stringify({ ...cfg, db_user: bUser }, null, 2))
        const before = await snapshot(bench)
        const r = await tenancy(bench, ['tenant', 'delete', 'a', '--yes'], { env })
        expect(r.exitCode, r.stderr).toBe(2)
        expect(r.stderr).toContain('site "b.localhost"')
        expect(await serverHas(backend.name as 'mariadb' | 'postgres', b.db_name)).toEqual({
          database: true,
          user: true,
        })
        expect(await serverHas(backend.name as 'mariadb' | 'postgres', cfg.db_name)).toMatchObject({ database: true })
        expect(await snapshot(bench)).toEqual(before)
      },
    )
  }
})

/** Waits for `marker` (written by a step the --background worker runs), then gives the registry file and that worker's pid. */
async function workerOnceAt(bench: string, marker: string): Promise<{ registry: string; pid: number }> {
  for (let i = 0; i < 400 && !existsSync(marker); i++) await new Promise((r) => setTimeout(r, 50))
  const registry = join(bench, '.tenancy', 'registry.db')
  const [lease] = query<{ owner: string }>(registry, "select owner from leases where name like 'worker:%'")
  return { registry, pid: Number(/^(\d+)@/.exec(lease!.owner)![1]) }
}

describe('a wrong encryption key changes nothing in the worker', () => {
  it('a killed --background worker, then a worker with a wrong key: exit 2, job and tenant as they were; the right key finishes it', async () => {
    const bench = makeBench({ exampleApps: false })
    const marker = join(bench, 'slow-started')
    // The first run of this step blocks, so the spawned worker can be caught in the middle.
    writeFileSync(
      join(bench, 'slow.mjs'),
      `import { existsSync, writeFileSync } from 'node:fs'\nif (!existsSync(${JSON.stringify(marker)})) { writeFileSync(${JSON.stringify(marker)}, String(process.pid)); await new Promise((r) => setTimeout(r, 30000)) }\n`,
    )
    setRunStep(bench, { name: 'slow', run: 'node slow.mjs' })
    const created = await tenancy(bench, ['tenant', 'create', 'wq', '--background', '--json'])
    expect(created.exitCode, created.stderr).toBe(0)
    expect(created.json.worker_started).toBe(true)
    const { registry, pid } = await workerOnceAt(bench, marker)
    // The detached worker leads its own process group: kill it with its step.
    process.kill(-pid, 'SIGKILL')
    for (let i = 0; i < 100; i++) {
      try {
        process.kill(pid, 0)
        await new Promise((r) => setTimeout(r, 50))
      } catch {
        break
      }
    }
    const state = () => ({
      jobs: query(registry, 'select status, attempts, run_at, last_error from jobs'),
      tenants: query(registry, 'select provisioning_status, error, api_secret_enc, admin_password_enc from tenants'),
      steps: query(registry, 'select name, status, attempts from steps order by idx'),
      errors: query(registry, 'select count(*) as n from error_log'),
    })
    const before = state()
    expect(before.jobs).toMatchObject([{ status: 'running', attempts: 1 }])
    const wrong = { TENANCY_ENCRYPTION_KEY: randomBytes(32).toString('base64') }
    for (const args of [
      ['worker', '--once'],
      ['provision', 'wq'],
      ['doctor', '--fix'],
      ['pending-create', '--count', '1'],
    ]) {
      const r = await tenancy(bench, args, { env: wrong })
      expect(r.exitCode, `${args.join(' ')}: ${r.stderr}`).toBe(2)
      expect(r.stderr).toMatch(/wrong encryption key/)
      expect(state(), args.join(' ')).toEqual(before)
    }
    const right = await tenancy(bench, ['worker', '--once'])
    expect(right.exitCode, right.stderr).toBe(0)
    expect(query(registry, 'select status, attempts from jobs')).toEqual([{ status: 'done', attempts: 2 }])
    expect((await tenancy(bench, ['tenant', 'show', 'wq', '--json'])).json.provisioning_status).toBe('completed')
  })
})

describe('the worker tenant create --background starts', () => {
  it('gets the secrets on stdin, not in its environment, and provisions with them', async () => {
    const bench = makeBench({ exampleApps: false })
    const started = join(bench, 'step-started')
    const release = join(bench, 'step-release')
    // The step holds the worker until the test has read its environment.
    writeFileSync(
      join(bench, 'hold.mjs'),
      `import { existsSync, writeFileSync } from 'node:fs'\nwriteFileSync(${JSON.stringify(started)}, '1')\nwhile (!existsSync(${JSON.stringify(release)})) await new Promise((r) => setTimeout(r, 50))\n`,
    )
    setRunStep(bench, { name: 'hold', run: 'node hold.mjs' })
    const secrets = {
      TENANCY_ADMIN_PASSWORD: 'Admin-XYZ-secret-1',
      TENANCY_NOTIFY_SECRET: 'Notify-XYZ-secret-2',
      MY_API_TOKEN: 'Token-XYZ-secret-3',
      SOME_URL: 'postgres://u:Url-XYZ-secret-4@127.0.0.1/db',
    }
    const created = await tenancy(bench, ['tenant', 'create', 'bgs', '--background', '--json'], { env: secrets })
    expect(created.exitCode, created.stderr).toBe(0)
    expect(created.json.worker_started).toBe(true)
    const { registry, pid } = await workerOnceAt(bench, started)
    const environ = readFileSync(`/proc/${pid}/environ`, 'utf8')
    expect(environ).toContain('TENANCY_SECRETS_ON_STDIN=1')
    for (const value of Object.values(secrets)) expect(environ).not.toContain(value)
    expect(environ).not.toContain('XYZ-secret')
    writeFileSync(release, '1')
    for (let i = 0; i < 400; i++) {
      const [t] = query<{ provisioning_status: string }>(
        registry,
        "select provisioning_status from tenants where name = 'bgs'",
      )
      if (t?.provisioning_status === 'completed' || t?.provisioning_status === 'failed') break
      await new Promise((r) => setTimeout(r, 50))
    }
    // The admin password the worker set is the one handed over, not one it made up.
    const shown = await tenancy(bench, ['tenant', 'show', 'bgs', '--show-secrets', '--json'])
    expect(shown.json.provisioning_status, shown.stdout).toBe('completed')
    expect(shown.json.admin_password).toBe(secrets.TENANCY_ADMIN_PASSWORD)
  })
})
