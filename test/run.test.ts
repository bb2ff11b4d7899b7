import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { execa } from 'execa'
import { describe, expect, it } from 'vitest'
import { newSite } from '../src/provisioning/new-site.js'
import { usingBench } from '../src/session.js'
import { BIN, ROOT, cleanEnv, makeBench, sleep, spawnTenancy, tenancy, FLEET_SUMMARY_KEYS } from './helpers.js'
import { SITE_BACKENDS, siteConfig, useBackend } from './backends.js'

// tenancy run (SPEC §8, issue 15), the cases of Tenancy for Laravel's tenants:run suite translated:
// every site, a list of sites, arguments and options passed through untouched, skipping sites,
// selection and skip together, a command that asks a question; plus failures, --json, the
// environment (no secret), a timeout over a daemon holding stdout, and Ctrl-C over 30 sites.

const SITE_KEYS = ['site', 'status', 'exit_code', 'stdout', 'stderr', 'duration_ms', 'error']

/** SQLite sites made in-process (setup only: what is tested runs the binary), a few at a time. */
async function makeSites(bench: string, names: string[]): Promise<void> {
  await usingBench({ config: join(bench, 'tenancy.config.json'), env: cleanEnv() }, async (b) => {
    for (let i = 0; i < names.length; i += 6)
      await Promise.all(names.slice(i, i + 6).map((site) => newSite(b, { site })))
  })
}

/** A bench with sites `<name>.localhost` for each name. */
async function benchWith(...names: string[]): Promise<string> {
  const bench = makeBench({ exampleApps: false })
  await makeSites(
    bench,
    names.map((n) => `${n}.localhost`),
  )
  return bench
}

/** `tenancy run --site S … --json <rest>`: over the sites given, with the rest of the arguments. */
const runJson = (bench: string, sites: string[], ...rest: string[]) =>
  tenancy(bench, ['run', ...sites.flatMap((s) => ['--site', s]), '--json', ...rest])

/** The sites a --json run went over, with their statuses. */
const statuses = (json: any) => Object.fromEntries(json.sites.map((s: any) => [s.site, s.status]))

/** Whether a process is running (a zombie waiting to be reaped is not). */
function running(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))
  } catch {
    return false
  }
}

/** The pids a command wrote to `<bench>/pids`, one a line. */
const pidsOf = (bench: string) =>
  existsSync(join(bench, 'pids'))
    ? readFileSync(join(bench, 'pids'), 'utf8').split('\n').filter(Boolean).map(Number)
    : []

