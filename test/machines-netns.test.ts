import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execa, type ResultPromise } from 'execa'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { BIN, cleanEnv, makeBench, setConfig, tenancy } from './helpers.js'
import { asSite } from './backends.js'
import { newSite, usingBench } from '../src/index.js'

// SPEC §10 across a real network: the registry is a PostgreSQL instance this test starts on a
// veth address, and machine m2 runs in a network namespace of its own, reaching the registry
// only through that veth pair. m1, on the host, migrates m2's sites through m2's worker.

const PG_BIN = existsSync('/usr/lib/postgresql')
  ? join('/usr/lib/postgresql', readdirSync('/usr/lib/postgresql').sort().at(-1)!, 'bin')
  : ''
const suffix = String(process.pid % 200)
const NS = `tenancy-t${suffix}`
const HOST_ADDR = `10.231.${suffix}.1`
const NS_ADDR = `10.231.${suffix}.2`
const PORT = 25_000 + (process.pid % 5000)

let why: string | undefined
let dataDir = ''
const worker: { proc?: ResultPromise } = {}

async function sh(file: string, args: string[]): Promise<void> {
  const r = await execa(file, args, { reject: false })
  if (r.exitCode !== 0) throw new Error(`${file} ${args.join(' ')}: ${r.stderr || r.stdout}`)
}

beforeAll(async () => {
  try {
    if (!PG_BIN) throw new Error('no PostgreSQL binaries under /usr/lib/postgresql')
    await sh('ip', ['netns', 'add', NS])
    await sh('ip', ['link', 'add', `tnh${suffix}`, 'type', 'veth', 'peer', 'name', `tnn${suffix}`])
    await sh('ip', ['link', 'set', `tnn${suffix}`, 'netns', NS])
    await sh('ip', ['addr', 'add', `${HOST_ADDR}/30`, 'dev', `tnh${suffix}`])
    await sh('ip', ['link', 'set', `tnh${suffix}`, 'up'])
    await sh('ip', ['netns', 'exec', NS, 'ip', 'addr', 'add', `${NS_ADDR}/30`, 'dev', `tnn${suffix}`])
    await sh('ip', ['netns', 'exec', NS, 'ip', 'link', 'set', `tnn${suffix}`, 'up'])
    await sh('ip', ['netns', 'exec', NS, 'ip', 'link', 'set', 'lo', 'up'])
    // A PostgreSQL instance of the test's own, listening only on the host's end of the veth pair.
    dataDir = mkdtempSync(join(tmpdir(), 'tenancy-netns-pg-'))
    chownSync(
      dataDir,
      Number((await execa('id', ['-u', 'postgres'])).stdout),
      Number((await execa('id', ['-g', 'postgres'])).stdout),
    )
    await sh('runuser', [
      '-u',
      'postgres',
      '--',
      join(PG_BIN, 'initdb'),
      '-D',
      join(dataDir, 'data'),
      '-A',
      'trust',
      '-U',
      'postgres',
    ])
    writeFileSync(join(dataDir, 'data', 'pg_hba.conf'), `local all all trust\nhost all all ${HOST_ADDR}/30 trust\n`)
    await sh('runuser', [
      '-u',
      'postgres',
      '--',
      join(PG_BIN, 'pg_ctl'),
      '-D',
      join(dataDir, 'data'),
      '-l',
      join(dataDir, 'log'),
      '-w',
      '-o',
      `-p ${PORT} -k ${dataDir} -c listen_addresses=${HOST_ADDR}`,
      'start',
    ])
    await sh('runuser', [
      '-u',
      'postgres',
      '--',
      join(PG_BIN, 'createdb'),
      '-h',
      HOST_ADDR,
      '-p',
      String(PORT),
      'registry',
    ])
  } catch (error) {
    why = (error as Error).message
    if (process.env.TENANCY_REQUIRE_SERVERS === '1')
      throw new Error(
        `cannot set up the network namespace test (${why}); it needs root, iproute2 and PostgreSQL's binaries`,
      )
    console.warn(`skipping the network namespace test: ${why}`)
  }
}, 60_000)

