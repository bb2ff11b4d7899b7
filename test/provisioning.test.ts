import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { execa } from 'execa'
import { describe, expect, it } from 'vitest'
import { BIN, cleanEnv, makeBench, tenancy, query, setConfig, setRunStep } from './helpers.js'
import { REGISTRIES, registryRows, useRegistry } from './backends.js'
import { checkPassword, openBench, showTenant } from '../src/index.js'

const registry = (bench: string) => join(bench, '.tenancy', 'registry.db')

/** The invariant after any crash and resume: one site, one database, one API user, active. */
async function expectExactlyOne(bench: string, tenant: string, site = `${tenant}.localhost`): Promise<void> {
  const show = await tenancy(bench, ['tenant', 'show', tenant, '--json'])
  expect(show.json, show.stderr).toMatchObject({ status: 'active', provisioning_status: 'completed', site })
  expect(
    show.json.steps.every((s: any) => s.status === 'done' || s.status === 'skipped'),
    JSON.stringify(show.json.steps),
  ).toBe(true)
  expect(readdirSync(join(bench, 'sites')).filter((d) => d === site)).toEqual([site])
  expect(readdirSync(join(bench, 'sites', site)).filter((f) => f.endsWith('.sqlite'))).toEqual(['db.sqlite'])
  expect(query(registry(bench), 'select name, state from sites where name = ?', site)).toEqual([
    { name: site, state: 'ready' },
  ])
  const db = join(bench, 'sites', site, 'db.sqlite')
  expect(query(db, "select name from users where name like 'api@%'")).toEqual([{ name: `api@${site}` }])
  expect(query(db, 'select count(*) as n from api_keys')).toEqual([{ n: 1 }])
  expect(query(db, "select count(*) as n from projects where id = 'PRJ-ONBOARDING'")).toEqual([{ n: 1 }])
  expect(query(db, 'select name from installed_apps order by name')).toEqual([
    { name: 'shared_lib' },
    { name: 'tenant_ops' },
  ])
}