describe('tenancy run', () => {
  it('runs the command once on every site (--site all) in the bench, each whole line prefixed with its site', async () => {
    const bench = await benchWith('a', 'b', 'c')
    // Each line is written in two pieces 50 ms apart, while the other sites write theirs.
    const code =
      'const s = process.env.TENANCY_SITE; let i = 0; const next = () => { if (i++ === 3) return; ' +
      'process.stdout.write("begin-"); setTimeout(() => { process.stdout.write(s + "-end\\n"); next() }, 50) }; ' +
      'console.log("cwd=" + process.cwd()); console.error("to stderr"); next()'
    const r = await tenancy(bench, ['run', '--site', 'all', '--concurrency', '3', '--', 'node', '-e', code])
    expect(r.exitCode, r.stderr).toBe(0)
    const lines = r.stdout.trimEnd().split('\n')
    expect(lines).toHaveLength(12)
    for (const site of ['a.localhost', 'b.localhost', 'c.localhost']) {
      expect(lines.filter((l) => l === `${site}: cwd=${bench}`)).toHaveLength(1)
      expect(lines.filter((l) => l === `${site}: begin-${site}-end`)).toHaveLength(3)
      expect(r.stderr).toContain(`${site}: to stderr\n`)
    }
    expect(r.stderr).toMatch(/3 site\(s\): 3 succeeded, 0 failed, 0 skipped in \d+ ms/)
  })

  it('over a list of sites; with no --site, on the default site (tenancy use); with neither, exit 2', async () => {
    const bench = await benchWith('a', 'b', 'c')
    const listed = await runJson(bench, ['a.localhost', 'c.localhost'], '--', 'true')
    expect(listed.exitCode, listed.stderr).toBe(0)
    expect(statuses(listed.json)).toEqual({ 'a.localhost': 'succeeded', 'c.localhost': 'succeeded' })

    expect((await tenancy(bench, ['use', 'b.localhost'])).exitCode).toBe(0)
    const byDefault = await tenancy(bench, ['run', '--json', '--', 'true'])
    expect(statuses(byDefault.json)).toEqual({ 'b.localhost': 'succeeded' })

    expect((await tenancy(bench, ['use', '--clear'])).exitCode).toBe(0)
    const none = await tenancy(bench, ['run', '--', 'true'])
    expect(none.exitCode).toBe(2)
    expect(none.stderr).toMatch(/no site given and no default site: give --site S or --site all/)
    const unknown = await tenancy(bench, ['run', '--site', 'nope.localhost', '--', 'true'])
    expect(unknown.exitCode).toBe(2)
    expect(unknown.stderr).toMatch(/site "nope.localhost" does not exist/)
  })

  it("passes the arguments and options after -- through untouched, tenancy's own flags among them", async () => {
    const bench = await benchWith('a', 'b')
    const argv = 'console.log(JSON.stringify(process.argv.slice(1)))'
    // node itself takes the first "--" after -e; everything else reaches the script as typed.
    const passed = ['--site', 'x', '-y', 'a b', '--json', '--timeout', '1', '--skip-site', 'a.localhost', '--', '']
    const r = await tenancy(bench, [
      'run',
      '--site',
      'a.localhost',
      '--json',
      '--',
      'node',
      '-e',
      argv,
      '--',
      ...passed,
    ])
    expect(r.exitCode, r.stderr).toBe(0)
    expect(statuses(r.json)).toEqual({ 'a.localhost': 'succeeded' })
    expect(JSON.parse(r.json.sites[0].stdout)).toEqual(passed)

    // --shell: one command line for /bin/sh, with the site's variables.
    const shell = await tenancy(bench, [
      'run',
      '--site',
      'all',
      '--json',
      '--shell',
      'printf "%s|" "$TENANCY_SITE" a\\ b',
    ])
    expect(shell.json.sites.map((s: any) => s.stdout)).toEqual(['a.localhost|a b|', 'b.localhost|a b|'])

    // Exactly one of the two, and the command only after "--" (so its flags are never tenancy's).
    for (const [args, message] of [
      [['run', '--site', 'a.localhost'], /no command given/],
      [['run', '--site', 'a.localhost', '--shell', 'true', '--', 'true'], /not both/],
      [['run', '--site', 'a.localhost', 'true'], /put the command after "--"/],
      [['run', '--site', 'a.localhost', '--shell', ' '], /--shell "" is empty/],
    ] as const) {
      const refused = await tenancy(bench, [...args])
      expect(refused.exitCode, args.join(' ')).toBe(2)
      expect(refused.stderr).toMatch(message)
    }
  })

  it('skips sites: --skip-site with --site all, and with a list of sites (selection and skip together)', async () => {
    const bench = await benchWith('a', 'b', 'c', 'd')
    const all = await runJson(bench, ['all'], '--skip-site', 'b.localhost', '--skip-site', 'd.localhost', '--', 'true')
    expect(all.exitCode, all.stderr).toBe(0)
    expect(statuses(all.json)).toEqual({ 'a.localhost': 'succeeded', 'c.localhost': 'succeeded' })
    const sites = ['a.localhost', 'b.localhost', 'c.localhost']
    const listed = await runJson(bench, sites, '--skip-site', 'b.localhost', '--', 'true')
    expect(statuses(listed.json)).toEqual({ 'a.localhost': 'succeeded', 'c.localhost': 'succeeded' })
    const bad = await tenancy(bench, ['run', '--site', 'all', '--skip-site', 'zz.localhost', '--', 'true'])
    expect(bad.exitCode).toBe(2)
  })

  it('a command that asks a question gets end-of-file (stdin closed) and the run completes', async () => {
    const bench = await benchWith('a', 'b')
    const ask =
      'printf "Really? [y/N] "; if read answer; then echo "answer=$answer"; else echo "no answer (end of file)"; fi; cat'
    // tenancy's own stdin stays open and silent: a child that inherited it would wait forever.
    const child = execa(process.execPath, [BIN, 'run', '--site', 'all', '--timeout', '20', '--json', '--shell', ask], {
      cwd: bench,
      env: cleanEnv(),
      extendEnv: false,
      reject: false,
      stdin: 'pipe',
      timeout: 40_000,
    })
    const r = await child
    expect(r.exitCode, String(r.stderr)).toBe(0)
    const json = JSON.parse(String(r.stdout))
    for (const s of json.sites)
      expect(s).toMatchObject({ status: 'succeeded', stdout: 'Really? [y/N] no answer (end of file)\n' })
    expect(json.sites.every((s: any) => s.duration_ms < 15_000)).toBe(true)
  })

  it('a failing site: the next ones are skipped, or with --skip-failing all are tried; exit 1 either way', async () => {
    const bench = await benchWith('a', 'b', 'c')
    const failOnB = 'echo "on $TENANCY_SITE"; [ "$TENANCY_SITE" != b.localhost ] || { echo broken >&2; exit 3; }'
    const stopped = await tenancy(bench, ['run', '--site', 'all', '--json', '--shell', failOnB])
    expect(stopped.exitCode).toBe(1)
    expect(statuses(stopped.json)).toEqual({
      'a.localhost': 'succeeded',
      'b.localhost': 'failed',
      'c.localhost': 'skipped',
    })
    expect(stopped.json.sites[1]).toMatchObject({
      exit_code: 3,
      stdout: 'on b.localhost\n',
      stderr: 'broken\n',
      error: 'the command exited with code 3',
    })
    expect(stopped.json.sites[2].error).toMatch(/an earlier site failed, so it was not started/)
    expect(stopped.json).toMatchObject({ succeeded: 1, failed: 1, skipped: 1, interrupted: false })

    const all = await tenancy(bench, ['run', '--site', 'all', '--skip-failing', '--shell', failOnB])
    expect(all.exitCode).toBe(1)
    expect(all.stdout.split('\n').filter(Boolean)).toEqual([
      'a.localhost: on a.localhost',
      'b.localhost: on b.localhost',
      'c.localhost: on c.localhost',
    ])
    expect(all.stderr).toContain('b.localhost: broken\n')
    expect(all.stderr).toContain('b.localhost: failed (exit 3): the command exited with code 3\n')
    expect(all.stderr).toMatch(/3 site\(s\): 2 succeeded, 1 failed, 0 skipped in \d+ ms\n {2}failed: b.localhost: /)

    const missing = await tenancy(bench, ['run', '--site', 'a.localhost', '--json', '--', 'no-such-program-here'])
    expect(missing.exitCode).toBe(1)
    expect(missing.json.sites[0]).toMatchObject({ status: 'failed', exit_code: null })
    expect(missing.json.sites[0].error).toMatch(/could not start "no-such-program-here": no such program/)
  })

  it("--json: the SPEC's shape, each site's output capped to its last 64 KiB after a [… N bytes cut] line", async () => {
    const bench = await benchWith('a')
    const big = 'process.stdout.write("x".repeat(100000) + "\\n"); process.stderr.write("warned\\n")'
    const r = await tenancy(bench, ['run', '--site', 'a.localhost', '--json', '--', 'node', '-e', big])
    expect(r.exitCode, r.stderr).toBe(0)
    expect(Object.keys(r.json)).toEqual(FLEET_SUMMARY_KEYS)
    expect(r.json).toMatchObject({ succeeded: 1, failed: 0, skipped: 0, interrupted: false })
    const [site] = r.json.sites
    expect(Object.keys(site)).toEqual(SITE_KEYS)
    expect(site).toMatchObject({
      site: 'a.localhost',
      status: 'succeeded',
      exit_code: 0,
      stderr: 'warned\n',
      error: null,
    })
    expect(site.stdout).toBe(`[… ${100_001 - 65_536} bytes cut]\n${'x'.repeat(65_535)}\n`)
    expect(site.duration_ms).toBeGreaterThanOrEqual(0)
    // Nothing but the document on stdout.
    expect(r.stdout.trim().startsWith('{')).toBe(true)
  })

  it('--timeout 1 stops a command whose background child holds stdout open, within a few seconds', async () => {
    const bench = await benchWith('a')
    const started = performance.now()
    const daemon = 'echo $$ >> pids; sleep 30 & echo $! >> pids; sleep 30'
    const r = await runJson(bench, ['a.localhost'], '--timeout', '1', '--', 'sh', '-c', daemon)
    expect(performance.now() - started).toBeLessThan(10_000)
    expect(r.exitCode).toBe(1)
    expect(r.json.sites[0]).toMatchObject({ status: 'failed', exit_code: null })
    expect(r.json.sites[0].error).toMatch(/^timed out after 1 s/)
    const pids = pidsOf(bench)
    expect(pids).toHaveLength(2)
    for (const pid of pids) expect(running(pid), `pid ${pid}`).toBe(false)
    const bad = await tenancy(bench, ['run', '--site', 'a.localhost', '--timeout', '0', '--', 'true'])
    expect(bad.exitCode).toBe(2)
    expect(bad.stderr).toMatch(/invalid --timeout "0"/)
  })

  it('Ctrl-C during a run over 30 sites: exit 130, sites not started "interrupted", no child left running', async () => {
    const bench = makeBench({ exampleApps: false })
    await makeSites(
      bench,
      Array.from({ length: 30 }, (_, i) => `s${String(i).padStart(2, '0')}.localhost`),
    )
    const child = spawnTenancy(bench, [
      'run',
      '--site',
      'all',
      '--concurrency',
      '3',
      '--json',
      '--shell',
      'echo $$ >> pids; sleep 20 & echo $! >> pids; wait',
    ])
    const deadline = Date.now() + 20_000
    while (pidsOf(bench).length < 6 && Date.now() < deadline) await sleep(25)
    expect(pidsOf(bench).length).toBeGreaterThanOrEqual(6)
    child.kill('SIGINT')
    const r = await child
    expect(r.exitCode).toBe(130)
    const json = JSON.parse(String(r.stdout))
    expect(json.interrupted).toBe(true)
    const byStatus = (status: string) => json.sites.filter((s: any) => s.status === status)
    expect(byStatus('interrupted').length).toBeGreaterThanOrEqual(27)
    expect(byStatus('skipped')).toEqual([])
    expect(byStatus('failed')).toEqual([])
    const stopped = byStatus('interrupted').filter((s: any) => s.error.startsWith('interrupted while running'))
    expect(stopped).toHaveLength(3)
    for (const s of byStatus('interrupted').filter((x: any) => !stopped.includes(x)))
      expect(s.error).toBe('not started: run was interrupted')
    const pids = pidsOf(bench)
    for (const pid of pids) expect(running(pid), `pid ${pid}`).toBe(false)
  })
})

