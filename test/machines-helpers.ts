import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { execa, type ResultPromise } from 'execa'
import { BIN, cleanEnv, makeBench, setConfig } from './helpers.js'
import { asSite, registryRows, useRegistry } from './backends.js'
import { newSite, usingBench } from '../src/index.js'

// Several "machines" on this host for the tests of SPEC §10: benches with their own sites and
// their own TENANCY_HOST, one PostgreSQL registry, a `tenancy worker` for each when started.

export const MACHINES = ['m1', 'm2', 'm3'] as const

export interface Fleet<M extends string = string> {
  /** The machines' names, in order. */
  names: M[]
  bench: Record<M, string>
  sites: Record<M, string[]>
  env: (m: M) => Record<string, string>
}

export interface Worker {
  worker: ResultPromise
}

const workers: ResultPromise[] = []

/** Kills every worker a test started (its process group), for `afterEach`. */
export async function killWorkers(): Promise<void> {
  for (const w of workers.splice(0)) {
    try {
      process.kill(-w.pid!, 'SIGKILL')
    } catch {
      // Already gone.
    }
    await w.catch(() => {})
  }
}

/**
 * Benches (named `names`, three by default) on one PostgreSQL registry (`registry`, else a new
 * database on the test server), each with `perMachine` SQLite sites homed on it.
 */
export async function machines<M extends string>(
  perMachine: number,
  names: readonly M[],
  registry?: string,
): Promise<Fleet<M>> {
  const bench = {} as Record<M, string>
  const sites = {} as Record<M, string[]>
  for (const m of names) {
    bench[m] = makeBench({ lightSites: true })
    setConfig(bench[m], (c) => (c.pending = { ...(c.pending ?? {}), count: 0 }))
  }
  const first = names[0]!
  if (registry) setConfig(bench[first], (c) => (c.registry = registry))
  else await useRegistry(bench[first], 'postgres')
  const url = JSON.parse(readFileSync(join(bench[first], 'tenancy.config.json'), 'utf8')).registry
  for (const m of names) {
    setConfig(bench[m], (c) => (c.registry = url))
    sites[m] = Array.from(
      { length: perMachine },
      (_, i) => `${m.toLowerCase().replace(/[^a-z0-9]/g, '-')}-s${i}.localhost`,
    )
    await usingBench(
      { cwd: bench[m], env: { ...process.env, TENANCY_HOST: m, TENANCY_ADMIN_PASSWORD: 'pw' } },
      async (b) => {
        for (const site of sites[m]) await newSite(b, { site, installApps: ['shared_lib'] })
      },
    )
  }
  // Machines that share a registry share its key: the first makes it, the others get a copy.
  await usingBench({ cwd: bench[first], env: { ...process.env, TENANCY_HOST: first } }, (b) => b.secretBox())
  for (const m of names.slice(1)) {
    mkdirSync(join(bench[m], '.tenancy'), { recursive: true })
    copyFileSync(join(bench[first], '.tenancy', 'secret.key'), join(bench[m], '.tenancy', 'secret.key'))
  }
  return { names: [...names], bench, sites, env: (m) => ({ TENANCY_HOST: m }) }
}

/** Three machines m1, m2, m3 with `perMachine` sites each. */
export const threeMachines = (perMachine = 2) => machines(perMachine, MACHINES)

/**
 * Starts `tenancy worker` for machine `m` (its own process group) and waits until it is
 * registered. (Wrapped: an async function returning execa's promise would wait for it to end.)
 */
export async function startWorker<M extends string>(
  fleet: Fleet<M>,
  m: M,
  options: { args?: string[]; env?: Record<string, string>; registered?: () => Promise<boolean> } = {},
): Promise<Worker> {
  const worker = execa(process.execPath, [BIN, 'worker', ...(options.args ?? [])], {
    cwd: fleet.bench[m],
    env: cleanEnv({ ...fleet.env(m), ...options.env }),
    extendEnv: false,
    reject: false,
    detached: true,
    stdin: 'ignore',
  })
  workers.push(worker)
  const registered =
    options.registered ??
    (async () =>
      (
        await registryRows(
          fleet.bench[fleet.names[0]!],
          // This very worker's lease, by exact prefix: `like` would take `_` in a machine's name as a
          // wildcard (Web_1.Prod matching WebX1.Prod's worker), and another worker of the machine
          // (a background one about to stop) is not this one.
          `select name from leases where substr(name, 1, length(?)) = ? and expires_at > ?`,
          `worker:${m}:${worker.pid}@`,
          `worker:${m}:${worker.pid}@`,
          new Date().toISOString(),
        )
      ).length > 0)
  for (let i = 0; i < 200; i++) {
    if (await registered()) return { worker }
    if (worker.exitCode !== null) break
    await new Promise((r) => setTimeout(r, 50))
  }
  worker.kill('SIGKILL')
  const r = await worker
  throw new Error(`the worker of ${m} did not register: ${r.stderr}`)
}

/** Stops a worker with `signal` (its whole process group for SIGKILL) and waits for it. */
export async function stopWorker({ worker }: Worker, signal: 'SIGTERM' | 'SIGKILL'): Promise<void> {
  process.kill(signal === 'SIGKILL' ? -worker.pid! : worker.pid!, signal)
  await worker
  workers.splice(workers.indexOf(worker), 1)
}

/** Starts a fleet command on machine `m` (not awaited: the test acts while it waits on the others). */
export const sendFrom = <M extends string>(
  fleet: Fleet<M>,
  m: M,
  args: string[],
  options: { detached?: boolean } = {},
) =>
  execa(process.execPath, [BIN, ...args], {
    cwd: fleet.bench[m],
    env: cleanEnv(fleet.env(m)),
    extendEnv: false,
    reject: false,
    stdin: 'ignore',
    detached: options.detached ?? false,
  })

/** Adds a migration file to shared_lib on every machine. */
export const addMigration = <M extends string>(fleet: Fleet<M>, file: string, text: string) => {
  for (const m of fleet.names) writeFileSync(join(fleet.bench[m], 'apps', 'shared_lib', 'migrations', file), text)
}

/** The migrations a site's ledger holds for shared_lib. */
export async function ledger(bench: string, site: string): Promise<string[]> {
  const r = await asSite(bench, site, "select name from tenancy_migrations where app = 'shared_lib' order by name")
  return r.rows.map((row: any) => row.name)
}
