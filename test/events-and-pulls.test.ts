import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { describe, expect, it } from 'vitest'
import { makeBench, query, setConfig, tenancy } from './helpers.js'
import { REGISTRIES, registryRows, useRegistry } from './backends.js'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

/**
 * A notify command that logs `type tenant id-from-env id-from-stdin` per call, and fails
 * (after logging) while the file `receiver-down` exists in the bench.
 */
function notifyLogger(bench: string): () => { type: string; tenant: string; id: string; stdinId: string }[] {
  const log = join(bench, 'notify.log')
  writeFileSync(
    join(bench, 'notify.mjs'),
    `import { appendFileSync, existsSync, readFileSync } from 'node:fs'
const body = JSON.parse(readFileSync(0, 'utf8'))
appendFileSync(${JSON.stringify(log)}, [process.env.TENANCY_EVENT, process.env.TENANCY_TENANT, process.env.TENANCY_EVENT_ID, body.id].join(' ') + '\\n')
if (existsSync(${JSON.stringify(join(bench, 'receiver-down'))})) process.exit(1)
`,
  )
  setConfig(bench, (c) => (c.provision.notify = { run: 'node notify.mjs' }))
  return () =>
    existsSync(log)
      ? readFileSync(log, 'utf8')
          .trim()
          .split('\n')
          .map((line) => {
            const [type, tenant, id, stdinId] = line.split(' ') as [string, string, string, string]
            return { type, tenant, id, stdinId }
          })
      : []
}

// The sites here get shared_lib alone (lightSites): events and pulls are under test, not the apps.

describe.each(REGISTRIES)('the outbox: no event is lost (registry: $name)', ({ name: kind, skip }) => {
  it.skipIf(skip)(
    'kill -9 between the claim of a pull and its notification: the next command (or doctor --fix) notifies exactly once, with an id',
    async () => {
      const bench = makeBench({ lightSites: true })
      await useRegistry(bench, kind)
      const calls = notifyLogger(bench)
      expect((await tenancy(bench, ['pending-create', '--count', '2'])).exitCode).toBe(0)
      expect(calls().map((c) => c.type)).toEqual(['pending.created', 'pending.created'])
      const pool = calls().length

      // The next ordinary command finishes the pull and delivers what it announces.
      const killed = await tenancy(bench, ['tenant', 'create', 'x'], { env: { TENANCY_FAULT: 'pull-after-claim' } })
      expect(killed.exitCode, killed.stderr).not.toBe(0)
      expect(calls()).toHaveLength(pool)
      const list = await tenancy(bench, ['tenant', 'list', '--json'])
      expect(list.json.tenants.map((t: any) => [t.name, t.status])).toEqual([['x', 'active']])
      expect(
        calls()
          .slice(pool)
          .map((c) => [c.type, c.tenant]),
      ).toEqual([
        ['tenant.pulled', 'x'],
        ['tenant.active', 'x'],
      ])

      // Or doctor --fix, as the SPEC names it.
      const again = await tenancy(bench, ['tenant', 'create', 'y'], { env: { TENANCY_FAULT: 'pull-after-claim' } })
      expect(again.exitCode).not.toBe(0)
      const fix = await tenancy(bench, ['doctor', '--fix', '--json'])
      expect(fix.exitCode, fix.stderr).toBe(0)
      expect((await tenancy(bench, ['tenant', 'show', 'y', '--json'])).json).toMatchObject({
        status: 'active',
        provisioning_status: 'completed',
      })
      expect((await tenancy(bench, ['doctor', '--json'])).exitCode).toBe(0)

      const all = calls()
      expect(all.slice(pool).map((c) => `${c.type} ${c.tenant}`)).toEqual([
        'tenant.pulled x',
        'tenant.active x',
        'tenant.pulled y',
        'tenant.active y',
      ])
      for (const c of all) {
        expect(c.id).toMatch(UUID)
        expect(c.stdinId).toBe(c.id)
      }
      expect(new Set(all.map((c) => c.id)).size).toBe(6)
      expect(await registryRows(bench, 'select count(*) as n from events where next_attempt_at is not null')).toEqual([
        { n: 0 },
      ])
    },
  )

  it.skipIf(skip)(
    'kill -9 after the receiver got an event but before it was marked: sent again with the same id',
    async () => {
      const bench = makeBench({ lightSites: true })
      await useRegistry(bench, kind)
      const calls = notifyLogger(bench)
      const killed = await tenancy(bench, ['tenant', 'create', 'acme'], { env: { TENANCY_FAULT: 'event-after-send' } })
      expect(killed.exitCode).not.toBe(0)
      expect(calls().map((c) => c.type)).toEqual(['tenant.active'])
      // The tenant itself committed with its event.
      expect((await tenancy(bench, ['tenant', 'show', 'acme', '--json'])).json.status).toBe('active')
      const [first, second] = calls()
      expect(second).toBeDefined()
      expect(second!.id).toBe(first!.id)
      expect(calls()).toHaveLength(2)
      await tenancy(bench, ['tenant', 'list'])
      expect(calls()).toHaveLength(2)
    },
  )
})

