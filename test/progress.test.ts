import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { execa } from 'execa'
import { describe, expect, it } from 'vitest'
import { fleetCounter } from '../src/cli/render.js'
import { Output } from '../src/output/output.js'
import { fleetProgress } from '../src/output/progress.js'
import { BIN, cleanEnv, makeBench, tenancy } from './helpers.js'
import { newSite, usingBench } from '../src/index.js'

const ESC = '\u001b'
/** What the progress line is drawn with: carriage return, then "erase the whole line". */
const CLEAR_LINE = '\r\u001b[2K'
const SGR = /\u001b\[[0-9;]*m/g

/**
 * What a terminal shows once `raw` is written to it: carriage returns, "erase line" and
 * newlines applied (colours dropped), one string a screen line, the last (unfinished) one too.
 */
function screen(raw: string): string[] {
  const lines: string[] = []
  let line = ''
  let col = 0
  for (let i = 0; i < raw.length;) {
    if (raw.startsWith('\u001b[2K', i)) {
      line = ''
      i += 4
    } else if (raw[i] === ESC) {
      i += /^\u001b\[[0-9;]*[A-Za-z]/.exec(raw.slice(i))?.[0].length ?? 1
    } else if (raw[i] === '\r') {
      col = 0
      i++
    } else if (raw[i] === '\n') {
      lines.push(line)
      line = ''
      col = 0
      i++
    } else {
      line = line.slice(0, col).padEnd(col) + raw[i] + line.slice(col + 1)
      col++
      i++
    }
  }
  if (line !== '') lines.push(line)
  return lines
}

/**
 * Each drawing of the progress line in `raw`: what follows an erase (and the lines printed
 * with it), up to the next carriage return, colours dropped.
 */
function progressDraws(raw: string, noun: string): string[] {
  return raw
    .split(CLEAR_LINE)
    .slice(1)
    .map((part) =>
      part
        .slice(part.lastIndexOf('\n') + 1)
        .split('\r')[0]!
        .replace(SGR, ''),
    )
    .filter((part) => new RegExp(`^\\d+/\\d+ ${noun}`).test(part))
}

/**
 * Runs the built CLI in a pseudo-terminal (util-linux `script`): stdout and stderr are the
 * terminal, merged. With `interruptOn`, Ctrl-C (SIGINT to the CLI) once the screen shows it.
 */
async function onTerminal(cwd: string, args: string[], env: Record<string, string> = {}, interruptOn?: RegExp) {
  const words = [process.execPath, BIN, ...args].map((word) => `'${word.replace(/'/g, `'\\''`)}'`)
  // exec: the CLI is script's own child, to be found (and interrupted) as such.
  const child = execa('script', ['-qefc', `exec ${words.join(' ')}`, '/dev/null'], {
    cwd,
    env: cleanEnv({ TERM: 'xterm-256color', ...env }),
    extendEnv: false,
    reject: false,
    stdin: 'ignore',
    timeout: 60_000,
    stripFinalNewline: false,
  })
  if (interruptOn) {
    let seen = ''
    let sent = false
    child.stdout!.on('data', (chunk: Buffer) => {
      seen += String(chunk)
      if (sent || !interruptOn.test(seen)) return
      sent = true
      const cli = readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim().split(' ')[0]!
      process.kill(Number(cli), 'SIGINT')
    })
  }
  const result = await child
  return { exitCode: result.exitCode, raw: String(result.stdout) }
}

const SITES = Array.from({ length: 10 }, (_, i) => `s${i}.localhost`)

/** SQLite sites with shared_lib (the ten of SITES), made in-process, and a migration added after them (with its down). */
async function fleetBench(sites = SITES): Promise<string> {
  const bench = makeBench()
  await usingBench({ cwd: bench, env: { ...process.env, TENANCY_ADMIN_PASSWORD: 'pw' } }, async (b) => {
    for (const site of sites) await newSite(b, { site, installApps: ['shared_lib'] })
  })
  const migrations = join(bench, 'apps', 'shared_lib', 'migrations')
  writeFileSync(join(migrations, '0005_invoices.sql'), 'CREATE TABLE invoices (id VARCHAR(32) PRIMARY KEY);\n')
  writeFileSync(join(migrations, '0005_invoices.down.sql'), 'DROP TABLE invoices;\n')
  return bench
}

/** A terminal-like stream that keeps what is written to it. */
class Terminal extends Writable {
  text = ''
  isTTY = true
  constructor(public columns: number) {
    super()
  }
  override _write(chunk: Buffer, _encoding: string, done: () => void): void {
    this.text += String(chunk)
    done()
  }
}

describe('the shared progress line', () => {
  const make = (env: Record<string, string>, options: { json?: boolean; stderrTty?: boolean } = {}) => {
    const stderr = new Terminal(30)
    const stdout = new Terminal(30)
    stderr.isTTY = options.stderrTty ?? true
    const out = new Output({
      json: options.json,
      stderr: stderr as unknown as NodeJS.WriteStream,
      stdout: stdout as unknown as NodeJS.WriteStream,
      env,
    })
    const progress = fleetProgress(
      out,
      (done, total, s) => fleetCounter(done, total, s, 'sites', ['a.localhost x']),
      env,
    )
    return { stderr, stdout, progress }
  }

  it('prints lines above one progress line cut to the width, stdout lines too, and clears it', () => {
    const { stderr, stdout, progress } = make({ NO_COLOR: '1', TERM: 'xterm' })
    const onSite = progress.siteLines(() => 'done')
    onSite({ site: 'a.localhost' }, 1, 3)
    progress.print('from a child', stdout as unknown as NodeJS.WriteStream)
    onSite({ site: 'b.localhost' }, 2, 3)
    progress.clear()
    progress.print('after')
    expect(stdout.text).toBe('from a child\n')
    const draws = progressDraws(stderr.text, 'sites')
    expect(draws.length).toBeGreaterThanOrEqual(3)
    // 29 columns: the line never reaches the last column, so it never wraps.
    for (const draw of draws) expect([...draw].length).toBeLessThanOrEqual(29)
    expect(draws.at(-1)).toMatch(/^2\/3 sites, /)
    expect(draws.every((d) => d.endsWith('…'))).toBe(true)
    expect(screen(stderr.text)).toEqual(['a.localhost: done', 'b.localhost: done', 'after'])
    expect(stderr.text.replace(/\u001b\[2K/g, '')).not.toContain(ESC)
  })

  it('draws nothing with TERM=dumb, with --json or off a terminal: plain lines only', () => {
    for (const [env, options] of [
      [{ TERM: 'dumb' }, {}],
      [{ TERM: 'xterm' }, { json: true }],
    ] as const) {
      const { stderr, progress } = make(env, options)
      progress.siteLines(() => 'done')({ site: 'a.localhost' }, 1, 2)
      progress.update(2, 2)
      progress.clear()
      expect(stderr.text).toBe(options.json ? '' : 'a.localhost: done\n')
    }
    const { stderr, progress } = make({ TERM: 'xterm' }, { stderrTty: false })
    progress.print('plain')
    progress.update(1, 1)
    expect(stderr.text).toBe('plain\n')
  })

  it('says what runs now after the count, rate and ETA', () => {
    expect(fleetCounter(0, 5, 1, 'tenants', ['pending-3f2a create-site'])).toBe(
      '0/5 tenants, -/s, ETA ?, now: pending-3f2a create-site',
    )
    expect(fleetCounter(2, 5, 4, 'tenants', ['pending-3f2a api-keys', 'pending-9c1b install-apps'])).toBe(
      '2/5 tenants, 0.5/s, ETA 6 s, now: pending-3f2a api-keys, pending-9c1b install-apps',
    )
    expect(fleetCounter(100, 1000, 2, 'sites')).toBe('100/1000 sites, 50/s, ETA 18 s')
    expect(fleetCounter(1, 1000, 10, 'sites')).toBe('1/1000 sites, 0.1/s, ETA 2 h 47 min')
  })
})

describe('fleet commands on a terminal and piped', () => {
  it('migrate on a terminal: the result of every site above one progress line, cut to COLUMNS, cleared before the summary; piped: plain lines', async () => {
    const bench = await fleetBench()
    const tty = await onTerminal(bench, ['migrate', '--concurrency', '2'], { COLUMNS: '20' })
    expect(tty.exitCode, tty.raw).toBe(0)
    const shown = screen(tty.raw)
    // What stays on the screen: every site's line, then the summary; the progress line is gone.
    const siteLines = shown.slice(0, -1)
    expect(siteLines.map((l) => l.split(': ')[0]).sort()).toEqual(SITES)
    for (const line of siteLines) expect(line).toMatch(/^s\d\.localhost: migrated \(shared_lib\/0005_invoices\)/)
    expect(shown.at(-1)).toMatch(/^10 site\(s\): 10 migrated, 0 up to date, 0 failed, 0 skipped in \d+ ms$/)
    const draws = progressDraws(tty.raw, 'sites')
    expect(draws.length).toBeGreaterThanOrEqual(9)
    for (const draw of draws) expect([...draw].length).toBeLessThanOrEqual(19)
    expect(draws.some((d) => d.startsWith('10/10 sites') && d.endsWith('…'))).toBe(true)
    // The last drawing is erased before the summary is written.
    expect(tty.raw.lastIndexOf(CLEAR_LINE)).toBeLessThan(tty.raw.indexOf('10 site(s)'))
    // NO_COLOR (the tests' environment): no colour, only the erase of the redraws.
    expect(tty.raw.replace(/\u001b\[2K/g, '')).not.toContain(ESC)

    // TERM=dumb cannot redraw: plain lines, not one escape.
    const dumb = await onTerminal(bench, ['rollback', '--site', 'all', '--concurrency', '2'], { TERM: 'dumb' })
    expect(dumb.exitCode, dumb.raw).toBe(0)
    expect(dumb.raw).not.toContain(ESC)
    expect(screen(dumb.raw).filter((l) => l.endsWith(': rolled back shared_lib/0005_invoices'))).toHaveLength(10)

    const piped = await tenancy(bench, ['migrate', '--concurrency', '2'])
    expect(piped.exitCode, piped.stderr).toBe(0)
    for (const text of [piped.stdout, piped.stderr]) expect(text).not.toContain(ESC)
    expect(
      piped.stderr
        .split('\n')
        .filter((l) => / migrated \(shared_lib\/0005_invoices\)/.test(l))
        .sort(),
    ).toEqual(SITES.map((s) => `${s}: migrated (shared_lib/0005_invoices); fixtures synced: shared_lib`).sort())
    expect(piped.stdout).toMatch(/^10 site\(s\): 10 migrated/)
  })

  it('run, execute and backup on a terminal (in colour): the output lines above the progress line, none cut by it', async () => {
    const bench = await fleetBench()
    const env = { NO_COLOR: '', COLUMNS: '80' }
    const run = await onTerminal(
      bench,
      [
        'run',
        '--site',
        'all',
        '--concurrency',
        '3',
        '--shell',
        'echo "out $TENANCY_SITE"; echo "err $TENANCY_SITE" >&2',
      ],
      env,
    )
    expect(run.exitCode, run.raw).toBe(0)
    const ran = screen(run.raw)
    for (const site of SITES) {
      expect(ran).toContain(`${site}: out ${site}`)
      expect(ran).toContain(`${site}: err ${site}`)
    }
    expect(ran.at(-1)).toMatch(/^10 site\(s\): 10 succeeded, 0 failed, 0 skipped in \d+ ms$/)
    expect(ran).toHaveLength(21)
    expect(progressDraws(run.raw, 'sites').length).toBeGreaterThanOrEqual(9)
    expect(run.raw).toMatch(SGR)

    writeFileSync(join(bench, 'count.mjs'), 'export default async ({ site }) => ({ site })\n')
    const execute = await onTerminal(bench, ['execute', 'count.mjs', '--site', 'all', '--concurrency', '2'], env)
    expect(execute.exitCode, execute.raw).toBe(0)
    const executed = screen(execute.raw)
    expect(executed.slice(0, -1).sort()).toEqual(SITES.map((s) => `${s}: {"site":"${s}"}`).sort())
    expect(progressDraws(execute.raw, 'sites').length).toBeGreaterThanOrEqual(9)

    const backup = await onTerminal(bench, ['backup', '--site', 'all', '--concurrency', '2'], env)
    expect(backup.exitCode, backup.raw).toBe(0)
    const backedUp = screen(backup.raw)
    expect(backedUp.filter((l) => / backed up to /.test(l))).toHaveLength(10)
    expect(backedUp.at(-1)).toMatch(/^10 site\(s\): 10 backed up, 0 failed, 0 skipped in \d+ ms$/)

    const piped = await tenancy(bench, ['execute', 'count.mjs', '--site', 'all'])
    for (const text of [piped.stdout, piped.stderr]) expect(text).not.toContain(ESC)
    expect(piped.stdout.trim().split('\n')).toHaveLength(10)
  })
})

describe('Ctrl-C on a terminal', () => {
  it('run: the progress line is cleared before what the interruption left is said (exit 130)', async () => {
    const bench = await fleetBench(SITES.slice(0, 3))
    // The first site ends at once (the progress line is drawn), the second says it runs and waits to be interrupted.
    const shell = 'echo "started $TENANCY_SITE"; test "$TENANCY_SITE" = s0.localhost || sleep 30'
    const args = ['run', '--site', 'all', '--concurrency', '1', '--skip-failing', '--shell', shell]
    const tty = await onTerminal(bench, args, { COLUMNS: '80' }, /s1\.localhost: started/)
    expect(tty.exitCode, tty.raw).toBe(130)
    const shown = screen(tty.raw)
    expect(progressDraws(tty.raw, 'sites').length).toBeGreaterThan(0)
    // The progress line is gone: what the sites printed, the interrupted one, the one not started, the summary.
    expect(shown).toEqual([
      's0.localhost: started s0.localhost',
      's1.localhost: started s1.localhost',
      expect.stringMatching(/^s1\.localhost: interrupted: /),
      's2.localhost: not started: run was interrupted',
      expect.stringMatching(/^3 site\(s\): 1 succeeded, 0 failed, 0 skipped, 2 interrupted in \d+ ms$/),
    ])
    expect(tty.raw.lastIndexOf(CLEAR_LINE)).toBeLessThan(tty.raw.indexOf('3 site(s)'))
  })
})

describe('pending-create and pending-clear', () => {
  it('on a terminal the steps of each tenant are lines naming it above one progress line of what runs now; piped: one plain line per step', async () => {
    const bench = makeBench({ lightSites: true })
    const tty = await onTerminal(bench, ['pending-create', '--count', '3', '--concurrency', '2'], { COLUMNS: '60' })
    expect(tty.exitCode, tty.raw).toBe(0)
    const shown = screen(tty.raw)
    const tenants = [...new Set(shown.flatMap((l) => /^✔ provisioned pending tenant (\S+)$/.exec(l)?.[1] ?? []))]
    expect(tenants).toHaveLength(3)
    for (const tenant of tenants)
      for (const step of ['create-site', 'install-app shared_lib', 'api-user', 'api-keys', 'activate'])
        expect(shown.filter((l) => l.startsWith(`✔ ${tenant}: ${step}`) && / \(\d+ ms\)$/.test(l))).toHaveLength(1)
    expect(shown.at(-1)).toMatch(/^Pool: 3 ready, 0 being provisioned \(target 3\)/)
    const draws = progressDraws(tty.raw, 'tenants')
    for (const draw of draws) expect([...draw].length).toBeLessThanOrEqual(59)
    expect(draws.some((d) => /^\d\/3 tenants, .*, now: pending-\w+ \S/.test(d))).toBe(true)
    expect(shown.some((l) => / tenants, /.test(l))).toBe(false)

    const piped = await tenancy(bench, ['pending-create', '--count', '5', '--concurrency', '2'])
    expect(piped.exitCode, piped.stderr).toBe(0)
    for (const text of [piped.stdout, piped.stderr]) expect(text).not.toContain(ESC)
    const lines = piped.stderr.split('\n')
    const added = lines.flatMap((l) => /^✔ provisioned pending tenant (\S+)$/.exec(l)?.[1] ?? [])
    expect(added).toHaveLength(2)
    for (const tenant of added)
      expect(lines.filter((l) => l.startsWith(`✔ ${tenant}: `)).map((l) => l.split(': ')[1])).toEqual([
        'create-site',
        'developer-mode',
        'install-app shared_lib',
        'api-user',
        'api-keys',
        'activate',
      ])

    const cleared = await tenancy(bench, ['pending-clear'])
    expect(cleared.exitCode, cleared.stderr).toBe(0)
    expect(cleared.stderr.split('\n').filter((l) => l.endsWith(': cleared'))).toHaveLength(5)
    expect(cleared.stdout).toMatch(/^Cleared 5 pending tenant\(s\)/)
    const json = await tenancy(bench, ['pending-create', '--count', '1', '--json'])
    expect(json.json).toMatchObject({ target: 1, provisioned: [expect.stringMatching(/^pending-/)] })
  })
})