describe('tenant create', () => {
  it('runs the seven steps and stores the credentials, the secret encrypted', async () => {
    const bench = makeBench()
    const r = await tenancy(bench, ['tenant', 'create', 'acme', '--data', 'plan=pro', '--data', 'seats=5', '--json'])
    expect(r.exitCode, r.stderr).toBe(0)
    expect(r.json).toMatchObject({
      name: 'acme',
      site: 'acme.localhost',
      status: 'active',
      provisioning_status: 'completed',
      mode: 'provisioned',
      data: { plan: 'pro', seats: 5 },
      error: null,
    })
    expect(r.json.steps.map((s: any) => [s.name, s.status, s.attempts])).toEqual([
      ['create-site', 'done', 1],
      ['developer-mode', 'done', 1],
      ['install-app shared_lib', 'done', 1],
      ['install-app tenant_ops', 'done', 1],
      ['api-user', 'done', 1],
      ['api-keys', 'done', 1],
      ['activate', 'done', 1],
    ])
    await expectExactlyOne(bench, 'acme')
    const siteConfig = JSON.parse(readFileSync(join(bench, 'sites', 'acme.localhost', 'site_config.json'), 'utf8'))
    expect(siteConfig.developer_mode).toBe(1)

    const secrets = await tenancy(bench, ['tenant', 'show', 'acme', '--show-secrets', '--json'])
    const { api_key, api_secret, admin_password } = secrets.json
    expect(api_key).toBe(r.json.api_key)
    expect(api_secret).toMatch(/^[A-Za-z0-9_-]{20,}$/)
    const verify = await tenancy(bench, ['verify-key', api_key, '--site', 'acme.localhost'], { input: api_secret })
    expect(verify.exitCode).toBe(0)
    const plain = await tenancy(bench, ['tenant', 'show', 'acme', '--json'])
    expect(plain.json.api_secret).toBeUndefined()
    expect(plain.stdout).not.toContain(api_secret)

    // Neither secret is anywhere in the registry's files in plain text.
    for (const file of readdirSync(join(bench, '.tenancy'))) {
      const bytes = readFileSync(join(bench, '.tenancy', file))
      expect(bytes.includes(Buffer.from(api_secret)), file).toBe(false)
      expect(bytes.includes(Buffer.from(admin_password)), file).toBe(false)
    }
    // The admin password works for the site's Administrator.
    const { verifyPassword } = await import('../src/secrets/hashing.js')
    const [admin] = query(
      join(bench, 'sites', 'acme.localhost', 'db.sqlite'),
      "select password_hash from users where name = 'Administrator'",
    )
    expect(await verifyPassword(admin.password_hash, admin.password_hash)).toBe(false)
    expect(await verifyPassword(admin_password, admin.password_hash)).toBe(true)
  })

  it('refuses bad names, duplicate tenants and taken sites with exit 2', async () => {
    const bench = makeBench()
    expect((await tenancy(bench, ['tenant', 'create', 'Acme'])).exitCode).toBe(2)
    expect((await tenancy(bench, ['tenant', 'create', 'a/b'])).exitCode).toBe(2)
    await tenancy(bench, ['new-site', 'taken.localhost'])
    const taken = await tenancy(bench, ['tenant', 'create', 'taken'])
    expect(taken.exitCode).toBe(2)
    expect(taken.stderr).toMatch(/site "taken.localhost" exists already and belongs to no tenant/)
    expect((await tenancy(bench, ['tenant', 'create', 'acme'])).exitCode).toBe(0)
    const dup = await tenancy(bench, ['tenant', 'create', 'acme'])
    expect(dup.exitCode).toBe(2)
    expect(dup.stderr).toMatch(/tenant "acme" already exists/)
    const sameSite = await tenancy(bench, ['tenant', 'create', 'other', '--site', 'acme.localhost'])
    expect(sameSite.exitCode).toBe(2)
    expect(sameSite.stderr).toMatch(/belongs to tenant "acme"/)
    // new-site of a tenant's site: no --force hint, which would be refused too.
    const overTenant = await tenancy(bench, ['new-site', 'acme.localhost'])
    expect(overTenant.exitCode).toBe(2)
    expect(overTenant.stderr.trim()).toBe(
      'error: site "acme.localhost" already exists: it is tenant "acme"\'s; pick another name ' +
        '(remove the tenant with "tenancy tenant delete acme" first to reuse it)',
    )
    const url = await tenancy(bench, [
      'tenant',
      'create',
      'beta',
      '--site-url',
      'https://Beta.Example.com/login',
      '--json',
    ])
    expect(url.json.site).toBe('beta.example.com')
  })

  it('in manual mode only records the tenant; provision runs it, and again is a no-op', async () => {
    const bench = makeBench()
    setConfig(bench, (c) => (c.auto_provision_tenant_sites = false))
    const r = await tenancy(bench, ['tenant', 'create', 'acme', '--json'])
    expect(r.json).toMatchObject({ mode: 'recorded', status: 'inactive', provisioning_status: 'not_started' })
    expect(readdirSync(join(bench, 'sites'))).toEqual([])
    const p = await tenancy(bench, ['provision', 'acme'])
    expect(p.exitCode, p.stderr).toBe(0)
    await expectExactlyOne(bench, 'acme')
    const again = await tenancy(bench, ['provision', 'acme'])
    expect(again.exitCode).toBe(0)
    expect(again.stdout).toMatch(/already active; nothing to do/)
    expect((await tenancy(bench, ['provision', 'nobody'])).exitCode).toBe(2)
  })

  it('lists, shows and deletes tenants (with or without their site)', async () => {
    const bench = makeBench()
    await tenancy(bench, ['tenant', 'create', 'a'])
    await tenancy(bench, ['tenant', 'create', 'b'])
    const list = await tenancy(bench, ['tenant', 'list', '--json'])
    expect(list.json.tenants.map((t: any) => t.name)).toEqual(['a', 'b'])
    expect((await tenancy(bench, ['tenant', 'list', '--status', 'active', '--json'])).json.tenants).toHaveLength(2)
    expect((await tenancy(bench, ['tenant', 'list', '--status', 'failed', '--json'])).json.tenants).toHaveLength(0)
    expect((await tenancy(bench, ['tenant', 'list', '--status', 'bogus'])).exitCode).toBe(2)
    const sites = await tenancy(bench, ['list-sites', '--json'])
    expect(sites.json.sites.map((s: any) => [s.site, s.tenant])).toEqual([
      ['a.localhost', 'a'],
      ['b.localhost', 'b'],
    ])
    const refuse = await tenancy(bench, ['drop-site', 'a.localhost', '--yes'])
    expect(refuse.exitCode).toBe(2)
    expect(refuse.stderr).toMatch(/belongs to tenant "a"; remove it with "tenancy tenant delete a"/)
    expect((await tenancy(bench, ['tenant', 'delete', 'a'])).exitCode).toBe(2)
    const del = await tenancy(bench, ['tenant', 'delete', 'a', '--yes', '--json'])
    expect(del.json).toMatchObject({ tenant: 'a', site: 'a.localhost', site_dropped: true })
    expect(existsSync(join(bench, 'sites', 'a.localhost'))).toBe(false)
    const keep = await tenancy(bench, ['tenant', 'delete', 'b', '--yes', '--keep-site', '--json'])
    expect(keep.json).toMatchObject({ site_dropped: false })
    expect((await tenancy(bench, ['list-sites', '--json'])).json.sites.map((s: any) => [s.site, s.tenant])).toEqual([
      ['b.localhost', null],
    ])
    expect((await tenancy(bench, ['tenant', 'list', '--json'])).json.tenants).toEqual([])
    expect(query(registry(bench), 'select count(*) as n from steps')).toEqual([{ n: 0 }])
  })
})

