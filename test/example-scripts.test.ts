import { existsSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { describe, expect, it } from 'vitest'
import { makeBench, tenancy } from './helpers.js'

// The README's `run` and `execute` examples use the scripts tenant_ops ships in
// apps/tenant_ops/scripts/, which `init --with-example-apps` copies into a bench: each is run
// here as the README shows it, from a bench made that way, against data put in the sites.

const SCRIPTS = 'apps/tenant_ops/scripts'

/** Customers and time entries written straight into an SQLite site's database. */
function seed(bench: string, site: string, customers: number, hours: [date: string, hours: number, billable: 0 | 1][]) {
  const db = new Database(join(bench, 'sites', site, 'db.sqlite'))
  try {
    const at = new Date().toISOString()
    const customer = db.prepare('insert into customers (id, customer_name, created_at, updated_at) values (?, ?, ?, ?)')
    for (let i = 1; i <= customers; i++) customer.run(`CUST-${i}`, `Customer ${i}`, at, at)
    const entry = db.prepare(
      'insert into time_entries (id, task_id, project_id, logged_by, entry_date, hours, is_billable, created_at) ' +
        "values (?, 'TASK-ONBOARDING-01', 'PRJ-ONBOARDING', 'ops@example.com', ?, ?, ?, ?)",
    )
    hours.forEach(([date, h, billable], i) => entry.run(`TE-${i}`, date, h, billable, at))
  } finally {
    db.close()
  }
}

describe("tenant_ops's example scripts (the README's run and execute examples)", () => {
  it('count-customers.mjs and hours.mjs through run; count.mjs and api.mjs#apiUser through execute', async () => {
    const bench = makeBench()
    expect(existsSync(join(bench, SCRIPTS, 'count-customers.mjs'))).toBe(true)
    for (const site of ['a.localhost', 'b.localhost'])
      expect((await tenancy(bench, ['new-site', site, '--install-app', 'tenant_ops'])).exitCode).toBe(0)
    seed(bench, 'a.localhost', 3, [
      ['2026-01-12', 7.5, 1],
      ['2026-01-31', 2, 0],
      ['2026-02-01', 1, 1],
    ])

    const customers = await tenancy(bench, ['run', '--site', 'all', '--', 'node', `${SCRIPTS}/count-customers.mjs`])
    expect(customers.exitCode, customers.stderr).toBe(0)
    expect(customers.stdout.trim().split('\n')).toEqual(['a.localhost: 3 customers', 'b.localhost: 0 customers'])

    const hours = await tenancy(bench, [
      'run',
      '--site',
      'all',
      '--',
      'node',
      `${SCRIPTS}/hours.mjs`,
      '--month',
      '2026-01',
    ])
    expect(hours.exitCode, hours.stderr).toBe(0)
    expect(hours.stdout.trim().split('\n')).toEqual([
      'a.localhost: 9.5 hours (7.5 billable) in 2026-01',
      'b.localhost: 0 hours (0 billable) in 2026-01',
    ])
    // A bad month fails the site with the script's own one-line reason.
    const bad = await tenancy(bench, [
      'run',
      '--site',
      'a.localhost',
      '--',
      'node',
      `${SCRIPTS}/hours.mjs`,
      '--month',
      '2026-13',
    ])
    expect(bad.exitCode).toBe(1)
    expect(bad.stderr).toContain('a.localhost: invalid --month "2026-13": give a month as YYYY-MM')

    const counts = await tenancy(bench, ['execute', `${SCRIPTS}/count.mjs`, '--site', 'all', '--json'])
    expect(counts.exitCode, counts.stderr).toBe(0)
    expect(counts.json.sites.map((s: any) => [s.site, s.result])).toEqual([
      ['a.localhost', 3],
      ['b.localhost', 0],
    ])

    const api = await tenancy(bench, ['execute', `${SCRIPTS}/api.mjs#apiUser`, '--site', 'all', '--json'])
    expect(api.exitCode, api.stderr).toBe(0)
    // Plain new sites have no API user; one made with generate-keys is found with its key.
    expect(api.json.sites.map((s: any) => s.result)).toEqual([null, null])
    expect((await tenancy(bench, ['add-system-manager', 'ops@example.com', '--site', 'b.localhost'])).exitCode).toBe(0)
    const keys = await tenancy(bench, ['generate-keys', 'ops@example.com', '--site', 'b.localhost', '--json'])
    const ops = await tenancy(bench, [
      'execute',
      `${SCRIPTS}/api.mjs#apiUser`,
      '--site',
      'b.localhost',
      '--args',
      '{"user": "ops@example.com"}',
      '--json',
    ])
    expect(ops.exitCode, ops.stderr).toBe(0)
    expect(ops.json.sites[0].result).toMatchObject({
      user: 'ops@example.com',
      enabled: true,
      roles: ['System Manager'],
      api_key: keys.json.api_key,
    })

    // A site without tenant_ops: one line saying so, not a stack trace.
    expect((await tenancy(bench, ['new-site', 'bare.localhost'])).exitCode).toBe(0)
    const bare = await tenancy(bench, [
      'run',
      '--site',
      'bare.localhost',
      '--',
      'node',
      `${SCRIPTS}/count-customers.mjs`,
    ])
    expect(bare.exitCode).toBe(1)
    expect(bare.stderr).toContain('bare.localhost: no such table: customers (is tenant_ops installed on this site?)')
    expect(bare.stderr).not.toMatch(/    at /)
  })
})
