import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { describe, expect, it } from 'vitest'
import { makeBench, setRunStep, tenancy } from './helpers.js'
import { REGISTRIES, registryRows, siteConfig } from './backends.js'
import { benchWithReceiver, type Receiver } from './webhook-receiver.js'

/** An active tenant with its API credentials. */
async function activeTenant(bench: string, name: string): Promise<{ site: string; key: string; secret: string }> {
  const created = await tenancy(bench, ['tenant', 'create', name, '--no-pool'])
  expect(created.exitCode, created.stderr).toBe(0)
  const shown = (await tenancy(bench, ['tenant', 'show', name, '--show-secrets', '--json'])).json
  return { site: shown.site, key: shown.api_key, secret: shown.api_secret }
}

const verify = (bench: string, t: { site: string; key: string; secret: string }, json = false) =>
  tenancy(bench, ['verify-key', t.key, '--site', t.site, ...(json ? ['--json'] : [])], { input: t.secret })

/** The receiver heard the tenant become active, suspended and resumed, once each; doctor finds nothing. */
async function expectOneSuspensionAnnounced(bench: string, receiver: Receiver): Promise<void> {
  expect(receiver.accepted().map((d) => d.body.type)).toEqual(['tenant.active', 'tenant.suspended', 'tenant.resumed'])
  expect((await tenancy(bench, ['doctor'])).exitCode).toBe(0)
}

describe.each(REGISTRIES)('tenant suspend and resume (registry: $name)', ({ name: kind, skip }) => {
  it.skipIf(skip)(
    'suspend: maintenance_mode on, verify-key refused, fleet commands still reach the site; resume: accepted again; each once',
    async () => {
      const { bench, receiver } = await benchWithReceiver(kind)
      const acme = await activeTenant(bench, 'acme')
      expect((await verify(bench, acme)).exitCode).toBe(0)

      const suspended = await tenancy(bench, ['tenant', 'suspend', 'acme', '--reason', 'invoice unpaid', '--json'])
      expect(suspended.exitCode, suspended.stderr).toBe(0)
      expect(suspended.json).toMatchObject({
        name: 'acme',
        status: 'suspended',
        suspend_reason: 'invoice unpaid',
        suspended_at: expect.any(String),
        changed: true,
      })
      expect(siteConfig(bench, acme.site).maintenance_mode).toBe(1)

      const refused = await verify(bench, acme)
      expect(refused.exitCode).toBe(1)
      expect(refused.stderr).toMatch(
        /site is suspended: acme\.localhost \(tenant "acme": invoice unpaid\); its API keys are refused until "tenancy tenant resume acme"/,
      )
      const refusedJson = await verify(bench, acme, true)
      expect(refusedJson.exitCode).toBe(1)
      expect(refusedJson.json).toMatchObject({ valid: false, user: null, suspended: { tenant: 'acme' } })

      // Again: nothing changes, no second event.
      const again = await tenancy(bench, ['tenant', 'suspend', 'acme', '--json'])
      expect(again.json).toMatchObject({ status: 'suspended', changed: false, suspend_reason: 'invoice unpaid' })
      const listed = await tenancy(bench, ['tenant', 'list', '--status', 'suspended', '--json'])
      expect(listed.json.tenants.map((t: any) => t.name)).toEqual(['acme'])

      // The fleet still reaches a suspended site.
      const ran = await tenancy(bench, ['run', '--site', 'all', '--json', '--', 'node', '-e', '0'])
      expect(ran.exitCode, ran.stderr).toBe(0)
      expect(ran.json.sites.map((s: any) => [s.site, s.status])).toEqual([['acme.localhost', 'succeeded']])
      const migrated = await tenancy(bench, ['migrate', '--json'])
      expect(migrated.json.sites.map((s: any) => s.site)).toEqual(['acme.localhost'])
      const backedUp = await tenancy(bench, ['backup', '--site', 'acme.localhost', '--json'])
      expect(backedUp.json.sites.map((s: any) => s.status)).toEqual(['backed_up'])

      const resumed = await tenancy(bench, ['tenant', 'resume', 'acme', '--json'])
      expect(resumed.json).toMatchObject({ status: 'active', changed: true, suspended_at: null, suspend_reason: null })
      expect(siteConfig(bench, acme.site)).not.toHaveProperty('maintenance_mode')
      expect((await verify(bench, acme)).exitCode).toBe(0)
      expect((await tenancy(bench, ['tenant', 'resume', 'acme', '--json'])).json.changed).toBe(false)

      await expectOneSuspensionAnnounced(bench, receiver)
    },
    120_000,
  )

  it.skipIf(skip)(
    'kill -9 between the registry commit and the site config write: refused from the commit on, and the next command writes the config',
    async () => {
      const { bench, receiver } = await benchWithReceiver(kind)
      const acme = await activeTenant(bench, 'acme')
      const state = async () =>
        (await registryRows(bench, "select status, config_sync from tenants where name = 'acme'"))[0]

      const killed = await tenancy(bench, ['tenant', 'suspend', 'acme'], {
        env: { TENANCY_FAULT: 'status-after-commit' },
      })
      expect(killed.exitCode).not.toBe(0)
      expect(await state()).toEqual({ status: 'suspended', config_sync: 1 })
      expect(siteConfig(bench, acme.site)).not.toHaveProperty('maintenance_mode')
      // The next command (whatever it is) finishes the change before it does its own work.
      expect((await verify(bench, acme)).exitCode).toBe(1)
      expect(siteConfig(bench, acme.site).maintenance_mode).toBe(1)
      expect(await state()).toEqual({ status: 'suspended', config_sync: null })

      const killedResume = await tenancy(bench, ['tenant', 'resume', 'acme'], {
        env: { TENANCY_FAULT: 'status-after-commit' },
      })
      expect(killedResume.exitCode).not.toBe(0)
      expect(await state()).toEqual({ status: 'active', config_sync: 1 })
      expect(siteConfig(bench, acme.site).maintenance_mode).toBe(1)
      // Running the command again finishes it too (the next command did, before it).
      const rerun = await tenancy(bench, ['tenant', 'resume', 'acme', '--json'])
      expect(rerun.json).toMatchObject({ status: 'active', changed: false })
      expect(siteConfig(bench, acme.site)).not.toHaveProperty('maintenance_mode')
      expect(await state()).toEqual({ status: 'active', config_sync: null })
      expect((await verify(bench, acme)).exitCode).toBe(0)

      // The events committed with the changes, and arrived once each.
      await expectOneSuspensionAnnounced(bench, receiver)
    },
    120_000,
  )
})