describe('the outbox: a receiver that is down', () => {
  it('a failing notify command, then a working one: delivered later with the same id; doctor reports it meanwhile', async () => {
    const bench = makeBench({ lightSites: true })
    const calls = notifyLogger(bench)
    writeFileSync(join(bench, 'receiver-down'), '')
    const created = await tenancy(bench, ['tenant', 'create', 'acme'])
    expect(created.exitCode, created.stderr).toBe(0)
    expect(created.stderr).toMatch(
      /notifying tenant\.active for tenant "acme" failed: .*exited with code 1; it is sent again later/,
    )
    // Backing off: the next command does not hammer the receiver.
    await tenancy(bench, ['tenant', 'list'])
    expect(calls()).toHaveLength(1)
    const check = await tenancy(bench, ['doctor', '--json'])
    expect(check.exitCode).toBe(1)
    expect(check.json.findings).toEqual([
      expect.objectContaining({
        kind: 'undelivered_event',
        problem: expect.stringMatching(/^1 event\(s\) not yet delivered .*tenant\.active/),
      }),
    ])

    // With provision.notify unset, --fix can do nothing for them: not suggested, nothing "could not".
    let notify: unknown
    setConfig(bench, (c) => {
      notify = c.provision.notify
      delete c.provision.notify
    })
    const unset = await tenancy(bench, ['doctor'])
    expect(unset.exitCode).toBe(1)
    expect(unset.stdout).toBe('1 problem(s) remain')
    expect(unset.stderr).toContain('(set provision.notify to deliver them)')
    const unsetFix = await tenancy(bench, ['doctor', '--fix'])
    expect(unsetFix.exitCode).toBe(1)
    expect(unsetFix.stderr).not.toContain('could not')
    expect(calls()).toHaveLength(1)
    setConfig(bench, (c) => (c.provision.notify = notify))

    rmSync(join(bench, 'receiver-down'))
    const fix = await tenancy(bench, ['doctor', '--fix', '--json'])
    expect(fix.exitCode, JSON.stringify(fix.json)).toBe(0)
    const [failed, delivered] = calls()
    expect(calls()).toHaveLength(2)
    expect(delivered).toEqual({ ...failed, id: failed!.id })
    expect(delivered!.id).toMatch(UUID)
    expect((await tenancy(bench, ['doctor'])).exitCode).toBe(0)
    expect(calls()).toHaveLength(2)
  })

  it('a webhook that answers 500, then 200: the same event body and X-Tenancy-Event-Id header both times', async () => {
    const { createServer } = await import('node:http')
    const seen: { id: string | undefined; body: any; answered: number }[] = []
    let status = 500
    const server = createServer((req, res) => {
      let text = ''
      req.on('data', (c) => (text += c))
      req.on('end', () => {
        seen.push({
          id: req.headers['x-tenancy-event-id'] as string | undefined,
          body: JSON.parse(text),
          answered: status,
        })
        res.statusCode = status
        res.end()
      })
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    try {
      const bench = makeBench({ lightSites: true })
      setConfig(
        bench,
        (c) => (c.provision.notify = { webhook: `http://127.0.0.1:${(server.address() as any).port}/events` }),
      )
      const created = await tenancy(bench, ['tenant', 'create', 'acme'])
      expect(created.exitCode).toBe(0)
      expect(created.stderr).toMatch(/the webhook answered HTTP 500/)
      status = 200
      expect((await tenancy(bench, ['doctor', '--fix'])).exitCode).toBe(0)
      expect(seen.map((s) => s.answered)).toEqual([500, 200])
      expect(seen[1]).toEqual({ ...seen[0], answered: 200 })
      expect(seen[0]!.body).toMatchObject({
        id: seen[0]!.id,
        type: 'tenant.active',
        at: expect.any(String),
        tenant: { name: 'acme', status: 'active' },
      })
      expect(seen[0]!.id).toMatch(UUID)
    } finally {
      server.close()
    }
  })
})

describe('resuming follows the current provision.steps', () => {
  it('steps added after a failed run step run, in their place; steps already done stay done', async () => {
    const bench = makeBench()
    setConfig(bench, (c) => (c.provision.steps = ['create-site', { name: 'dns', run: 'exit 3' }, 'activate']))
    expect((await tenancy(bench, ['tenant', 'create', 'acme'])).exitCode).toBe(1)
    const log = join(bench, 'order.log')
    const step = (name: string) => ({ name, run: `echo ${name} >> ${JSON.stringify(log)}` })
    setConfig(
      bench,
      (c) =>
        (c.provision.steps = [
          'create-site',
          step('before-dns'),
          step('dns'),
          'developer-mode',
          step('after-dns'),
          'activate',
        ]),
    )
    const p = await tenancy(bench, ['provision', 'acme', '--json'])
    expect(p.exitCode, p.stderr).toBe(0)
    expect(p.json.steps.map((s: any) => [s.name, s.status, s.attempts])).toEqual([
      ['create-site', 'done', 1],
      ['before-dns', 'done', 1],
      ['dns', 'done', 2],
      ['developer-mode', 'done', 1],
      ['after-dns', 'done', 1],
      ['activate', 'done', 1],
    ])
    expect(readFileSync(log, 'utf8')).toBe('before-dns\ndns\nafter-dns\n')
    const show = await tenancy(bench, ['tenant', 'show', 'acme', '--json'])
    expect(show.json).toMatchObject({ status: 'active', provisioning_status: 'completed' })
  })
})

describe('a pull that cannot finish leaves the pool as it was', () => {
  const pending = async (bench: string) =>
    (await tenancy(bench, ['tenant', 'list', '--only-pending', '--json'])).json.tenants.map((t: any) => [
      t.name,
      t.provisioning_status,
    ])

  it('an unrelated broken app.json does not stop sign-ups; a broken installed one stops the pull before its claim', async () => {
    const bench = makeBench({ lightSites: true })
    expect((await tenancy(bench, ['pending-create', '--count', '2'])).exitCode).toBe(0)
    const { mkdirSync } = await import('node:fs')
    mkdirSync(join(bench, 'apps', 'badjson'))
    writeFileSync(join(bench, 'apps', 'badjson', 'app.json'), '{"name": "badjson", ')
    const ok = await tenancy(bench, ['tenant', 'create', 'acme', '--json'])
    expect(ok.exitCode, ok.stderr).toBe(0)
    expect(ok.json).toMatchObject({ mode: 'pulled', name: 'acme', status: 'active' })

    const before = await pending(bench)
    const manifest = join(bench, 'apps', 'shared_lib', 'app.json')
    const good = readFileSync(manifest, 'utf8')
    writeFileSync(manifest, '{"name": "shared_lib", ')
    const refused = await tenancy(bench, ['tenant', 'create', 'beta'])
    expect(refused.exitCode).toBe(2)
    expect(refused.stderr).toMatch(
      /cannot pull a tenant from the pool: .*shared_lib.app\.json.*; the pool is unchanged/,
    )
    expect(await pending(bench)).toEqual(before)
    expect((await tenancy(bench, ['tenant', 'show', 'beta'])).exitCode).toBe(2)
    writeFileSync(manifest, good)
    const later = await tenancy(bench, ['tenant', 'create', 'beta', '--json'])
    expect(later.exitCode, later.stderr).toBe(0)
    expect(later.json).toMatchObject({ mode: 'pulled', name: 'beta' })
  })

  it('a pool site whose database cannot be opened: the pull fails, the tenant is back in the pool under its own name, never shown completed', async () => {
    const bench = makeBench({ lightSites: true })
    expect((await tenancy(bench, ['pending-create', '--count', '1'])).exitCode).toBe(0)
    const [placeholder] = (await tenancy(bench, ['tenant', 'list', '--only-pending', '--json'])).json.tenants
    const db = join(bench, 'sites', placeholder.site, 'db.sqlite')
    const saved = readFileSync(db)
    writeFileSync(db, 'this is not a database, it is a full page of text '.repeat(100))
    const r = await tenancy(bench, ['tenant', 'create', 'acme', '--json'])
    expect(r.exitCode).toBe(1)
    expect(r.json.error.message).toMatch(/pulling a tenant from the pool failed: .*; the tenant stays in the pool/)
    expect((await tenancy(bench, ['tenant', 'show', 'acme'])).exitCode).toBe(2)
    const back = (await tenancy(bench, ['tenant', 'show', placeholder.name, '--json'])).json
    expect(back).toMatchObject({
      name: placeholder.name,
      site: placeholder.site,
      pending_since: placeholder.pending_since,
      provisioning_status: 'completed',
      api_key: placeholder.api_key,
    })
    expect(existsSync(join(bench, 'sites', placeholder.site))).toBe(true)
    expect(existsSync(join(bench, 'sites', 'acme.localhost'))).toBe(false)
    writeFileSync(db, saved)
    const again = await tenancy(bench, ['tenant', 'create', 'acme', '--json'])
    expect(again.exitCode, again.stderr).toBe(0)
    expect(again.json).toMatchObject({ mode: 'pulled', name: 'acme', status: 'active' })
    expect(again.json.api_key).not.toBe(placeholder.api_key)
    expect((await tenancy(bench, ['doctor'])).exitCode).toBe(0)
  })

  it("while a pull is unfinished (killed after its claim) the tenant is not shown completed with the placeholder's key", async () => {
    const bench = makeBench({ lightSites: true })
    expect((await tenancy(bench, ['pending-create', '--count', '1'])).exitCode).toBe(0)
    const [placeholder] = (await tenancy(bench, ['tenant', 'list', '--only-pending', '--json'])).json.tenants
    const killed = await tenancy(bench, ['tenant', 'create', 'acme'], { env: { TENANCY_FAULT: 'pull-after-claim' } })
    expect(killed.exitCode).not.toBe(0)
    const rows = query(join(bench, '.tenancy', 'registry.db'), 'select name, pull_from from tenants')
    expect(rows).toEqual([{ name: 'acme', pull_from: placeholder.site }])
    const { tenantJson } = await import('../src/registry/tenants.js')
    const row = query(join(bench, '.tenancy', 'registry.db'), 'select * from tenants')[0]
    expect(tenantJson(row)).toMatchObject({
      name: 'acme',
      status: 'inactive',
      provisioning_status: 'in_progress',
      api_key: null,
    })
    const shown = (await tenancy(bench, ['tenant', 'show', 'acme', '--json'])).json
    expect(shown).toMatchObject({ status: 'active', provisioning_status: 'completed' })
    expect(shown.api_key).not.toBe(placeholder.api_key)
  })
})

/**
 * Live `tenancy worker` processes of a bench, from /proc. A child the worker forks (a hook)
 * carries its parent's command line until it execs: a match whose parent matches is not counted.
 */
function workerProcesses(bench: string): number[] {
  const found = new Map<number, number>()
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    let args: string[]
    try {
      args = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0')
    } catch {
      continue
    }
    if (args.includes('worker') && args.includes(join(bench, 'tenancy.config.json'))) {
      let stat: string[]
      try {
        stat = readFileSync(`/proc/${entry}/stat`, 'utf8').split(') ')[1]!.split(' ')
      } catch {
        continue
      }
      // A zombie (exited, not yet reaped) is not alive.
      if (stat[0] !== 'Z') found.set(Number(entry), Number(stat[1]))
    }
  }
  return [...found].filter(([, parent]) => !found.has(parent)).map(([pid]) => pid)
}

describe('one background worker per machine', () => {
  it('15 concurrent tenant create --background start at most one worker alive at any time, and every job is done once', async () => {
    const bench = makeBench({ lightSites: true })
    let most = 0
    const seen = new Set<number>()
    let sampling = true
    const sampler = (async () => {
      while (sampling) {
        const alive = workerProcesses(bench)
        alive.forEach((p) => seen.add(p))
        most = Math.max(most, alive.length)
        await new Promise((r) => setTimeout(r, 20))
      }
    })()
    const names = Array.from({ length: 15 }, (_, i) => `bg${i}`)
    const registry = join(bench, '.tenancy', 'registry.db')
    expect((await tenancy(bench, ['tenant', 'list'])).exitCode).toBe(0)
    // Hold the registry's write lock while all 15 start, so they record their tenants and look
    // for a worker in one burst, faster than a worker can start and register.
    const lock = new Database(registry)
    lock.exec('BEGIN IMMEDIATE')
    const running = names.map((n) => tenancy(bench, ['tenant', 'create', n, '--background', '--json']))
    await new Promise((r) => setTimeout(r, 3000))
    lock.exec('COMMIT')
    lock.close()
    const created = await Promise.all(running)
    for (const r of created) expect(r.exitCode, r.stderr).toBe(0)
    for (let i = 0; i < 600; i++) {
      if (
        query(registry, "select count(*) as n from jobs where status != 'done'")[0].n === 0 &&
        workerProcesses(bench).length === 0
      )
        break
      await new Promise((r) => setTimeout(r, 100))
    }
    sampling = false
    await sampler
    expect(
      most,
      `${[...seen]} ${readFileSync(join(bench, '.tenancy', 'worker.log'), 'utf8')} ${created.filter((r) => r.json.worker_started).length}`,
    ).toBe(1)
    const started = created.filter((r) => r.json.worker_started).length
    expect(started).toBeGreaterThanOrEqual(1)
    expect(seen.size).toBe(started)
    const log = readFileSync(join(bench, '.tenancy', 'worker.log'), 'utf8')
    expect(log.match(/^worker \d+ started/gm)).toHaveLength(started)
    expect(query(registry, "select count(*) as n from jobs where status = 'done' and attempts = 1")).toEqual([
      { n: 15 },
    ])
    const tenants = (await tenancy(bench, ['tenant', 'list', '--json'])).json.tenants
    expect(tenants.map((t: any) => [t.name, t.status]).sort()).toEqual(names.map((n) => [n, 'active']).sort())
    expect(query(registry, "select count(*) as n from leases where name like 'worker%'")).toEqual([{ n: 0 }])
  }, 120_000)
})

describe('two migrate runs at once', () => {
  it('each pool site is migrated by one run and found up to date by the other; none is skipped with a wrong reason', async () => {
    const bench = makeBench({ lightSites: true })
    expect((await tenancy(bench, ['pending-create', '--count', '3'])).exitCode).toBe(0)
    writeFileSync(
      join(bench, 'apps', 'shared_lib', 'migrations', '0009_slow.mjs'),
      `export async function up(db) {\n  await new Promise((r) => setTimeout(r, 400))\n  await db.schema.createTable('slow_things').addColumn('id', 'integer').execute()\n}\n`,
    )
    const runs = await Promise.all(
      [0, 1].map(() => tenancy(bench, ['migrate', '--with-pending', '--json', '--concurrency', '1'])),
    )
    for (const r of runs) expect(r.exitCode, r.stderr).toBe(0)
    const sites = (await tenancy(bench, ['tenant', 'list', '--only-pending', '--json'])).json.tenants
      .map((t: any) => t.site)
      .sort()
    expect(sites).toHaveLength(3)
    for (const r of runs) expect(r.json.sites.map((s: any) => s.site).sort()).toEqual(sites)
    for (const site of sites) {
      const outcomes = runs.map((r) => r.json.sites.find((s: any) => s.site === site))
      expect(outcomes.map((o) => o.status).sort(), JSON.stringify(outcomes)).toEqual(['migrated', 'up_to_date'])
      expect(outcomes.find((o) => o.status === 'migrated').applied).toEqual(['shared_lib/0009_slow'])
      expect(
        query(
          join(bench, 'sites', site, 'db.sqlite'),
          "select count(*) as n from sqlite_master where name = 'slow_things'",
        ),
      ).toEqual([{ n: 1 }])
    }
  })
})
