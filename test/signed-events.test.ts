import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { makeBench, setConfig, setRunStep, tenancy } from './helpers.js'
import { REGISTRIES, registryRows } from './backends.js'
import { benchWithReceiver, registryExec, startReceiver } from './webhook-receiver.js'

const SECRET = 'whsec-7f3a-test-signing-secret'

describe.each(REGISTRIES)('signed webhooks from the outbox (registry: $name)', ({ name: kind, skip }) => {
  it.skipIf(skip)(
    'every lifecycle event reaches the receiver signed, each once after dropping duplicate ids, across kills between change and delivery',
    async () => {
      const { bench, receiver } = await benchWithReceiver(kind, { secret: SECRET })

      expect((await tenancy(bench, ['pending-create', '--count', '1'])).exitCode).toBe(0)
      const pulled = await tenancy(bench, ['tenant', 'create', 'acme', '--json'])
      expect(pulled.json, pulled.stderr).toMatchObject({ mode: 'pulled', status: 'active' })

      // kill -9 after the suspension committed, before its event was sent: nothing reached
      // the receiver, and the next command sends it.
      const before = receiver.deliveries.length
      const killed = await tenancy(bench, ['tenant', 'suspend', 'acme', '--reason', 'invoice 1042 unpaid'], {
        env: { TENANCY_FAULT: 'event-before-send' },
      })
      expect(killed.exitCode).not.toBe(0)
      expect(receiver.deliveries).toHaveLength(before)
      expect((await tenancy(bench, ['tenant', 'list'])).exitCode).toBe(0)
      expect(receiver.deliveries.map((d) => d.body.type).slice(before)).toEqual(['tenant.suspended'])

      // kill -9 after the receiver took the event, before it was marked: sent again, same id.
      const resumed = await tenancy(bench, ['tenant', 'resume', 'acme'], { env: { TENANCY_FAULT: 'event-after-send' } })
      expect(resumed.exitCode).not.toBe(0)
      expect((await tenancy(bench, ['tenant', 'show', 'acme', '--json'])).json.status).toBe('active')

      expect((await tenancy(bench, ['tenant', 'create', 'beta', '--no-pool'])).exitCode).toBe(0)
      expect((await tenancy(bench, ['tenant', 'delete', 'beta', '--yes', '--no-backup'])).exitCode).toBe(0)
      setRunStep(bench, { name: 'dns', run: 'exit 3' })
      expect((await tenancy(bench, ['tenant', 'create', 'gamma', '--no-pool'])).exitCode).toBe(1)

      // Every request carried a valid signature of its exact body, and its id in the header and the body.
      for (const d of receiver.deliveries) {
        expect(d.signatureValid, d.raw).toBe(true)
        expect(d.id).toBe(d.body.id)
        expect(d.headers['x-tenancy-event-type']).toBe(d.body.type)
      }
      const resumedDeliveries = receiver.deliveries.filter((d) => d.body.type === 'tenant.resumed')
      expect(resumedDeliveries).toHaveLength(2)
      expect(resumedDeliveries[1]!.raw).toBe(resumedDeliveries[0]!.raw)

      const events = receiver.accepted()
      expect(events.map((d) => `${d.body.type} ${d.body.tenant.name}`)).toEqual([
        expect.stringMatching(/^pending\.created pending-[0-9a-f]+$/),
        'tenant.pulled acme',
        'tenant.active acme',
        'tenant.suspended acme',
        'tenant.resumed acme',
        'tenant.active beta',
        'tenant.deleted beta',
        'tenant.failed gamma',
      ])
      expect(new Set(events.map((d) => d.id)).size).toBe(events.length)
      const byType = Object.fromEntries(events.map((d) => [d.body.type, d.body]))
      expect(byType['tenant.suspended']).toMatchObject({
        reason: 'invoice 1042 unpaid',
        tenant: { name: 'acme', status: 'suspended', suspend_reason: 'invoice 1042 unpaid' },
      })
      expect(byType['tenant.resumed'].tenant).toMatchObject({ status: 'active', suspended_at: null })
      expect(byType['tenant.pulled'].pulled_from).toBe(byType['pending.created'].tenant.site)
      expect(byType['tenant.deleted'].tenant).toMatchObject({ name: 'beta', site: 'beta.localhost' })
      for (const body of events.map((d) => d.body)) {
        expect(Object.keys(body).slice(0, 3)).toEqual(['id', 'type', 'event'])
        expect(Date.parse(body.at)).not.toBeNaN()
      }

      // The outbox agrees: all delivered, newest first.
      const listed = await tenancy(bench, ['events', '--json'])
      expect(listed.json.total).toBe(8)
      expect(listed.json.events.map((e: any) => e.id)).toEqual(events.map((d) => d.id).reverse())
      expect(listed.json.events.every((e: any) => e.delivered && e.next_attempt_at === null)).toBe(true)
      // `attempts` counts the tries whose outcome was recorded: the one killed before its mark is not among them.
      expect(listed.json.events.find((e: any) => e.type === 'tenant.resumed').attempts).toBe(1)
      expect((await tenancy(bench, ['events', '--undelivered', '--json'])).json).toEqual({ events: [], total: 0 })
    },
    180_000,
  )

  it.skipIf(skip)(
    'a receiver that fails twice, then takes it: retried with growing backoff, the same id and body every time',
    async () => {
      const { bench, receiver } = await benchWithReceiver(kind, { secret: SECRET, answers: [500, 503] })
      const created = await tenancy(bench, ['tenant', 'create', 'acme', '--no-pool'])
      expect(created.exitCode).toBe(0)
      expect(created.stderr).toMatch(
        /warning: notifying tenant\.active for tenant "acme" failed: the webhook answered HTTP 500; it is sent again later/,
      )
      const first = (await tenancy(bench, ['events', '--undelivered', '--json'])).json
      expect(first.total).toBe(1)
      expect(first.events[0]).toMatchObject({
        type: 'tenant.active',
        tenant: 'acme',
        site: 'acme.localhost',
        delivered: false,
        attempts: 1,
        last_error: expect.stringMatching(/HTTP 500/),
      })
      const firstDelay = Date.parse(first.events[0].next_attempt_at) - receiver.deliveries[0]!.at
      expect(firstDelay).toBeGreaterThanOrEqual(9_000)

      // Not due yet: an ordinary command leaves it alone.
      expect((await tenancy(bench, ['tenant', 'list'])).exitCode).toBe(0)
      expect(receiver.deliveries).toHaveLength(1)

      // doctor --fix sends what is backing off; it fails again, and waits longer now.
      expect((await tenancy(bench, ['doctor', '--fix'])).exitCode).toBe(1)
      const second = (await tenancy(bench, ['events', '--undelivered', '--json'])).json.events[0]
      expect(second).toMatchObject({ attempts: 2, last_error: expect.stringMatching(/HTTP 503/) })
      const secondDelay = Date.parse(second.next_attempt_at) - receiver.deliveries[1]!.at
      expect(secondDelay).toBeGreaterThanOrEqual(19_000)
      expect(secondDelay).toBeGreaterThan(firstDelay)

      // Once due, the next command that opens the bench sends it.
      await registryExec(
        bench,
        "update events set next_attempt_at = '2000-01-01T00:00:00.000Z' where next_attempt_at is not null",
      )
      expect((await tenancy(bench, ['list-sites'])).exitCode).toBe(0)
      expect(receiver.deliveries.map((d) => d.answered)).toEqual([500, 503, 200])
      const [a, b, c] = receiver.deliveries
      expect(new Set([a!.id, b!.id, c!.id]).size).toBe(1)
      expect(b!.raw).toBe(a!.raw)
      expect(c!.raw).toBe(a!.raw)
      for (const d of receiver.deliveries) expect(d.signatureValid).toBe(true)
      const done = (await tenancy(bench, ['events', '--json'])).json.events[0]
      expect(done).toMatchObject({ delivered: true, attempts: 3, next_attempt_at: null, last_error: null })
      expect((await tenancy(bench, ['events', '--undelivered', '--json'])).json.total).toBe(0)
      expect((await tenancy(bench, ['doctor'])).exitCode).toBe(0)
    },
    120_000,
  )
})