describe('tenant suspend: what it refuses, and what doctor finds', () => {
  it('a pool tenant is exit 2, an unprovisioned one exit 1 naming "tenancy provision", unknown names and bad reasons exit 2', async () => {
    const bench = makeBench()
    expect((await tenancy(bench, ['pending-create', '--count', '1'])).exitCode).toBe(0)
    const [pending] = (await tenancy(bench, ['tenant', 'list', '--only-pending', '--json'])).json.tenants
    const pool = await tenancy(bench, ['tenant', 'suspend', pending.name])
    expect(pool.exitCode).toBe(2)
    expect(pool.stderr).toMatch(/is a pending tenant in the pool and belongs to nobody yet, so it cannot be suspended/)

    setRunStep(bench, { name: 'dns', run: 'exit 3' })
    expect((await tenancy(bench, ['tenant', 'create', 'broken', '--no-pool'])).exitCode).toBe(1)
    const failed = await tenancy(bench, ['tenant', 'suspend', 'broken'])
    expect(failed.exitCode).toBe(1)
    expect(failed.stderr).toMatch(
      /tenant "broken" is not provisioned \(provisioning_status failed\), so it cannot be suspended; finish it with "tenancy provision broken" first/,
    )
    expect((await tenancy(bench, ['tenant', 'resume', 'broken'])).exitCode).toBe(1)

    const unknown = await tenancy(bench, ['tenant', 'suspend', 'nobody'])
    expect(unknown.exitCode).toBe(2)
    expect(unknown.stderr).toMatch(/tenant "nobody" does not exist/)
    for (const reason of ['', 'two\nlines', 'x'.repeat(501)]) {
      const bad = await tenancy(bench, ['tenant', 'suspend', 'broken', '--reason', reason])
      expect(bad.exitCode).toBe(2)
      expect(bad.stderr).toMatch(/invalid --reason .*: give one line of 1 to 500 characters/)
    }
    expect((await tenancy(bench, ['tenant', 'suspend', 'broken', '--site', 'x.localhost'])).exitCode).toBe(2)
    const rows = await registryRows(bench, "select count(*) as n from tenants where status = 'suspended'")
    expect(rows).toEqual([{ n: 0 }])
  })

  it("doctor reports a suspended site without maintenance_mode and --fix writes it; an operator's own maintenance_mode is left alone but refuses keys", async () => {
    const bench = makeBench()
    const acme = await activeTenant(bench, 'acme')
    const beta = await activeTenant(bench, 'beta')
    expect((await tenancy(bench, ['tenant', 'suspend', 'acme'])).exitCode).toBe(0)
    const file = join(bench, 'sites', acme.site, 'site_config.json')
    const { maintenance_mode: _m, ...rest } = siteConfig(bench, acme.site)
    writeFileSync(file, JSON.stringify(rest))
    const found = await tenancy(bench, ['doctor', '--json'])
    expect(found.exitCode).toBe(1)
    expect(found.json.findings).toEqual([
      expect.objectContaining({
        kind: 'maintenance_mismatch',
        subject: 'acme',
        problem: 'tenant "acme" is suspended but site_config.json of "acme.localhost" has no maintenance_mode: 1',
      }),
    ])
    // The registry is what verify-key reads: refused meanwhile.
    expect((await verify(bench, acme)).exitCode).toBe(1)
    expect((await tenancy(bench, ['doctor', '--fix'])).exitCode).toBe(0)
    expect(siteConfig(bench, acme.site).maintenance_mode).toBe(1)

    expect((await tenancy(bench, ['set-config', 'maintenance_mode', '1', '--site', beta.site])).exitCode).toBe(0)
    expect((await tenancy(bench, ['doctor'])).exitCode).toBe(0)
    const inMaintenance = await verify(bench, beta)
    expect(inMaintenance.exitCode).toBe(1)
    expect(inMaintenance.stderr).toMatch(/site is suspended: beta\.localhost is in maintenance mode/)
    expect((await tenancy(bench, ['set-config', 'maintenance_mode', '0', '--site', beta.site])).exitCode).toBe(0)
    expect((await verify(bench, beta)).exitCode).toBe(0)
  })

  it('a registry of schema 6 with tenants is brought up to date and its tenants can be suspended', async () => {
    const bench = makeBench()
    const acme = await activeTenant(bench, 'acme')
    const file = join(bench, '.tenancy', 'registry.db')
    const db = new Database(file)
    db.exec(`drop index tenants_config_sync;
      alter table tenants drop column config_sync;
      alter table tenants drop column suspend_reason;
      alter table tenants drop column suspended_at;
      drop index sites_renaming;
      alter table sites drop column rename_from;
      drop index site_jobs_host;
      drop table site_jobs;
      drop table site_job_results;
      alter table jobs drop column host;
      delete from registry_migrations where version >= 7;`)
    db.close()
    const shown = await tenancy(bench, ['tenant', 'show', 'acme', '--json'])
    expect(shown.json).toMatchObject({ status: 'active', suspended_at: null, suspend_reason: null })
    expect((await tenancy(bench, ['tenant', 'suspend', 'acme'])).exitCode).toBe(0)
    expect((await verify(bench, acme)).exitCode).toBe(1)
  })
})