describe('run steps, failures and the error log', () => {
  it('a failing step is recorded with its output; provision resumes from it once the cause is fixed', async () => {
    const bench = makeBench()
    const flag = join(bench, 'allow')
    writeFileSync(
      join(bench, 'dns.mjs'),
      `import { existsSync } from 'node:fs'\nif (!existsSync(${JSON.stringify(flag)})) { console.log('dns provider said no'); process.exit(4) }\nconsole.log('dns ok for', process.argv[3])\n`,
    )
    setConfig(bench, (c) => {
      c.provision.steps = [
        'create-site',
        { name: 'dns', run: 'node dns.mjs --zone "$TENANCY_SITE"' },
        'install-apps',
        'api-user',
        'api-keys',
        'activate',
      ]
    })
    const r = await tenancy(bench, ['tenant', 'create', 'acme', '--json'])
    expect(r.exitCode).toBe(1)
    expect(r.stderr).toMatch(
      /provisioning tenant "acme" failed: step "dns" failed: its command exited with code 4; fix the cause and run "tenancy provision acme" to resume\n {2}output:\n {4}dns provider said no/,
    )
    expect(r.json.provisioning_status).toBe('failed')
    expect(r.json.steps.map((s: any) => s.status)).toEqual([
      'done',
      'failed',
      'pending',
      'pending',
      'pending',
      'pending',
      'pending',
    ])
    const errors = await tenancy(bench, ['errors', '--tenant', 'acme', '--json'])
    expect(errors.json.errors[0]).toMatchObject({ tenant: 'acme', step: 'dns' })
    expect(errors.json.errors[0].message).toMatch(/dns provider said no/)
    writeFileSync(flag, '')
    const p = await tenancy(bench, ['provision', 'acme', '--json'])
    expect(p.exitCode, p.stderr).toBe(0)
    expect(p.json.steps.map((s: any) => [s.name, s.attempts])).toEqual([
      ['create-site', 1],
      ['dns', 2],
      ['install-app shared_lib', 1],
      ['install-app tenant_ops', 1],
      ['api-user', 1],
      ['api-keys', 1],
      ['activate', 1],
    ])
    expect(p.json.steps[1].output).toBe('dns ok for acme.localhost')
    await expectExactlyOne(bench, 'acme')
  })

  it('a run step that outlives its timeout fails with a clear message', async () => {
    const bench = makeBench()
    setConfig(bench, (c) => {
      c.provision.steps = [
        'create-site',
        { name: 'slow', run: 'node -e "setTimeout(() => {}, 60000)"', timeout: 1 },
        'activate',
      ]
    })
    const started = Date.now()
    const r = await tenancy(bench, ['tenant', 'create', 'acme'])
    expect(r.exitCode).toBe(1)
    expect(r.stderr).toMatch(/step "slow" failed: its command timed out after 1 s/)
    expect(Date.now() - started).toBeLessThan(20_000)
  })

  it("tenant show keeps a failed step's output of several lines out of its table's rows", async () => {
    const bench = makeBench()
    setConfig(bench, (c) => {
      c.provision.steps = [
        'create-site',
        { name: 'noisy', run: 'echo first line; echo second line >&2; exit 3' },
        'activate',
      ]
    })
    expect((await tenancy(bench, ['tenant', 'create', 'acme'])).exitCode).toBe(1)
    const shown = await tenancy(bench, ['tenant', 'show', 'acme'])
    const lines = shown.stdout.split('\n')
    // The record's error goes on under its column; the step's row is one line, its first.
    const at = lines.findIndex((l) => l.startsWith('error '))
    expect(lines[at]).toMatch(/^error {16}step "noisy" failed: its command exited with code 3; output:$/)
    expect(lines.slice(at + 1, at + 3)).toEqual([`${' '.repeat(21)}first line`, `${' '.repeat(21)}second line`])
    const step = lines.filter((l) => l.startsWith('noisy '))
    expect(step).toHaveLength(1)
    expect(step[0]).toMatch(/failed .*output: …$/)
    expect(lines.filter((l) => l.includes('second line'))).toHaveLength(1)
    const json = await tenancy(bench, ['tenant', 'show', 'acme', '--json'])
    expect(json.json.steps[1].error).toMatch(/output:\nfirst line\nsecond line$/)
  })

  it('refuses a malformed pipeline before recording anything', async () => {
    const bench = makeBench()
    setConfig(bench, (c) => (c.provision.steps = ['create-site', 'make-coffee', 'activate']))
    const r = await tenancy(bench, ['tenant', 'create', 'acme'])
    expect(r.exitCode).toBe(2)
    expect(r.stderr).toMatch(/unknown step "make-coffee"/)
    setConfig(bench, (c) => (c.provision.steps = ['api-user', 'activate']))
    expect((await tenancy(bench, ['tenant', 'create', 'acme'])).stderr).toMatch(/must start with "create-site"/)
    expect((await tenancy(bench, ['tenant', 'list', '--json'])).json.tenants).toEqual([])
  })

  it('tells provision.notify about active and failed tenants', async () => {
    const bench = makeBench()
    const log = join(bench, 'notify.log')
    writeFileSync(
      join(bench, 'notify.mjs'),
      `import { appendFileSync } from 'node:fs'\nappendFileSync(${JSON.stringify(log)}, process.env.TENANCY_EVENT + ' ' + process.env.TENANCY_TENANT + '\\n')\n`,
    )
    setConfig(bench, (c) => {
      c.provision.notify = { run: 'node notify.mjs' }
    })
    await tenancy(bench, ['tenant', 'create', 'good'])
    setConfig(bench, (c) => (c.provision.steps = ['create-site', { run: 'node -e "process.exit(1)"' }, 'activate']))
    await tenancy(bench, ['tenant', 'create', 'bad'])
    expect(readFileSync(log, 'utf8')).toBe('tenant.active good\ntenant.failed bad\n')
  })
})

