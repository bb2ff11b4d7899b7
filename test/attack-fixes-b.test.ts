import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { execa } from 'execa'
import { describe, expect, it } from 'vitest'
import { makeBench, query, setConfig, spawnTenancy, tenancy } from './helpers.js'

const KEYS = Array.from({ length: 10 }, (_, i) => `key${i + 1}`)

/** A pid that was alive a moment ago and is not any more. */
async function deadPid(): Promise<number> {
  const child = execa(process.execPath, ['-e', ''])
  await child
  return child.pid!
}

describe('concurrent set-config loses no writes (lock around read-modify-write)', () => {
  it('10 concurrent set-config -g and 10 concurrent --site: all keys kept, all exit 0', async () => {
    const bench = makeBench()
    const site = await tenancy(bench, ['new-site', 's.localhost'])
    expect(site.exitCode, site.stderr).toBe(0)
    const runs = await Promise.all([
      ...KEYS.map((k) => spawnTenancy(bench, ['set-config', '-g', k, `v-${k}`])),
      ...KEYS.map((k) => spawnTenancy(bench, ['set-config', '--site', 's.localhost', k, `v-${k}`])),
    ])
    for (const r of runs) expect(r.exitCode, String(r.stderr)).toBe(0)
    const global = JSON.parse(readFileSync(join(bench, 'tenancy.config.json'), 'utf8'))
    const siteConfig = JSON.parse(readFileSync(join(bench, 'sites', 's.localhost', 'site_config.json'), 'utf8'))
    for (const k of KEYS) {
      expect(global[k]).toBe(`v-${k}`)
      expect(siteConfig[k]).toBe(`v-${k}`)
    }
    // Everything the earlier writes held is still there, and no lock is left behind.
    expect(siteConfig.db_type).toBe('sqlite')
    expect(existsSync(join(bench, 'tenancy.config.json.lock'))).toBe(false)
    expect(existsSync(join(bench, 'sites', 's.localhost', 'site_config.json.lock'))).toBe(false)
  })

  it('a lock left by a dead process is taken over', async () => {
    const bench = makeBench()
    const lock = join(bench, 'tenancy.config.json.lock')
    writeFileSync(lock, `${await deadPid()}@${hostname()}`)
    const r = await tenancy(bench, ['set-config', '-g', 'after_stale', 'yes'])
    expect(r.exitCode, r.stderr).toBe(0)
    expect(JSON.parse(readFileSync(join(bench, 'tenancy.config.json'), 'utf8')).after_stale).toBe('yes')
    expect(existsSync(lock)).toBe(false)
  })

  it('a lock held by a live process is waited for, then an error naming the lock and its holder (exit 1)', async () => {
    const bench = makeBench()
    const lock = join(bench, 'tenancy.config.json.lock')
    const holder = `${process.pid}@${hostname()}`
    writeFileSync(lock, holder)
    const before = readFileSync(join(bench, 'tenancy.config.json'), 'utf8')
    const started = Date.now()
    const r = await tenancy(bench, ['set-config', '-g', 'blocked', 'yes'])
    expect(r.exitCode).toBe(1)
    expect(Date.now() - started).toBeGreaterThanOrEqual(9_000)
    expect(r.stderr).toContain(`${lock} is held by ${holder}`)
    expect(readFileSync(join(bench, 'tenancy.config.json'), 'utf8')).toBe(before)
    expect(readFileSync(lock, 'utf8')).toBe(holder)
  }, 30_000)
})

/** A script printing `total` bytes (lines of x, the last one "THE END"), then sleeping past any timeout. */
function chattyScript(total: number): string {
  return `const end = 'THE END\\n'
const line = 'x'.repeat(99) + '\\n'
const body = line.repeat(Math.floor((${total} - end.length) / 100))
const pad = 'y'.repeat(${total} - end.length - body.length)
process.stdout.write(body + pad + end, () => setTimeout(() => {}, 60_000))
`
}

const TOTAL = 300 * 1024

/** The stored output is the last 64 KiB after `[… N bytes cut]`; the error quotes a short tail marked the same way. */
function expectCapped(output: string | null, error: string): void {
  const header = `[… ${TOTAL - 64 * 1024} bytes cut]\n`
  expect(output!.startsWith(header), output?.slice(0, 80)).toBe(true)
  // The last 64 KiB, less the final newline that is trimmed.
  expect(Buffer.byteLength(output!.slice(header.length))).toBe(64 * 1024 - 1)
  expect(output!.endsWith('THE END')).toBe(true)
  expect(error).toContain(`; output:\n[… ${TOTAL - 2000} bytes cut]\n`)
  expect(error).not.toMatch(/output:\n…/)
  expect(error.endsWith('THE END')).toBe(true)
  expect(error.length).toBeLessThan(3000)
}

/** Creates tenant "acme", which fails; its one failed step row and the newest `errors` entry. */
async function failedStep(bench: string) {
  const r = await tenancy(bench, ['tenant', 'create', 'acme'])
  expect(r.exitCode).toBe(1)
  const rows = query<{ name: string; output: string | null; error: string }>(
    join(bench, '.tenancy', 'registry.db'),
    "select name, output, error from steps where status = 'failed'",
  )
  expect(rows).toHaveLength(1)
  const errors = await tenancy(bench, ['errors', '--json'])
  return { row: rows[0]!, logged: errors.json.errors[0].message as string }
}

describe('a failed child keeps its capped output', () => {
  it('a run step that prints 300 KB and times out: output is the capped tail, the error a marked excerpt', async () => {
    const bench = makeBench()
    writeFileSync(join(bench, 'chatty.mjs'), chattyScript(TOTAL))
    setConfig(
      bench,
      (c) => (c.provision.steps = ['create-site', { name: 'chatty', run: 'node chatty.mjs', timeout: 2 }, 'activate']),
    )
    const { row, logged } = await failedStep(bench)
    expect(row.name).toBe('chatty')
    expect(row.error).toMatch(/^step "chatty" failed: its command timed out after 2 s; output:\n/)
    expectCapped(row.output, row.error)
    expect(logged).toBe(row.error)
  }, 30_000)

  it('an after_install hook that prints 300 KB and times out: the install step keeps the capped tail', async () => {
    const bench = makeBench()
    const app = join(bench, 'apps', 'chatty')
    mkdirSync(app, { recursive: true })
    writeFileSync(
      join(app, 'app.json'),
      JSON.stringify({ name: 'chatty', version: '0.1.0', hooks: { after_install: 'node hook.mjs' } }),
    )
    writeFileSync(join(app, 'hook.mjs'), chattyScript(TOTAL))
    setConfig(bench, (c) => {
      c.provision.apps = ['chatty']
      c.provision.step_timeout = 2
    })
    const { row, logged } = await failedStep(bench)
    expect(row.error).toMatch(/after_install hook of app "chatty" on site "[^"]+" timed out after 2 s; output:\n/)
    expectCapped(row.output, row.error)
    expect(logged).toBe(row.error)
  }, 30_000)
})
