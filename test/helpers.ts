import { execa, type Options } from 'execa'
import {
  closeSync,
  cpSync,
  mkdirSync,
  fstatSync,
  ftruncateSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs'
import Database from 'better-sqlite3'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, afterEach, expect } from 'vitest'
import { initBench } from '../src/sites/init.js'

export const ROOT = fileURLToPath(new URL('..', import.meta.url))
export const BIN = join(ROOT, 'bin', 'tenancy.js')

const made: string[] = []
const madeForFile: string[] = []

/**
 * A temporary directory removed after the test; with `forFile`, after the test file (for a
 * fixture made once in `beforeAll` and shared by the tests that follow).
 */
export function tempDir(prefix = 'tenancy-test-', options: { forFile?: boolean } = {}): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  ;(options.forFile ? madeForFile : made).push(dir)
  return dir
}

afterEach(() => {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true })
})

afterAll(() => {
  for (const dir of madeForFile.splice(0)) rmSync(dir, { recursive: true, force: true })
})

/**
 * A fresh bench with the example apps in a temporary directory (`forFile`: see `tempDir`).
 * `lightSites`: tenant sites get shared_lib alone, for tests of something other than the apps
 * (tenant_ops's after_install hook is one more node process for every site provisioned).
 */
export function makeBench(options: { exampleApps?: boolean; forFile?: boolean; lightSites?: boolean } = {}): string {
  const dir = tempDir(undefined, { forFile: options.forFile })
  initBench(dir, { withExampleApps: options.exampleApps ?? true })
  if (options.lightSites) setConfig(dir, (c) => (c.provision.apps = ['shared_lib']))
  return dir
}

/**
 * A bench made once per test file by `make`, then copied whole for each test that takes one:
 * with a SQLite registry everything a bench holds (registry, secret key, sites and their
 * databases, backups) is inside its directory, so the copy is an independent bench with the
 * same tenants and sites, made in milliseconds instead of provisioning them again. The template
 * is made on first use; `made` is what `make` returned (paths in it relative to the bench).
 * The copy is removed after the test (`forFile`: after the file, see `tempDir`).
 *
 * @example
 * const pooled = benchTemplate((bench) => ok(bench, ['pending-create', '--count', '4']))
 * it('pulls', async () => {
 *   const { bench } = await pooled()
 * })
 */
export function benchTemplate<T>(
  make: (bench: string) => Promise<T>,
  options: { exampleApps?: boolean } = {},
): (copy?: { forFile?: boolean }) => Promise<{ bench: string; made: T }> {
  let template: Promise<{ dir: string; made: T }> | undefined
  return async (copy = {}) => {
    template ??= (async () => {
      const dir = makeBench({ ...options, forFile: true })
      return { dir, made: await make(dir) }
    })()
    const { dir, made } = await template
    const bench = tempDir(undefined, copy)
    cpSync(dir, bench, { recursive: true })
    return { bench, made }
  }
}

/** Environment for spawned CLIs: no colour, no inherited tenancy secrets or config. */
export function cleanEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {}
  for (const [k, v] of Object.entries(process.env))
    if (v !== undefined && !k.startsWith('TENANCY_') && k !== 'FORCE_COLOR') env[k] = v
  return { ...env, NO_COLOR: '1', ...extra }
}

export interface CliResult {
  exitCode: number
  stdout: string
  stderr: string
  json: any
}

/** Runs the built `tenancy` binary as an operator would, in `cwd`. */
export async function tenancy(
  cwd: string,
  args: string[],
  options: { env?: Record<string, string>; input?: string; timeout?: number } = {},
): Promise<CliResult> {
  const execaOptions: Options = {
    cwd,
    env: cleanEnv(options.env),
    extendEnv: false,
    reject: false,
    timeout: options.timeout ?? 60_000,
    ...(options.input !== undefined ? { input: options.input } : { stdin: 'ignore' }),
  }
  const result = await execa(process.execPath, [BIN, ...args], execaOptions)
  const stdout = String(result.stdout ?? '')
  let json: any
  if (args.includes('--json') && stdout.trim()) {
    try {
      json = JSON.parse(stdout)
    } catch {
      json = undefined
    }
  }
  return { exitCode: result.exitCode ?? -1, stdout, stderr: String(result.stderr ?? ''), json }
}

/** Starts the binary without waiting, for races and kills. */
export function spawnTenancy(cwd: string, args: string[], env: Record<string, string> = {}) {
  return execa(process.execPath, [BIN, ...args], {
    cwd,
    env: cleanEnv(env),
    extendEnv: false,
    reject: false,
    stdin: 'ignore',
  })
}