describe('crash safety and races, with real processes', () => {
  it('kill -9 inside an app install (its hook kills tenancy), then provision: exactly one of everything', async () => {
    const bench = makeBench()
    const marker = join(bench, 'killed-once')
    // tenant_ops' hook module, called in-process inside the install's transaction, kills
    // tenancy the first time only, as it is imported.
    const hook = join(bench, 'apps', 'tenant_ops', 'hooks', 'after_install.mjs')
    writeFileSync(
      hook,
      `import { existsSync as exists0, writeFileSync as write0 } from 'node:fs'\nif (!exists0(${JSON.stringify(marker)})) { write0(${JSON.stringify(marker)}, ''); process.kill(process.pid, 'SIGKILL') }\n${readFileSync(hook, 'utf8')}`,
    )
    const r = await tenancy(bench, ['tenant', 'create', 'acme'])
    expect(r.exitCode).not.toBe(0)
    const show = await tenancy(bench, ['tenant', 'show', 'acme', '--json'])
    expect(show.json.provisioning_status, `${r.stderr}\n${JSON.stringify(show.json)}`).toBe('in_progress')
    expect(show.json.steps.find((s: any) => s.name === 'install-app tenant_ops').status).toBe('running')
    const doctor = await tenancy(bench, ['doctor', '--json'])
    expect(doctor.exitCode).toBe(1)
    expect(doctor.json.findings.map((f: any) => f.kind)).toContain('stuck_tenant')
    const p = await tenancy(bench, ['provision', 'acme'])
    expect(p.exitCode, p.stderr).toBe(0)
    await expectExactlyOne(bench, 'acme')
    expect((await tenancy(bench, ['doctor'])).exitCode).toBe(0)
  })

  it('kill -9 of the whole process group at many instants, then provision: exactly one of everything', async () => {
    const bench = makeBench()
    const delays = [40, 90, 130, 170, 210, 250, 300, 380]
    for (const [i, delay] of delays.entries()) {
      const name = `t${i}`
      const child = execa(process.execPath, [BIN, 'tenant', 'create', name], {
        cwd: bench,
        env: cleanEnv(),
        extendEnv: false,
        reject: false,
        detached: true,
        stdin: 'ignore',
      })
      await new Promise((r) => setTimeout(r, delay))
      try {
        process.kill(-child.pid!, 'SIGKILL')
      } catch {
        // It finished before the kill.
      }
      await child
      const exists = await tenancy(bench, ['tenant', 'show', name, '--json'])
      if (exists.exitCode === 2) continue // killed before the tenant was recorded: nothing to resume
      const p = await tenancy(bench, ['provision', name])
      expect(p.exitCode, `${name} after ${delay} ms: ${p.stderr}`).toBe(0)
      await expectExactlyOne(bench, name)
    }
    const d = await tenancy(bench, ['doctor', '--json'])
    expect(d.json.findings, JSON.stringify(d.json.findings)).toEqual([])
  })

  it('two provision processes on one tenant: one provisions, the other waits and finds it done', async () => {
    const bench = makeBench()
    setConfig(bench, (c) => (c.auto_provision_tenant_sites = false))
    await tenancy(bench, ['tenant', 'create', 'acme'])
    const runs = await Promise.all([0, 1].map(() => tenancy(bench, ['provision', 'acme', '--json'])))
    for (const r of runs) expect(r.exitCode, r.stderr).toBe(0)
    expect(runs.map((r) => r.json.status).sort()).toEqual(['already_active', 'completed'])
    await expectExactlyOne(bench, 'acme')
    const attempts = query(registry(bench), 'select attempts from steps')
    expect(attempts.every((a: any) => a.attempts === 1)).toBe(true)
  })
})