afterAll(async () => {
  if (worker.proc) {
    worker.proc.kill('SIGKILL')
    await worker.proc.catch(() => {})
  }
  if (dataDir && existsSync(join(dataDir, 'data')))
    await execa(
      'runuser',
      ['-u', 'postgres', '--', join(PG_BIN, 'pg_ctl'), '-D', join(dataDir, 'data'), '-m', 'immediate', 'stop'],
      {
        reject: false,
      },
    )
  await execa('ip', ['netns', 'del', NS], { reject: false })
  await execa('ip', ['link', 'del', `tnh${suffix}`], { reject: false })
  if (dataDir) rmSync(dataDir, { recursive: true, force: true })
})

describe('a machine in its own network namespace', () => {
  it(
    'm1 migrates m2’s sites through m2’s worker, which reaches the registry only over the veth pair',
    { timeout: 90_000 },
    async (ctx) => {
      if (why) ctx.skip()
      const registry = `postgres://postgres@${HOST_ADDR}:${PORT}/registry`
      const benches = { m1: makeBench({ lightSites: true }), m2: makeBench({ lightSites: true }) }
      for (const bench of Object.values(benches)) setConfig(bench, (c) => (c.registry = registry))
      for (const [m, bench] of Object.entries(benches)) {
        if (m === 'm2') {
          // The machines share the registry's key.
          const key = join(benches.m1, '.tenancy', 'secret.key')
          await execa('mkdir', ['-p', join(bench, '.tenancy')])
          writeFileSync(join(bench, '.tenancy', 'secret.key'), readFileSync(key), { mode: 0o600 })
        }
        await usingBench(
          { cwd: bench, env: { ...process.env, TENANCY_HOST: m, TENANCY_ADMIN_PASSWORD: 'pw' } },
          async (b) => {
            await b.secretBox()
            await newSite(b, { site: `${m}-a.localhost`, installApps: ['shared_lib'] })
          },
        )
      }
      // m2's network is its namespace: the host's loopback (and the shared servers) are not there.
      const cut = await execa(
        'ip',
        [
          'netns',
          'exec',
          NS,
          process.execPath,
          '-e',
          "require('net').connect(5432, '127.0.0.1').on('error', () => process.exit(3)).on('connect', () => process.exit(0))",
        ],
        { reject: false },
      )
      expect(cut.exitCode).toBe(3)
      worker.proc = execa('ip', ['netns', 'exec', NS, process.execPath, BIN, 'worker'], {
        cwd: benches.m2,
        env: cleanEnv({ TENANCY_HOST: 'm2' }),
        extendEnv: false,
        reject: false,
        stdin: 'ignore',
      })
      for (let i = 0; i < 200; i++) {
        const live = await tenancy(benches.m1, ['list-sites', '--host', 'm2', '--json'], {
          env: { TENANCY_HOST: 'm1' },
        })
        expect(live.exitCode, live.stderr).toBe(0)
        const ready = await tenancy(benches.m1, ['migrate', '--dry-run', '--json'], { env: { TENANCY_HOST: 'm1' } })
        if (ready.json.unreachable === 0) break
        await new Promise((r) => setTimeout(r, 100))
      }
      writeFileSync(
        join(benches.m1, 'apps', 'shared_lib', 'migrations', '0005_invoices.sql'),
        'CREATE TABLE invoices (id INTEGER PRIMARY KEY);\n',
      )
      writeFileSync(
        join(benches.m2, 'apps', 'shared_lib', 'migrations', '0005_invoices.sql'),
        'CREATE TABLE invoices (id INTEGER PRIMARY KEY);\n',
      )
      const r = await tenancy(benches.m1, ['migrate', '--json'], { env: { TENANCY_HOST: 'm1' } })
      expect(r.exitCode, r.stderr).toBe(0)
      expect(r.json.sites.map((s: any) => [s.site, s.status])).toEqual([
        ['m1-a.localhost', 'migrated'],
        ['m2-a.localhost', 'migrated'],
      ])
      const ledger = await asSite(
        benches.m2,
        'm2-a.localhost',
        "select name from tenancy_migrations where name = '0005_invoices'",
      )
      expect(ledger.rows).toEqual([{ name: '0005_invoices' }])
    },
  )
})
