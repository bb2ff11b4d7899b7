// The CLI's V8 code cache (bin/load-cli.js, dist/cli.cjs.v8cache): used when it is one for this
// bundle and this Node, written after a command it did not cover yet, and never the cause of a
// failure: a stale, foreign, damaged or rejected cache, or an install directory nobody may
// write, means a plain compile. Each test runs a copy of the install (bin/, dist/cli.cjs,
// package.json, node_modules linked), so its cache is its own.
import { execa } from 'execa'
import { createHash } from 'node:crypto'
import {
  chmodSync,
  chownSync,
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ROOT, cleanEnv, makeBench, tempDir, tenancy } from './helpers.js'

/**
 * A copy of the built install; its cache is `<copy>/dist/cli.cjs.v8cache`. With `sqlite`, its
 * node_modules holds links to the real one's packages but a better-sqlite3 of its own (links
 * to the real one's files), which `sqlite` may change.
 */
function installCopy(sqlite?: (dir: string) => void): { dir: string; bin: string; bundle: string; cache: string } {
  const dir = tempDir('tenancy-install-')
  cpSync(join(ROOT, 'bin'), join(dir, 'bin'), { recursive: true })
  mkdirSync(join(dir, 'dist'))
  for (const file of ['cli.cjs', 'cli.cjs.map']) copyFileSync(join(ROOT, 'dist', file), join(dir, 'dist', file))
  copyFileSync(join(ROOT, 'package.json'), join(dir, 'package.json'))
  if (!sqlite) symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'))
  else {
    const modules = join(dir, 'node_modules')
    mkdirSync(modules)
    for (const name of readdirSync(join(ROOT, 'node_modules')))
      if (name !== 'better-sqlite3') symlinkSync(join(ROOT, 'node_modules', name), join(modules, name))
    const real = join(ROOT, 'node_modules', 'better-sqlite3')
    const own = join(modules, 'better-sqlite3')
    mkdirSync(own)
    for (const name of readdirSync(real))
      if (name === 'package.json') copyFileSync(join(real, name), join(own, name))
      else symlinkSync(join(real, name), join(own, name))
    sqlite(own)
  }
  const bundle = join(dir, 'dist', 'cli.cjs')
  return { dir, bin: join(dir, 'bin', 'tenancy.js'), bundle, cache: `${bundle}.v8cache` }
}

/** Runs the copy's binary in `bench` (with `nodeFlags` before it, and as `uid` when given). */
async function run(
  install: { bin: string },
  bench: string,
  args: string[],
  options: { nodeFlags?: string[]; uid?: number; env?: Record<string, string> } = {},
) {
  const command = [...(options.nodeFlags ?? []), install.bin, ...args]
  const [file, argv] =
    options.uid === undefined
      ? [process.execPath, command]
      : [
          'setpriv',
          [`--reuid=${options.uid}`, `--regid=${options.uid}`, '--clear-groups', process.execPath, ...command],
        ]
  const result = await execa(file, argv, { cwd: bench, env: cleanEnv(options.env), extendEnv: false, reject: false })
  return { exitCode: result.exitCode, stdout: String(result.stdout), stderr: String(result.stderr) }
}

interface Header {
  format: number
  node: string
  v8: string
  arch: string
  source: string
  data: string
  commands: string[]
}

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex')

function readCache(file: string): { header: Header; data: Buffer } {
  const bytes = readFileSync(file)
  const end = bytes.indexOf(10)
  return { header: JSON.parse(bytes.toString('utf8', 0, end)) as Header, data: bytes.subarray(end + 1) }
}

function writeCache(file: string, header: Header, data: Buffer): void {
  writeFileSync(file, Buffer.concat([Buffer.from(`${JSON.stringify(header)}\n`), data]))
}

/** Asserts that the cache is a whole one for the copy's bundle, made by this Node, covering `commands`. */
function expectFreshCache(install: { bundle: string; cache: string }, commands: string[]): void {
  const { header, data } = readCache(install.cache)
  expect(header).toMatchObject({
    format: 1,
    node: process.version,
    v8: process.versions.v8,
    arch: process.arch,
    source: sha256(readFileSync(install.bundle)),
    data: sha256(data),
    commands,
  })
  expect(data.length).toBeGreaterThan(100_000)
}