/** Adds an app to a bench: files are relative paths inside the app folder. */
export function addApp(
  bench: string,
  name: string,
  manifest: Record<string, unknown>,
  files: Record<string, string>,
): void {
  const dir = join(bench, 'apps', name)
  mkdirSync(dir, { recursive: true })
  writeFileSync(join(dir, 'app.json'), JSON.stringify({ name, version: '0.1.0', ...manifest }))
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(dir, path, '..'), { recursive: true })
    writeFileSync(join(dir, path), text)
  }
}

/** Changes a bench's tenancy.config.json in place. */
export function setConfig(bench: string, patch: (config: any) => void): void {
  const file = join(bench, 'tenancy.config.json')
  const config = JSON.parse(readFileSync(file, 'utf8'))
  patch(config)
  writeFileSync(file, JSON.stringify(config, null, 2))
}

/** The default pipeline with one `run` step after `create-site`, as `provision.steps`. */
export function setRunStep(bench: string, step: { name: string; run: string }): void {
  setConfig(
    bench,
    (c) => (c.provision.steps = ['create-site', step, 'install-apps', 'api-user', 'api-keys', 'activate']),
  )
}

/** Rows from an SQLite file, read-only. */
export function query<T = any>(file: string, sql: string, ...params: unknown[]): T[] {
  const db = new Database(file, { readonly: true, fileMustExist: true })
  try {
    return db.prepare(sql).all(...params) as T[]
  } finally {
    db.close()
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** `fn` over `items`, at most `limit` at a time (the machine's cores are shared); the results in order. */
export async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length)
  let next = 0
  const lane = async () => {
    while (next < items.length) {
      const i = next++
      results[i] = await fn(items[i]!)
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane))
  return results
}

/**
 * Runs the binary in its own process group and SIGKILLs the group once `due` resolves (unless
 * it finished first); true when the kill landed.
 */
export async function killOnce(
  bench: string,
  args: string[],
  env: Record<string, string>,
  due: (finished: () => boolean) => Promise<void>,
): Promise<boolean> {
  const child = execa(process.execPath, [BIN, ...args], {
    cwd: bench,
    env: cleanEnv(env),
    extendEnv: false,
    reject: false,
    detached: true,
    stdin: 'ignore',
  })
  let finished = false
  void child.then(() => (finished = true))
  await Promise.race([child, due(() => finished)])
  if (!finished) {
    try {
      process.kill(-child.pid!, 'SIGKILL')
    } catch {
      // It exited just now.
    }
  }
  return (await child).signal === 'SIGKILL'
}

/** The keys of run's and execute's `--json` summary, in order (SPEC §8, §10). */
export const FLEET_SUMMARY_KEYS = [
  'sites',
  'succeeded',
  'failed',
  'skipped',
  'unreachable',
  'interrupted',
  'duration_ms',
]

/** Kills the command's process group (-9) after `ms`. */
export const killAt = (bench: string, args: string[], ms: number, env: Record<string, string>) =>
  killOnce(bench, args, env, async () => {
    await sleep(ms)
  })

/**
 * Kills the command's process group (-9) as soon as `ready()` says so (polled every `pollMs`,
 * 25 by default), so the kill lands at a chosen point however fast or loaded the machine is.
 */
export const killWhen = (
  bench: string,
  args: string[],
  env: Record<string, string>,
  ready: () => Promise<boolean>,
  pollMs = 25,
) =>
  killOnce(bench, args, env, async (finished) => {
    while (!finished() && !(await ready().catch(() => false))) await sleep(pollMs)
  })

const mounts: string[] = []

afterEach(async () => {
  for (const dir of mounts.splice(0)) {
    await execa('umount', [dir], { reject: false })
    rmSync(dir, { recursive: true, force: true })
  }
})

/** A 3 MB tmpfs mounted for this test (unmounted after it). Refused mount: a failure when servers are required. */
export async function smallDisk(skip: () => void): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'tenancy-tmpfs-'))
  const mount = await execa('mount', ['-t', 'tmpfs', '-o', 'size=3m', 'tmpfs', dir], { reject: false })
  if (mount.exitCode !== 0) {
    rmSync(dir, { recursive: true, force: true })
    if (process.env.TENANCY_REQUIRE_SERVERS === '1') {
      throw new Error(
        `cannot mount a tmpfs for the disk-full test (${mount.stderr.trim()}); it needs root. TENANCY_REQUIRE_SERVERS=1 makes this a failure, not a skip`,
      )
    }
    skip()
  }
  mounts.push(dir)
  return dir
}

/** Fills the filesystem of `dir` with a filler file, leaving `free` bytes (whole pages). */
export function fillDisk(dir: string, free = 12_288): void {
  const fd = openSync(join(dir, 'filler'), 'w')
  const chunk = Buffer.alloc(65_536, 1)
  try {
    for (;;) writeSync(fd, chunk)
  } catch (error) {
    expect((error as NodeJS.ErrnoException).code).toBe('ENOSPC')
  }
  ftruncateSync(fd, Math.max(0, fstatSync(fd).size - free))
  closeSync(fd)
}