describe('the signing secret', () => {
  it('TENANCY_NOTIFY_SECRET signs in place of the config, never reaches a notify command, is masked, and an empty one holds the event back', async () => {
    const fromEnv = 'env-secret-91c2'
    const receiver = await startReceiver(fromEnv)
    const bench = makeBench()
    setConfig(bench, (c) => (c.provision.notify = { webhook: receiver.url, secret: SECRET }))
    const env = { TENANCY_NOTIFY_SECRET: fromEnv }
    expect((await tenancy(bench, ['tenant', 'create', 'acme', '--no-pool'], { env })).exitCode).toBe(0)
    expect(receiver.deliveries).toHaveLength(1)
    expect(receiver.deliveries[0]).toMatchObject({ signed: true, signatureValid: true })

    const shown = await tenancy(bench, ['show-config', '--json'])
    expect(shown.json.provision.notify.secret).toBe('********')
    expect(shown.stdout).not.toContain(SECRET)

    // Set but empty: not sent unsigned; kept for later, the message naming where it came from.
    const empty = await tenancy(bench, ['tenant', 'suspend', 'acme'], { env: { TENANCY_NOTIFY_SECRET: '' } })
    expect(empty.exitCode).toBe(0)
    expect(empty.stderr).toMatch(/the webhook signing secret from TENANCY_NOTIFY_SECRET is empty/)
    expect(receiver.deliveries).toHaveLength(1)
    expect((await tenancy(bench, ['doctor', '--fix'], { env })).exitCode).toBe(0)
    expect(receiver.deliveries.map((d) => d.body.type)).toEqual(['tenant.active', 'tenant.suspended'])
    expect(receiver.deliveries[1]!.signatureValid).toBe(true)

    // A notify command gets the event, never the secret (by name or value).
    const dump = join(bench, 'notify-env.txt')
    writeFileSync(
      join(bench, 'notify.mjs'),
      `import { writeFileSync } from 'node:fs'\nwriteFileSync(${JSON.stringify(dump)}, JSON.stringify(process.env))\n`,
    )
    setConfig(bench, (c) => (c.provision.notify = { run: 'node notify.mjs', secret: SECRET }))
    expect((await tenancy(bench, ['tenant', 'resume', 'acme'], { env })).exitCode).toBe(0)
    const childEnv = readFileSync(dump, 'utf8')
    expect(JSON.parse(childEnv).TENANCY_EVENT).toBe('tenant.resumed')
    expect(childEnv).not.toContain(fromEnv)
    expect(childEnv).not.toContain(SECRET)
    expect(childEnv).not.toContain('TENANCY_NOTIFY_SECRET')

    const logged = JSON.stringify(await registryRows(bench, 'select * from error_log'))
    expect(logged).toMatch(/signing secret/)
    expect(logged).not.toContain(fromEnv)
    expect(logged).not.toContain(SECRET)
  })

  it('a secret that is not a non-empty string is exit 2 without showing it', async () => {
    const bench = makeBench()
    setConfig(bench, (c) => (c.provision.notify = { webhook: 'http://127.0.0.1:9/x', secret: 12345 }))
    const r = await tenancy(bench, ['tenant', 'list'])
    expect(r.exitCode).toBe(2)
    expect(r.stderr).toMatch(/"provision\.notify\.secret" must be a non-empty string \(got a value not shown here\)/)
    expect(r.stderr).not.toContain('12345')
  })
})