const leftovers = (install: { dir: string }) => readdirSync(join(install.dir, 'dist')).filter((f) => f.endsWith('.tmp'))

describe('the code cache', () => {
  it('is written by the first command, reused unchanged by the next, and grows with each new command', async () => {
    const install = installCopy()
    const bench = makeBench({ exampleApps: false })
    expect(existsSync(install.cache)).toBe(false)
    const first = await run(install, bench, ['list-sites', '--json'])
    expect(first.exitCode).toBe(0)
    expectFreshCache(install, ['list-sites'])
    const written = readFileSync(install.cache)
    const stamp = statSync(install.cache).mtimeMs

    const again = await run(install, bench, ['list-sites', '--json'])
    expect(again).toMatchObject({ exitCode: 0, stdout: first.stdout })
    // Used, so not written again.
    expect(statSync(install.cache).mtimeMs).toBe(stamp)
    expect(readFileSync(install.cache).equals(written)).toBe(true)

    // Help runs no command's action: a cache that exists is kept as it is.
    expect((await run(install, bench, ['--help'])).exitCode).toBe(0)
    expect(statSync(install.cache).mtimeMs).toBe(stamp)

    expect((await run(install, bench, ['new-site', 'a.localhost'])).exitCode).toBe(0)
    expectFreshCache(install, ['list-sites', 'new-site'])
    expect(leftovers(install)).toEqual([])
  })

  it('is not rewritten by a long run (V8 may have flushed bytecode it left unused), only by a short one', async () => {
    const install = installCopy()
    const bench = makeBench({ exampleApps: false })
    expect((await run(install, bench, ['new-site', 'a.localhost'])).exitCode).toBe(0)
    const stamp = statSync(install.cache).mtimeMs
    writeFileSync(
      join(bench, 'slow.mjs'),
      'export const wait = () => new Promise((r) => setTimeout(() => r("done"), 5500))\n',
    )
    writeFileSync(join(bench, 'fast.mjs'), 'export const now = () => "done"\n')
    const slow = await run(install, bench, ['execute', 'slow.mjs#wait', '--site', 'a.localhost', '--json'])
    expect(slow.exitCode, slow.stderr).toBe(0)
    expect(statSync(install.cache).mtimeMs).toBe(stamp)
    expect(readCache(install.cache).header.commands).toEqual(['new-site'])
    const fast = await run(install, bench, ['execute', 'fast.mjs#now', '--site', 'a.localhost', '--json'])
    expect(fast.exitCode, fast.stderr).toBe(0)
    expectFreshCache(install, ['new-site', 'execute'])
  })

  it('made for another build of the bundle (a stale cache) is not used, and is replaced', async () => {
    const install = installCopy()
    const bench = makeBench({ exampleApps: false })
    expect((await run(install, bench, ['list-sites'])).exitCode).toBe(0)
    // A rebuilt bundle: same cache file, other source.
    writeFileSync(install.bundle, `${readFileSync(install.bundle, 'utf8')}\n// rebuilt\n`)
    const result = await run(install, bench, ['list-sites', '--json'])
    expect(result.exitCode).toBe(0)
    expect(JSON.parse(result.stdout)).toEqual({ sites: [], total: 0 })
    expectFreshCache(install, ['list-sites'])
  })

  it('made by another Node version is not used, and is replaced', async () => {
    const install = installCopy()
    const bench = makeBench({ exampleApps: false })
    expect((await run(install, bench, ['list-sites'])).exitCode).toBe(0)
    const { header, data } = readCache(install.cache)
    writeCache(install.cache, { ...header, node: 'v18.20.4', v8: '10.2.154.26-node.36' }, data)
    expect((await run(install, bench, ['list-sites'])).exitCode).toBe(0)
    expectFreshCache(install, ['list-sites'])
  })

  it('that V8 rejects (made under other V8 flags) means a plain compile, and is replaced', async () => {
    const install = installCopy()
    const bench = makeBench({ exampleApps: false })
    expect((await run(install, bench, ['list-sites'], { nodeFlags: ['--no-opt'] })).exitCode).toBe(0)
    const flagged = readFileSync(install.cache)
    // Our header matches (same Node, bundle and bytes): only V8 can tell, and it rejects it.
    expect((await run(install, bench, ['list-sites', '--json'])).exitCode).toBe(0)
    expect(readFileSync(install.cache).equals(flagged)).toBe(false)
    expectFreshCache(install, ['list-sites'])
  })

  it('that is damaged (bytes flipped, cut short, empty, not a header) is not used: no crash, and it is replaced', async () => {
    const install = installCopy()
    const bench = makeBench({ exampleApps: false })
    expect((await run(install, bench, ['list-sites'])).exitCode).toBe(0)
    const good = readFileSync(install.cache)
    const { header, data } = readCache(install.cache)
    const flipped = Buffer.from(data)
    // V8 checks no checksum: bytecode damaged like this, if it were used, crashes the process.
    for (let i = 1_000; i < flipped.length; i += 997) flipped[i] = flipped[i]! ^ 0xff
    const damaged = {
      flipped: Buffer.concat([Buffer.from(`${JSON.stringify(header)}\n`), flipped]),
      'cut short': good.subarray(0, Math.floor(good.length / 2)),
      empty: Buffer.alloc(0),
      'not a header': Buffer.concat([Buffer.from('{"format":1,\n'), data]),
    }
    for (const [what, bytes] of Object.entries(damaged)) {
      writeFileSync(install.cache, bytes)
      const result = await run(install, bench, ['list-sites', '--json'])
      expect({ what, exitCode: result.exitCode, stderr: result.stderr }).toEqual({ what, exitCode: 0, stderr: '' })
      expectFreshCache(install, ['list-sites'])
    }
  })

  it('is never written where the install directory is read-only, and the CLI works the same', async () => {
    const install = installCopy()
    const bench = makeBench({ exampleApps: false })
    // As root, permissions do not stop a write: run as nobody instead, who may not write the copy.
    const asRoot = process.getuid?.() === 0
    const uid = asRoot ? 65534 : undefined
    if (asRoot) {
      chmodSync(install.dir, 0o755)
      for (const file of readdirSync(bench, { recursive: true }).map(String)) chownSync(join(bench, file), 65534, 65534)
      chownSync(bench, 65534, 65534)
    } else chmodSync(join(install.dir, 'dist'), 0o555)
    try {
      for (let i = 0; i < 2; i++) {
        const result = await run(install, bench, ['new-site', `s${i}.localhost`, '--json'], { uid })
        expect(result.exitCode).toBe(0)
        expect(JSON.parse(result.stdout).site).toBe(`s${i}.localhost`)
      }
      expect(existsSync(install.cache)).toBe(false)
      expect(leftovers(install)).toEqual([])
    } finally {
      chmodSync(join(install.dir, 'dist'), 0o755)
    }
  })

  it('is written whole when several processes start without one at once', async () => {
    const install = installCopy()
    const bench = makeBench({ exampleApps: false })
    const results = await Promise.all(Array.from({ length: 4 }, () => run(install, bench, ['list-sites', '--json'])))
    expect(results.map((r) => r.exitCode)).toEqual([0, 0, 0, 0])
    expectFreshCache(install, ['list-sites'])
    expect(leftovers(install)).toEqual([])
    // And the cache the race left is one the next process uses (it is not written again).
    const stamp = statSync(install.cache).mtimeMs
    expect((await run(install, bench, ['list-sites'])).exitCode).toBe(0)
    expect(statSync(install.cache).mtimeMs).toBe(stamp)
  })
})