describe('tenant update', () => {
  it('merges --data into the attributes and removes --unset keys; bad input is exit 2 and changes nothing', async () => {
    const bench = makeBench()
    expect(
      (await tenancy(bench, ['tenant', 'create', 'acme', '--no-pool', '--data', 'plan=free', '--data', 'trial=true']))
        .exitCode,
    ).toBe(0)
    const updated = await tenancy(bench, [
      'tenant',
      'update',
      'acme',
      '--data',
      'plan=pro',
      '--data',
      'seats=25',
      '--data',
      'zip=01234',
      '--unset',
      'trial',
      '--json',
    ])
    expect(updated.exitCode, updated.stderr).toBe(0)
    expect(updated.json).toMatchObject({ changed: true, data: { plan: 'pro', seats: 25, zip: '01234' } })
    expect(updated.json.data).not.toHaveProperty('trial')
    expect((await tenancy(bench, ['tenant', 'show', 'acme', '--json'])).json.data).toEqual({
      plan: 'pro',
      seats: 25,
      zip: '01234',
    })
    const same = await tenancy(bench, ['tenant', 'update', 'acme', '--unset', 'trial', '--json'])
    expect(same.json.changed).toBe(false)
    expect((await tenancy(bench, ['tenant', 'update', 'acme', '--unset', 'zip'])).stdout).toMatch(
      /Updated tenant acme: data \{"plan":"pro","seats":25\}/,
    )

    const bad: [string[], RegExp][] = [
      [['--data', 'plan'], /invalid --data "plan": use key=value/],
      [['--data', '=x'], /invalid --data "=x": use key=value/],
      [['--data', '9lives=yes'], /invalid --data "9lives=yes"/],
      [['--data', '__proto__=x'], /__proto__/],
      [
        ['--unset', 'two words'],
        /invalid --unset "two words": a key is letters, digits and _ \(at most 64, not starting with a digit\)/,
      ],
      [[], /tenant update needs --data key=value or --unset key/],
      [['--data', 'plan=x', '--unset', 'plan'], /--data and --unset both name "plan"/],
    ]
    for (const [args, message] of bad) {
      const r = await tenancy(bench, ['tenant', 'update', 'acme', ...args])
      expect(r.exitCode, args.join(' ')).toBe(2)
      expect(r.stderr).toMatch(message)
    }
    expect((await tenancy(bench, ['tenant', 'update', 'nobody', '--data', 'a=1'])).exitCode).toBe(2)
    expect((await tenancy(bench, ['tenant', 'show', 'acme', '--json'])).json.data).toEqual({ plan: 'pro', seats: 25 })
  })
})