describe('tenancy run stopped just as a site ends', () => {
  it('a command that had exited 0 (its output still held by a process it left) counts as succeeded, not interrupted', async () => {
    const bench = makeBench({ exampleApps: false })
    await makeSites(bench, ['a.localhost'])
    // The shell ends at once; the sleep it leaves keeps the output pipe open, so the run is
    // still waiting on the site when Ctrl-C comes.
    const child = spawnTenancy(bench, ['run', '--site', 'a.localhost', '--json', '--shell', 'sleep 30 & echo done'])
    await sleep(1500)
    child.kill('SIGINT')
    const r = await child
    const json = JSON.parse(String(r.stdout))
    expect(
      json.sites.map((s: any) => [s.site, s.status]),
      String(r.stderr),
    ).toEqual([['a.localhost', 'succeeded']])
  })
})

describe('tenancy run, sites of pending tenants and early exits', () => {
  it("--with-pending adds the pool's sites, each run under its tenant's lease (a pull cannot rename it meanwhile)", async () => {
    const bench = makeBench()
    expect((await tenancy(bench, ['pending-create', '--count', '1'])).exitCode).toBe(0)
    await makeSites(bench, ['a.localhost'])
    const without = await runJson(bench, ['all'], '--', 'true')
    expect(statuses(without.json)).toEqual({ 'a.localhost': 'succeeded' })
    const leases =
      'const D = require(process.env.BETTER_SQLITE3); const db = new D(".tenancy/registry.db", { readonly: true }); ' +
      'console.log(JSON.stringify(db.prepare("select lease_owner from tenants").all().map((t) => t.lease_owner)))'
    const env = { BETTER_SQLITE3: join(ROOT, 'node_modules', 'better-sqlite3') }
    const r = await tenancy(bench, ['run', '--site', 'all', '--with-pending', '--json', '--', 'node', '-e', leases], {
      env,
    })
    expect(r.exitCode, r.stderr).toBe(0)
    const pool = r.json.sites.find((s: any) => s.site !== 'a.localhost')
    const plain = r.json.sites.find((s: any) => s.site === 'a.localhost')
    expect(r.json.sites).toHaveLength(2)
    expect(pool.site).toMatch(/^pending-[0-9a-f]+\.localhost$/)
    expect(JSON.parse(pool.stdout)).toEqual([expect.stringMatching(/\S/)])
    expect(JSON.parse(plain.stdout)).toEqual([null])
  })

  it('tenancy ending early (its reader gone, as with | head -1) stops the commands still running', async () => {
    const bench = await benchWith('a', 'b')
    const child = execa(
      process.execPath,
      [
        BIN,
        'run',
        '--site',
        'all',
        '--concurrency',
        '2',
        '--shell',
        'echo $$ >> pids; echo start; sleep 1; echo more; sleep 30',
      ],
      { cwd: bench, env: cleanEnv(), extendEnv: false, reject: false, stdin: 'ignore', stdout: 'pipe' },
    )
    await new Promise((resolve) => child.stdout!.once('data', resolve))
    child.stdout!.destroy()
    await child
    const pids = pidsOf(bench)
    expect(pids.length).toBeGreaterThanOrEqual(1)
    await sleep(300)
    for (const pid of pids) expect(running(pid), `pid ${pid}`).toBe(false)
  })
})