describe('background provisioning and the worker', () => {
  it('--background queues, starts a detached worker and returns at once', async () => {
    const bench = makeBench()
    const r = await tenancy(bench, ['tenant', 'create', 'acme', '--background', '--json'])
    expect(r.exitCode, r.stderr).toBe(0)
    expect(r.json).toMatchObject({ mode: 'queued', provisioning_status: 'queued', worker_started: true })
    for (let i = 0; i < 200; i++) {
      const show = await tenancy(bench, ['tenant', 'show', 'acme', '--json'])
      if (show.json.status === 'active') break
      await new Promise((res) => setTimeout(res, 100))
    }
    await expectExactlyOne(bench, 'acme')
    expect(readFileSync(join(bench, '.tenancy', 'worker.log'), 'utf8')).toMatch(/acme: done/)
  })

  it('retries a failing step with backoff, then succeeds; gives up after max_attempts', async () => {
    const bench = makeBench()
    const counter = join(bench, 'count')
    writeFileSync(
      join(bench, 'flaky.mjs'),
      `import { existsSync, readFileSync, writeFileSync } from 'node:fs'\nconst f = ${JSON.stringify(counter)} + '-' + process.env.TENANCY_TENANT\nconst n = existsSync(f) ? Number(readFileSync(f, 'utf8')) : 0\nwriteFileSync(f, String(n + 1))\nif (process.env.TENANCY_TENANT === 'never' || n < 1) { console.log('try', n + 1, 'failed'); process.exit(1) }\n`,
    )
    setConfig(bench, (c) => {
      c.auto_provision_tenant_sites = true
      c.provision.retry_delay = 0.2
      c.provision.max_attempts = 3
      c.provision.steps = ['create-site', { name: 'flaky', run: 'node flaky.mjs' }, 'activate']
    })
    await tenancy(bench, ['tenant', 'create', 'flaky', '--background'])
    await tenancy(bench, ['tenant', 'create', 'never', '--background'])
    const w = await tenancy(bench, ['worker', '--once', '--json'], { timeout: 60_000 })
    expect(w.exitCode, w.stderr).toBe(0)
    const flaky = (await tenancy(bench, ['tenant', 'show', 'flaky', '--json'])).json
    expect(flaky).toMatchObject({ status: 'active', provisioning_status: 'completed' })
    expect(flaky.steps[1]).toMatchObject({ name: 'flaky', status: 'done', attempts: 2 })
    const never = (await tenancy(bench, ['tenant', 'show', 'never', '--json'])).json
    expect(never).toMatchObject({ status: 'inactive', provisioning_status: 'failed' })
    expect(never.steps[1]).toMatchObject({ status: 'failed', attempts: 3 })
    expect(query(registry(bench), 'select status, attempts from jobs order by id')).toEqual([
      { status: 'done', attempts: 2 },
      { status: 'failed', attempts: 3 },
    ])
    const errors = (await tenancy(bench, ['errors', '--tenant', 'never', '--json'])).json.errors
    expect(errors[0].message).toMatch(/provisioning failed after 3 attempt\(s\)/)
  })
})