describe('tenancy events', () => {
  it('lists the outbox newest first; --undelivered, --limit and --offset with the total; humans get a table', async () => {
    // The receiver refuses acme's events and takes beta's: a retry of acme's that falls due on a
    // slow machine fails again, so which events are undelivered does not depend on timing.
    const { bench } = await benchWithReceiver('sqlite', {
      answers: (event) => (event.tenant?.name === 'acme' ? 500 : 200),
    })
    expect((await tenancy(bench, ['events'])).stdout).toMatch(/No events yet/)
    await activeTenant(bench, 'acme')
    expect((await tenancy(bench, ['tenant', 'suspend', 'acme'])).exitCode).toBe(0)
    expect((await tenancy(bench, ['tenant', 'resume', 'acme'])).exitCode).toBe(0)
    expect((await tenancy(bench, ['tenant', 'update', 'acme', '--data', 'plan=pro'])).exitCode).toBe(0)
    await activeTenant(bench, 'beta')

    const all = await tenancy(bench, ['events', '--json'])
    expect(all.json.total).toBe(4)
    expect(all.json.events.map((e: any) => `${e.type} ${e.tenant}`)).toEqual([
      'tenant.active beta',
      'tenant.resumed acme',
      'tenant.suspended acme',
      'tenant.active acme',
    ])
    expect(Object.keys(all.json.events[0])).toEqual([
      'id',
      'type',
      'tenant',
      'site',
      'at',
      'delivered',
      'delivered_at',
      'attempts',
      'next_attempt_at',
      'last_error',
    ])
    const undelivered = await tenancy(bench, ['events', '--undelivered', '--json'])
    expect(undelivered.json.total).toBe(3)
    expect(undelivered.json.events.map((e: any) => e.type)).toEqual([
      'tenant.resumed',
      'tenant.suspended',
      'tenant.active',
    ])
    for (const e of undelivered.json.events) {
      expect(e.delivered).toBe(false)
      expect(e.attempts).toBeGreaterThanOrEqual(1)
    }
    const page = await tenancy(bench, ['events', '--undelivered', '--limit', '1', '--offset', '1', '--json'])
    expect(page.json).toMatchObject({ total: 3, events: [{ type: 'tenant.suspended' }] })

    const human = await tenancy(bench, ['events', '--limit', '2'])
    expect(human.exitCode).toBe(0)
    const lines = human.stdout.trimEnd().split('\n')
    expect(lines[0]).toMatch(/^AT\s+TYPE\s+TENANT\s+DELIVERY\s+ATTEMPTS\s+ID$/)
    expect(lines[1]).toMatch(/tenant\.active\s+beta\s+delivered /)
    expect(lines[2]).toMatch(/tenant\.resumed\s+acme\s+next try /)
    expect(lines[3]).toMatch(/^ {2}notifying tenant\.resumed for tenant "acme" failed: the webhook answered HTTP 500/)
    expect(human.stderr).toMatch(/^showing 1–2 of 4 events; --offset 2 for more$/m)

    for (const flag of ['--limit', '--offset'])
      for (const value of ['', '-1', '1.5', 'ten']) {
        const r = await tenancy(bench, ['events', flag, value])
        expect(r.exitCode, `${flag} ${value}`).toBe(2)
        expect(r.stderr).toContain(`invalid ${flag} "${value}"`)
      }
    expect((await tenancy(bench, ['events', '--site', 'acme.localhost'])).exitCode).toBe(2)
  })

  it('without provision.notify nothing is recorded, and it says so', async () => {
    const bench = makeBench()
    await activeTenant(bench, 'acme')
    const r = await tenancy(bench, ['events'])
    expect(r.exitCode).toBe(0)
    expect(r.stdout).toMatch(/No events: provision\.notify is not set, so none are recorded/)
    expect((await tenancy(bench, ['events', '--json'])).json).toEqual({ events: [], total: 0 })
  })
})