describe('the bundle', () => {
  it('missing (no build yet, or an older one) is one line naming it and the fix, exit 1', async () => {
    const install = installCopy()
    rmSync(install.bundle)
    const bench = makeBench({ exampleApps: false })
    const result = await run(install, bench, ['list-sites'])
    expect(result.exitCode).toBe(1)
    expect(result.stderr).toBe(`error: ${install.bundle} is missing; build it with "npm run build" in ${install.dir}`)
  })
})

describe("better-sqlite3's JavaScript", () => {
  // NODE_DEBUG=module names each file the CommonJS loader loads: the package's own lib/ files
  // only when the installed copy is used.
  const loadsInstalledJs = (stderr: string) => /load "[^"]*better-sqlite3[\\/]lib[\\/]index\.js"/.test(stderr)
  const debug = { env: { NODE_DEBUG: 'module' } }

  it('comes from the bundle when the installed package is the version it was built with', async () => {
    const install = installCopy(() => {})
    const bench = makeBench({ exampleApps: false })
    const result = await run(install, bench, ['new-site', 'a.localhost', '--json'], debug)
    expect(result.exitCode, result.stderr).toBe(0)
    expect(loadsInstalledJs(result.stderr)).toBe(false)
    expect(result.stderr).toMatch(/load "[^"]*better-sqlite3[\\/]build[\\/]Release[\\/]better_sqlite3\.node"/)
  })

  it('comes from the installed package when that is another version, or its addon is elsewhere', async () => {
    const cases = {
      'another version': (dir: string) => {
        const file = join(dir, 'package.json')
        writeFileSync(file, JSON.stringify({ ...JSON.parse(readFileSync(file, 'utf8')), version: '12.0.0' }))
      },
      // `bindings` looks in build/Debug too; the bundle's copy takes build/Release only.
      'the addon in build/Debug': (dir: string) => {
        rmSync(join(dir, 'build'))
        mkdirSync(join(dir, 'build'))
        symlinkSync(join(ROOT, 'node_modules', 'better-sqlite3', 'build', 'Release'), join(dir, 'build', 'Debug'))
      },
    }
    for (const [what, change] of Object.entries(cases)) {
      const install = installCopy(change)
      const bench = makeBench({ exampleApps: false })
      const result = await run(install, bench, ['new-site', 'a.localhost', '--json'], debug)
      expect({ what, exitCode: result.exitCode }).toEqual({ what, exitCode: 0 })
      expect(JSON.parse(result.stdout).site).toBe('a.localhost')
      expect(loadsInstalledJs(result.stderr), what).toBe(true)
    }
  })
})