describe.each(SITE_BACKENDS)('tenancy run on $name', ({ name: backend, skip }) => {
  it.skipIf(skip)(
    "gives the site's variables and no secret: not the site's db_password, not the parent's secrets",
    async () => {
      const bench = makeBench({ exampleApps: false })
      const backendEnv = useBackend(bench, backend)
      const made = await tenancy(bench, ['new-site', 'env.localhost'], { env: backendEnv })
      expect(made.exitCode, made.stderr).toBe(0)
      const secrets = {
        TENANCY_ADMIN_PASSWORD: 'admin-secret-1234',
        TENANCY_ENCRYPTION_KEY: 'key-secret-5678',
        DEPLOY_API_TOKEN: 'token-secret-9012',
        DATABASE_URL: 'postgres://app:url-secret-3456@db.example/app',
      }
      // The child reads its environment and argv as the kernel has them, and imports TENANCY_LIB.
      const code =
        'import { readFileSync } from "node:fs"; const lib = await import(process.env.TENANCY_LIB); ' +
        'console.log(JSON.stringify({ environ: readFileSync("/proc/self/environ", "utf8"), ' +
        'cmdline: readFileSync("/proc/self/cmdline", "utf8"), cwd: process.cwd(), lib: typeof lib.usingSite }))'
      const r = await tenancy(
        bench,
        ['run', '--site', 'env.localhost', '--json', '--', 'node', '--input-type=module', '-e', code],
        { env: { ...backendEnv, ...secrets } },
      )
      expect(r.exitCode, r.stderr).toBe(0)
      const seen = JSON.parse(r.json.sites[0].stdout)
      const env = Object.fromEntries(
        seen.environ
          .split('\0')
          .filter(Boolean)
          .map((kv: string) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
      )
      expect(env).toMatchObject({
        TENANCY_SITE: 'env.localhost',
        TENANCY_SITE_PATH: join(bench, 'sites', 'env.localhost'),
        TENANCY_DB_TYPE: backend,
        TENANCY_BENCH_PATH: bench,
        TENANCY_LIB: join(ROOT, 'dist', 'index.js'),
      })
      expect(seen.cwd).toBe(bench)
      expect(seen.lib).toBe('function')
      for (const name of Object.keys(secrets)) expect(env[name], name).toBeUndefined()
      const config = siteConfig(bench, 'env.localhost')
      const hidden = [...Object.values(secrets), ...Object.values(backendEnv).filter(Boolean)]
      if (backend !== 'sqlite') {
        expect(config.db_password).toMatch(/.{12,}/)
        hidden.push(config.db_password)
      }
      for (const secret of hidden) {
        expect(seen.environ.includes(secret), 'a secret in the environment').toBe(false)
        expect(seen.cmdline.includes(secret), 'a secret in argv').toBe(false)
        expect(r.stdout.includes(secret) || r.stderr.includes(secret), 'a secret in the output').toBe(false)
      }
    },
  )
})
