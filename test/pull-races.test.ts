import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { makeBench, sleep, spawnTenancy, tenancy } from './helpers.js'

// A command that reads a pending tenant (or its site), then takes the tenant's lease, must not
// act on the customer a pull made of that tenant in between: the pull renames the tenant and
// its site, and the lease is by id. Each test holds the command between its read and its lease
// (TENANCY_FAULT=pause:...), pulls the tenant meanwhile, and checks the customer is whole.

/** A bench with one ready pending tenant; its name. */
async function oneInPool(): Promise<{ bench: string; pending: string }> {
  const bench = makeBench({ lightSites: true })
  const filled = await tenancy(bench, ['pending-create', '--count', '1', '--json'])
  expect(filled.exitCode, filled.stderr).toBe(0)
  return { bench, pending: filled.json.provisioned[0] as string }
}

/** Pulls the pool's tenant as `name` while `held` waits at its fault point; `held`'s result. */
async function pullWhileHeld(bench: string, held: ReturnType<typeof spawnTenancy>, name: string) {
  await sleep(500)
  const pull = await tenancy(bench, ['tenant', 'create', name, '--json'])
  expect(pull.exitCode, pull.stderr).toBe(0)
  expect(pull.json.from_pool ?? pull.json.pulled ?? true).toBeTruthy()
  return held
}

async function customerIsWhole(bench: string, name: string) {
  const show = await tenancy(bench, ['tenant', 'show', name, '--json'])
  expect(show.exitCode, show.stderr).toBe(0)
  expect(show.json.site).toBe(`${name}.localhost`)
  expect(existsSync(join(bench, 'sites', `${name}.localhost`, 'site_config.json'))).toBe(true)
  const doctor = await tenancy(bench, ['doctor', '--json'])
  expect(doctor.exitCode, doctor.stdout).toBe(0)
}

describe('a pull between a command reading a pending tenant and taking its lease', () => {
  it('tenant delete of the pending name deletes nothing: exit 2, the new customer and its site kept', async () => {
    const { bench, pending } = await oneInPool()
    const held = spawnTenancy(bench, ['tenant', 'delete', pending, '--yes', '--no-backup'], {
      TENANCY_FAULT: 'pause:delete-before-lease',
    })
    const deleted = await pullWhileHeld(bench, held, 'newcustomer')
    expect(deleted.exitCode, String(deleted.stderr)).toBe(2)
    expect(String(deleted.stderr)).toContain(`tenant "${pending}" was just taken from the pool as "newcustomer"`)
    await customerIsWhole(bench, 'newcustomer')
  })

  it('restore of the pending site restores nothing over the customer: exit 2, the customer whole', async () => {
    const { bench, pending } = await oneInPool()
    const site = `${pending}.localhost`
    const backup = await tenancy(bench, ['backup', '--site', site, '--json'])
    expect(backup.exitCode, backup.stderr).toBe(0)
    const set = backup.json.sites[0].path as string
    expect(typeof set).toBe('string')
    const held = spawnTenancy(bench, ['restore', site, set, '--yes', '--no-backup'], {
      TENANCY_FAULT: 'pause:restore-before-lease',
    })
    const restored = await pullWhileHeld(bench, held, 'newcustomer')
    expect(restored.exitCode, String(restored.stderr)).toBe(2)
    expect(String(restored.stderr)).toContain(`site "${site}" was just renamed to "newcustomer.localhost"`)
    expect(existsSync(join(bench, 'sites', site))).toBe(false)
    await customerIsWhole(bench, 'newcustomer')
  })
})