describe('--verbose', () => {
  it('shows stack frames of the bundle at their place in src/', async () => {
    const bench = makeBench({ exampleApps: false })
    const result = await tenancy(bench, ['install-app', 'nope', '--site', 'x.localhost', '--verbose'])
    expect(result.exitCode).toBe(2)
    expect(result.stderr).toMatch(/\n\s+at loadApp \(.*src\/apps\/manifest\.ts:\d+:\d+\)/)
    expect(result.stderr).not.toContain(`${join(ROOT, 'dist', 'cli.cjs')}:`)
  })
})

describe('what a command loads', () => {
  it('a listing loads neither zlib nor worker_threads, a pull no zlib; a backup, which needs zlib, still works', async () => {
    // Node's built-in modules a command loaded, read through a preload that writes them at exit.
    const dir = tempDir('tenancy-loaded-')
    const preload = join(dir, 'loaded.cjs')
    writeFileSync(
      preload,
      "process.on('exit', () => require('node:fs').writeFileSync(process.env.LOADED_FILE, process.moduleLoadList.join('\\n')))\n",
    )
    const loaded = async (bench: string, args: string[]) => {
      const file = join(dir, `${args[0]}-${Date.now()}.txt`)
      const r = await tenancy(bench, args, { env: { NODE_OPTIONS: `--require ${preload}`, LOADED_FILE: file } })
      expect(r.exitCode, r.stderr).toBe(0)
      return new Set(readFileSync(file, 'utf8').split('\n'))
    }
    const bench = makeBench()
    const env = { TENANCY_ADMIN_PASSWORD: 'pw-for-tests' }
    expect((await tenancy(bench, ['pending-create', '--count', '1'], { env })).exitCode).toBe(0)
    for (const args of [['tenant', 'create', 'acme'], ['list-sites']]) {
      const modules = await loaded(bench, args)
      // The preload saw the command's own modules.
      expect(modules.has('NativeModule fs'), args.join(' ')).toBe(true)
      // A pull runs the apps' after_rename hooks, which the watchdog thread guards (util/blocked-watchdog.ts).
      const unusedModules =
        args[0] === 'tenant' ? ['NativeModule zlib'] : ['NativeModule zlib', 'NativeModule worker_threads']
      for (const unused of unusedModules) expect(modules.has(unused), `${args.join(' ')} loaded ${unused}`).toBe(false)
    }
    // The lazily loaded zlib is there when needed: a backup gzips the site's database.
    const backup = await loaded(bench, ['backup', '--site', 'acme.localhost', '--json'])
    expect(backup.has('NativeModule zlib')).toBe(true)
  })
})