describe("the worker's lines (what worker.log holds)", () => {
  it("one event a line, starting with its time; a failed command's output indented under it", async () => {
    const bench = makeBench({ lightSites: true })
    const env = { TENANCY_HOST: 'w1' }
    setConfig(bench, (c) => {
      c.provision.retry_delay = 0.2
      c.provision.max_attempts = 2
      c.provision.steps = [
        'create-site',
        { name: 'dns', run: 'printf "no DNS token\\nfor zone x\\n" >&2; exit 3' },
        'activate',
      ]
    })
    expect((await tenancy(bench, ['tenant', 'list'], { env })).exitCode).toBe(0)
    // This machine's background worker is held from starting, so the worker below makes every attempt.
    const db = new Database(join(bench, '.tenancy', 'registry.db'))
    const until = new Date(Date.now() + 300_000).toISOString()
    db.prepare('insert into leases (name, owner, expires_at) values (?, ?, ?)').run('worker-starting:w1', 'test', until)
    db.close()
    const queued = await tenancy(bench, ['tenant', 'create', 'zeta', '--background', '--json'], { env })
    expect(queued.json).toMatchObject({ mode: 'queued', worker_started: false })

    const w = await tenancy(bench, ['worker', '--once'], { env, timeout: 60_000 })
    expect(w.exitCode, w.stderr).toBe(0)
    expect(w.stdout).toMatch(/^worker \d+ stopped: 1 job\(s\) in 2 attempts, 0 done, 0 to retry, 1 failed$/)
    const error = 'step "dns" failed: its command exited with code 3; output:'
    const output = ['    no DNS token', '    for zone x']
    const lines = w.stderr
      .split('\n')
      .filter(Boolean)
      .map((l) => l.replace(/^\d{4}-\d\d-\d\dT[\d:.]+Z /, 'T ').replace(/^worker \d+/, 'worker N'))
      .map((l) => l.replace(/\(retry at \d{4}-\d\d-\d\dT[\d:.]+Z\)/, '(retry at R)'))
    expect(lines).toEqual([
      'worker N started (until the queue is empty, concurrency 1)',
      'T zeta: attempt 1',
      'T zeta: create-site done',
      `T zeta: dns failed: ${error}`,
      ...output,
      `T zeta: retry (retry at R): ${error}`,
      ...output,
      'T zeta: attempt 2',
      `T zeta: dns failed: ${error}`,
      ...output,
      `T zeta: failed: ${error}`,
      ...output,
    ])
    // --json: the counts alone, snake_case as every document is.
    const again = await tenancy(bench, ['worker', '--once', '--json'], { env })
    expect(again.json).toEqual({ jobs: 0, attempts: 0, done: 0, failed: 0, retried: 0, site_jobs: 0 })
  })
})

describe.each(REGISTRIES)('the worker (registry: $name)', ({ name: kind, skip }) => {
  describe.skipIf(skip)('', () => {
    it('drains a queue of 20 tenants with --concurrency 2, each exactly once', async () => {
      // lightSites: the queue is under test, not the apps.
      const bench = makeBench({ lightSites: true })
      await useRegistry(bench, kind)
      setConfig(bench, (c) => (c.auto_provision_tenant_sites = true))
      // Record 20 queued tenants without starting workers: a live worker lease makes --background skip the spawn.
      for (let i = 0; i < 20; i++) {
        const r = await tenancy(bench, ['tenant', 'create', `q${i}`, '--background', '--json'], {
          env: { TENANCY_TEST_NO_WORKER: '1' },
        })
        expect(r.exitCode, r.stderr).toBe(0)
      }
      // Any worker --background started may be running too: that is the race we want.
      const w = await tenancy(bench, ['worker', '--once', '--concurrency', '2', '--json'], { timeout: 120_000 })
      expect(w.exitCode, w.stderr).toBe(0)
      for (let i = 0; i < 200; i++) {
        const left = (await registryRows(bench, "select count(*) as n from jobs where status != 'done'"))[0].n
        if (left === 0) break
        await new Promise((res) => setTimeout(res, 100))
      }
      const tenants = (await tenancy(bench, ['tenant', 'list', '--json'])).json.tenants
      expect(tenants).toHaveLength(20)
      expect(tenants.every((t: any) => t.status === 'active')).toBe(true)
      expect(
        await registryRows(bench, 'select count(*) as n from jobs where status = ? and attempts = 1', 'done'),
      ).toEqual([{ n: 20 }])
      expect(await registryRows(bench, 'select max(attempts) as n from steps')).toEqual([{ n: 1 }])
      expect(readdirSync(join(bench, 'sites')).sort()).toEqual(
        Array.from({ length: 20 }, (_, i) => `q${i}.localhost`).sort(),
      )
    })

    it('several workers racing for one queue: every job runs exactly once', async () => {
      // lightSites: the queue is under test, not the apps.
      const bench = makeBench({ lightSites: true })
      await useRegistry(bench, kind)
      setConfig(bench, (c) => (c.auto_provision_tenant_sites = true))
      for (let i = 0; i < 12; i++) {
        const r = await tenancy(bench, ['tenant', 'create', `w${i}`, '--background', '--json'], {
          env: { TENANCY_TEST_NO_WORKER: '1' },
        })
        expect(r.exitCode, r.stderr).toBe(0)
      }
      // With the worker --background started, three or more workers race for the jobs.
      const workers = await Promise.all(
        [0, 1].map(() => tenancy(bench, ['worker', '--once', '--concurrency', '2', '--json'], { timeout: 120_000 })),
      )
      for (const w of workers) expect(w.exitCode, w.stderr).toBe(0)
      for (let i = 0; i < 200; i++) {
        if ((await registryRows(bench, "select count(*) as n from jobs where status != 'done'"))[0].n === 0) break
        await new Promise((res) => setTimeout(res, 100))
      }
      expect(
        await registryRows(bench, "select count(*) as n from jobs where status = 'done' and attempts = 1"),
      ).toEqual([{ n: 12 }])
      expect(await registryRows(bench, 'select max(attempts) as n from steps')).toEqual([{ n: 1 }])
      expect(readdirSync(join(bench, 'sites'))).toHaveLength(12)
      // Workers prepare the next job's password and hash ahead, racing for the same jobs: each
      // Administrator still logs in with the password stored on its tenant.
      const opened = await openBench({ cwd: bench })
      try {
        for (let i = 0; i < 12; i++) {
          const tenant = await showTenant(opened, `w${i}`, { showSecrets: true })
          const login = { site: tenant.site!, email: 'Administrator', password: tenant.admin_password! }
          expect(await checkPassword(opened, login)).toBe(true)
        }
      } finally {
        await opened.close()
      }
    })
  })
})

describe('secrets, notifications and doctor', () => {
  it('a wrong encryption key is reported as such, and a malformed one fails fast before anything is recorded', async () => {
    const bench = makeBench()
    await tenancy(bench, ['tenant', 'create', 'acme'])
    const other = Buffer.alloc(32, 9).toString('base64')
    const wrong = await tenancy(bench, ['tenant', 'show', 'acme', '--show-secrets'], {
      env: { TENANCY_ENCRYPTION_KEY: other },
    })
    expect(wrong.exitCode).toBe(2)
    expect(wrong.stderr).toMatch(/wrong encryption key/)
    const bad = await tenancy(bench, ['tenant', 'create', 'beta'], { env: { TENANCY_ENCRYPTION_KEY: 'not-a-key' } })
    expect(bad.exitCode).toBe(2)
    expect(bad.stderr).toMatch(/TENANCY_ENCRYPTION_KEY must hold 32 bytes/)
    expect((await tenancy(bench, ['tenant', 'list', '--json'])).json.tenants.map((t: any) => t.name)).toEqual(['acme'])
  })

  it('POSTs tenant events to a webhook', async () => {
    const { createServer } = await import('node:http')
    const bodies: any[] = []
    const server = createServer((req, res) => {
      let text = ''
      req.on('data', (c) => (text += c))
      req.on('end', () => {
        bodies.push(JSON.parse(text))
        res.end('ok')
      })
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    try {
      const bench = makeBench()
      const port = (server.address() as any).port
      setConfig(bench, (c) => (c.provision.notify = { webhook: `http://127.0.0.1:${port}/tenants` }))
      const r = await tenancy(bench, ['tenant', 'create', 'acme'])
      expect(r.exitCode, r.stderr).toBe(0)
      expect(bodies).toEqual([
        expect.objectContaining({
          event: 'tenant.active',
          tenant: expect.objectContaining({ name: 'acme', status: 'active' }),
        }),
      ])
      expect(JSON.stringify(bodies)).not.toMatch(/api_secret|admin_password/)
    } finally {
      server.close()
    }
  })

  it('doctor finds a stray directory and a site whose database is gone, and --fix repairs both', async () => {
    const bench = makeBench()
    await tenancy(bench, ['tenant', 'create', 'acme'])
    const { mkdirSync, rmSync, utimesSync } = await import('node:fs')
    mkdirSync(join(bench, 'sites', 'stray.localhost'))
    // doctor leaves directories younger than a minute alone (a site may be on its way in).
    const old = new Date(Date.now() - 120_000)
    utimesSync(join(bench, 'sites', 'stray.localhost'), old, old)
    rmSync(join(bench, 'sites', 'acme.localhost', 'db.sqlite'))
    const check = await tenancy(bench, ['doctor', '--json'])
    expect(check.exitCode).toBe(1)
    expect(check.json.findings.map((f: any) => f.kind).sort()).toEqual(['missing_site', 'stray_directory'])
    const fix = await tenancy(bench, ['doctor', '--fix', '--json'])
    expect(fix.exitCode, fix.stderr).toBe(0)
    expect(fix.json.remaining).toBe(0)
    expect(existsSync(join(bench, 'sites', 'stray.localhost'))).toBe(false)
    expect(readdirSync(join(bench, 'archived', 'sites')).some((d) => d.startsWith('stray.localhost-stray'))).toBe(true)
    await expectExactlyOne(bench, 'acme')
    expect((await tenancy(bench, ['doctor'])).exitCode).toBe(0)
  })

  it('SIGTERM lets a worker finish the running step, requeue the job and exit; the next worker finishes it', async () => {
    const bench = makeBench()
    const started = join(bench, 'step-started')
    writeFileSync(
      join(bench, 'slow.mjs'),
      `import { writeFileSync } from 'node:fs'\nwriteFileSync(${JSON.stringify(started)}, '')\nawait new Promise((r) => setTimeout(r, 1500))\nconsole.log('slow step finished')\n`,
    )
    setRunStep(bench, { name: 'slow', run: 'node slow.mjs' })
    const { spawnTenancy } = await import('./helpers.js')
    // Record the tenant as queued without letting --background start a worker of its own.
    setConfig(bench, (c) => (c.auto_provision_tenant_sites = false))
    await tenancy(bench, ['tenant', 'create', 'acme'])
    const db = new Database(registry(bench))
    db.prepare(
      "insert into jobs (tenant_id, kind, status, attempts, run_at, created_at, updated_at) select id, 'provision', 'queued', 0, ?, ?, ? from tenants",
    ).run(new Date().toISOString(), new Date().toISOString(), new Date().toISOString())
    db.prepare("update tenants set provisioning_status = 'queued'").run()
    db.close()
    const worker = spawnTenancy(bench, ['worker'])
    for (let i = 0; i < 200 && !existsSync(started); i++) await new Promise((r) => setTimeout(r, 50))
    worker.kill('SIGTERM')
    const r = await worker
    expect(r.exitCode).toBe(130)
    const show = (await tenancy(bench, ['tenant', 'show', 'acme', '--json'])).json
    expect(show.steps.map((s: any) => s.status)).toEqual([
      'done',
      'done',
      'pending',
      'pending',
      'pending',
      'pending',
      'pending',
    ])
    expect(show.steps[1].output).toBe('slow step finished')
    expect(query(registry(bench), 'select status, attempts from jobs')).toEqual([{ status: 'queued', attempts: 0 }])
    const again = await tenancy(bench, ['worker', '--once'])
    expect(again.exitCode, again.stderr).toBe(0)
    await expectExactlyOne(bench, 'acme')
  })
})

describe('operators fixing things', () => {
  it('a fixed (or removed) run step is what provision runs next; generate-keys keeps the stored secret right', async () => {
    const bench = makeBench()
    setRunStep(bench, { name: 'dns', run: 'exit 3' })
    expect((await tenancy(bench, ['tenant', 'create', 'acme'])).exitCode).toBe(1)
    setRunStep(bench, { name: 'dns', run: 'echo fixed' })
    const p = await tenancy(bench, ['provision', 'acme', '--json'])
    expect(p.exitCode, p.stderr).toBe(0)
    expect(p.json.steps[1]).toMatchObject({ name: 'dns', status: 'done', output: 'fixed' })
    setRunStep(bench, { name: 'dns', run: 'exit 3' })
    expect((await tenancy(bench, ['tenant', 'create', 'beta'])).exitCode).toBe(1)
    setConfig(bench, (c) => delete c.provision.steps)
    const removed = await tenancy(bench, ['provision', 'beta', '--json'])
    expect(removed.exitCode, removed.stderr).toBe(0)
    expect(removed.json.steps[1]).toMatchObject({
      name: 'dns',
      status: 'skipped',
      output: 'removed from provision.steps',
    })
    await expectExactlyOne(bench, 'beta')

    await tenancy(bench, ['generate-keys', 'api@acme.localhost', '--site', 'acme.localhost'])
    const secrets = (await tenancy(bench, ['tenant', 'show', 'acme', '--show-secrets', '--json'])).json
    const verify = await tenancy(bench, ['verify-key', secrets.api_key, '--site', 'acme.localhost'], {
      input: secrets.api_secret,
    })
    expect(verify.exitCode).toBe(0)
  })

  it('a wrong encryption key is refused before a tenant is recorded; doctor refuses to rebuild every site when all are missing', async () => {
    const bench = makeBench()
    await tenancy(bench, ['tenant', 'create', 'a'])
    await tenancy(bench, ['tenant', 'create', 'b'])
    const wrong = await tenancy(bench, ['tenant', 'create', 'c'], {
      env: { TENANCY_ENCRYPTION_KEY: Buffer.alloc(32, 5).toString('base64') },
    })
    expect(wrong.exitCode).toBe(2)
    expect(wrong.stderr).toMatch(/wrong encryption key/)
    expect((await tenancy(bench, ['tenant', 'list', '--json'])).json.tenants.map((t: any) => t.name)).toEqual([
      'a',
      'b',
    ])
    setConfig(bench, (c) => (c.sites_path = 'sites-typo'))
    const d = await tenancy(bench, ['doctor', '--fix', '--json'])
    expect(d.exitCode).toBe(1)
    expect(d.json.findings).toHaveLength(1)
    expect(d.json.findings[0]).toMatchObject({
      problem: expect.stringMatching(/none of the 2 registered sites is in .*sites-typo/),
      fixed: false,
    })
    setConfig(bench, (c) => (c.sites_path = 'sites'))
    expect((await tenancy(bench, ['doctor'])).exitCode).toBe(0)
    await expectExactlyOne(bench, 'a')
  })
})
