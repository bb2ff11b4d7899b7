// `tenancy setup cron` and `tenancy setup systemd` (SPEC §11): a crontab cron accepts whose
// lines really run, a unit systemd accepts, and --write installing them without clobbering.
// Nothing here touches the machine's crontab or /etc: every write goes to --path, to a
// temporary XDG_CONFIG_HOME, or through a stand-in `crontab` program on the PATH.
import { execa } from 'execa'
import { chmodSync, chownSync, cpSync, existsSync, mkdirSync, readFileSync, realpathSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { BIN, makeBench, setConfig, tempDir, tenancy } from './helpers.js'

const CRON_FIELDS: [number, number][] = [
  [0, 59],
  [0, 23],
  [1, 31],
  [1, 12],
  [0, 7],
]

/** Whether one crontab time field is valid: `*`, `*\/N`, numbers, ranges and lists within its bounds. */
function validField(field: string, [min, max]: [number, number]): boolean {
  return field.split(',').every((part) => {
    const match = /^(\*|(\d+)(?:-(\d+))?)(?:\/(\d+))?$/.exec(part)
    if (!match) return false
    const [, , from, to, step] = match
    const inRange = (n: string | undefined) => n === undefined || (Number(n) >= min && Number(n) <= max)
    return inRange(from) && inRange(to) && (step === undefined || Number(step) > 0)
  })
}

/** The entries of a crontab (comments and blank lines aside) as time fields, user (cron.d) and command; throws on a bad line. */
function parseCrontab(text: string, options: { userField?: boolean } = {}) {
  const entries = []
  for (const line of text.split('\n')) {
    // Blank lines, comments and environment settings (MAILTO=...).
    if (line.trim() === '' || line.startsWith('#') || /^[A-Za-z_][A-Za-z0-9_]*\s*=/.test(line)) continue
    const words = line.split(' ')
    const time = words.slice(0, 5)
    expect(time.length, line).toBe(5)
    time.forEach((field, i) => expect(validField(field, CRON_FIELDS[i]!), `${field} in ${line}`).toBe(true))
    const user = options.userField ? words[5] : undefined
    const command = words.slice(options.userField ? 6 : 5).join(' ')
    expect(command.length, line).toBeGreaterThan(0)
    // An unescaped % would end the command there (cron makes it a line break).
    expect(/(^|[^\\])%/.test(command), line).toBe(false)
    entries.push({ time: time.join(' '), user, command })
  }
  return entries
}

async function has(program: string): Promise<boolean> {
  return (await execa('sh', ['-c', `command -v ${program}`], { reject: false })).exitCode === 0
}

/** What cron runs for an entry: its command through /bin/sh, `\%` back to `%`, cron's small PATH. */
async function runAsCron(command: string) {
  return execa('/bin/sh', ['-c', command.replace(/\\%/g, '%')], {
    cwd: '/',
    env: { PATH: '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', SHELL: '/bin/sh' },
    extendEnv: false,
    reject: false,
  })
}

/** A bench in a directory whose path has spaces and a `%` (cron's line break) in it. */
function awkwardBench(): string {
  const bench = join(tempDir(), 'my benches', 'the 100% bench')
  mkdirSync(join(bench, '..'), { recursive: true })
  cpSync(makeBench({ exampleApps: false }), bench, { recursive: true })
  return bench
}

describe('setup cron', () => {
  it('prints a valid crontab: pending-create every 5 minutes, backup nightly, pending-clear weekly, by absolute paths', async () => {
    const bench = makeBench({ exampleApps: false })
    const r = await tenancy(bench, ['setup', 'cron', '--user'])
    expect(r.exitCode, r.stderr).toBe(0)
    const lines = r.stdout.split('\n')
    expect(lines[0]).toBe(`# BEGIN tenancy ${bench}`)
    expect(lines.at(-1)).toBe(`# END tenancy ${bench}`)
    const entries = parseCrontab(r.stdout)
    expect(entries.map((e) => e.time)).toEqual(['*/5 * * * *', '30 2 * * *', '15 3 * * 0'])
    const run = `cd ${bench} && mkdir -p logs && ${process.execPath} ${realpathSync(BIN)}`
    expect(entries.map((e) => e.command)).toEqual([
      `${run} pending-create >> ${bench}/logs/pending-create.log 2>&1`,
      `${run} backup --site all >> ${bench}/logs/backup.log 2>&1`,
      `${run} pending-clear --older-than-days 7 >> ${bench}/logs/pending-clear.log 2>&1`,
    ])
    if (await has('crontab')) {
      // cronie's `crontab -T` checks a file without installing it.
      const file = join(tempDir(), 'crontab')
      writeFileSync(file, `${r.stdout}\n`)
      const checked = await execa('crontab', ['-T', file], { reject: false })
      if (!/invalid option|usage/i.test(checked.stderr)) expect(checked.exitCode, checked.stderr).toBe(0)
    }
    // --json: the same lines, and where they would go.
    const json = await tenancy(bench, ['setup', 'cron', '--user', '--json'])
    expect(json.json).toMatchObject({ kind: 'cron', scope: 'user', written: false, content: `${r.stdout}\n` })
  })

  it('its lines run as cron runs them (small PATH, / as working directory), even from a path with spaces and %', async () => {
    const bench = awkwardBench()
    const r = await tenancy(bench, ['setup', 'cron', '--user'])
    expect(r.exitCode, r.stderr).toBe(0)
    const entries = parseCrontab(r.stdout)
    expect(entries[0]!.command).toContain(`cd '${bench.replace(/%/g, '\\%')}' && `)
    // pending-clear on an empty pool: quick, and it touches no server.
    const cleared = await runAsCron(entries[2]!.command)
    expect(cleared.exitCode, cleared.stderr).toBe(0)
    expect(cleared.stdout + cleared.stderr).toBe('')
    const log = readFileSync(join(bench, 'logs', 'pending-clear.log'), 'utf8')
    expect(log).toMatch(/^Cleared 0 pending tenant\(s\)$/m)
  })

  it('--system: the cron.d form, each line run as the owner of the bench', async () => {
    const bench = makeBench({ exampleApps: false })
    chownSync(bench, 65534, 65534)
    const owner = (await execa('id', ['-nu', '65534'])).stdout
    const r = await tenancy(bench, ['setup', 'cron', '--system'])
    expect(r.exitCode, r.stderr).toBe(0)
    const entries = parseCrontab(r.stdout, { userField: true })
    expect(entries.map((e) => e.user)).toEqual([owner, owner, owner])

    const file = join(tempDir(), 'cron.d', 'tenancy-x')
    const write = await tenancy(bench, ['setup', 'cron', '--system', '--write', '--path', file])
    expect(write.exitCode, write.stderr).toBe(0)
    expect(readFileSync(file, 'utf8')).toBe(`${r.stdout}\n`)
    // cron ignores a cron.d file others may write to.
    expect((await execa('stat', ['-c', '%a', file])).stdout).toBe('644')
    expect(write.stdout).toMatch(new RegExp(`install -m 0644 ${file} /etc/cron\\.d/tenancy-`))
  })

  it('--write merges its block into a crontab, keeps the rest, refuses a changed block without --force', async () => {
    const bench = makeBench({ exampleApps: false })
    const file = join(tempDir(), 'crontab')
    const others = 'MAILTO=ops@example.com\n0 1 * * * /usr/local/bin/rotate-logs\n'
    writeFileSync(file, others)
    const first = await tenancy(bench, ['setup', 'cron', '--user', '--write', '--path', file])
    expect(first.exitCode, first.stderr).toBe(0)
    expect(first.stdout).toMatch(`Wrote ${file}`)
    const block = (await tenancy(bench, ['setup', 'cron', '--user'])).stdout
    expect(readFileSync(file, 'utf8')).toBe(`${others}\n${block}\n`)
    parseCrontab(readFileSync(file, 'utf8'))

    const again = await tenancy(bench, ['setup', 'cron', '--user', '--write', '--path', file])
    expect(again.stdout).toMatch('is up to date; nothing changed')
    expect(readFileSync(file, 'utf8')).toBe(`${others}\n${block}\n`)

    // The block changed by hand (a time moved): not replaced silently.
    const edited = readFileSync(file, 'utf8').replace('*/5 * * * *', '*/10 * * * *')
    writeFileSync(file, `${edited}30 4 * * * /usr/local/bin/after-ours\n`)
    const refused = await tenancy(bench, ['setup', 'cron', '--user', '--write', '--path', file])
    expect(refused.exitCode).toBe(2)
    expect(refused.stderr).toMatch(/holds another tenancy block for this bench.*pass --force/)
    expect(readFileSync(file, 'utf8')).toContain('*/10 * * * *')
    const forced = await tenancy(bench, ['setup', 'cron', '--user', '--write', '--path', file, '--force'])
    expect(forced.exitCode, forced.stderr).toBe(0)
    expect(readFileSync(file, 'utf8')).toBe(`${others}\n${block}\n30 4 * * * /usr/local/bin/after-ours\n`)
  })

  it('--write without --path goes through `crontab -l` / `crontab -` (a stand-in here), "no crontab" being an empty one', async () => {
    const bench = makeBench({ exampleApps: false })
    const dir = tempDir('fake-crontab-')
    const store = join(dir, 'installed')
    // Like cron's crontab: -l prints it or says there is none (exit 1); - installs stdin.
    writeFileSync(
      join(dir, 'crontab'),
      `#!/bin/sh\ncase "$1" in\n  -l) [ -f '${store}' ] && exec cat '${store}'; echo "no crontab for $(id -un)" >&2; exit 1 ;;\n` +
        `  -) cat > '${store}' ;;\n  *) exit 2 ;;\nesac\n`,
    )
    chmodSync(join(dir, 'crontab'), 0o755)
    const env = { PATH: `${dir}:${process.env.PATH}` }
    const first = await tenancy(bench, ['setup', 'cron', '--user', '--write'], { env })
    expect(first.exitCode, first.stderr).toBe(0)
    const block = (await tenancy(bench, ['setup', 'cron', '--user'])).stdout
    expect(readFileSync(store, 'utf8')).toBe(`${block}\n`)
    // Another bench's block beside it is kept, and so is this one's on a second run.
    const other = makeBench({ exampleApps: false })
    expect((await tenancy(other, ['setup', 'cron', '--user', '--write'], { env })).exitCode).toBe(0)
    const both = readFileSync(store, 'utf8')
    expect(both).toContain(`# BEGIN tenancy ${bench}`)
    expect(both).toContain(`# BEGIN tenancy ${other}`)
    expect(parseCrontab(both)).toHaveLength(6)

    // A crontab -l that fails for another reason is not taken for an empty crontab.
    writeFileSync(join(dir, 'crontab'), '#!/bin/sh\necho "crontab: cannot open spool" >&2\nexit 1\n')
    const failing = await tenancy(bench, ['setup', 'cron', '--user', '--write', '--force'], { env })
    expect(failing.exitCode).toBe(1)
    expect(failing.stderr).toMatch(/crontab -l failed: crontab: cannot open spool; your crontab is unchanged/)
    expect(readFileSync(store, 'utf8')).toBe(both)
  })
})

describe('setup systemd', () => {
  const unitOf = async (bench: string, args: string[] = []) => {
    const r = await tenancy(bench, ['setup', 'systemd', ...args])
    expect(r.exitCode, r.stderr).toBe(0)
    return r.stdout
  }
  const key = (unit: string, name: string) =>
    unit
      .split('\n')
      .filter((l) => l.startsWith(`${name}=`))
      .map((l) => l.slice(name.length + 1))

  async function verify(file: string): Promise<void> {
    if (!(await has('systemd-analyze'))) return
    const r = await execa('systemd-analyze', ['verify', file], { reject: false })
    expect(r.exitCode, r.stderr).toBe(0)
    // verify reports unknown keys and bad values as warnings, exit 0: none may name our file.
    expect(r.stderr).not.toContain(file.split('/').pop()!)
  }

  it('prints a unit for the worker: restart on failure, SIGTERM with a stop timeout past the longest step', async () => {
    const bench = makeBench({ exampleApps: false })
    setConfig(bench, (c) => {
      c.provision.step_timeout = 120
      c.provision.steps = ['create-site', { run: 'true', timeout: 600 }, 'install-apps', 'activate']
      c.db = { type: 'mariadb' }
      c.registry = 'postgres://tenancy@127.0.0.1/registry'
    })
    const unit = await unitOf(bench, ['--system'])
    expect(key(unit, 'Restart')).toEqual(['on-failure'])
    expect(key(unit, 'KillSignal')).toEqual(['SIGTERM'])
    expect(key(unit, 'KillMode')).toEqual(['mixed'])
    expect(key(unit, 'TimeoutStopSec')).toEqual(['630'])
    expect(key(unit, 'SuccessExitStatus')).toEqual(['130'])
    expect(key(unit, 'WorkingDirectory')).toEqual([bench])
    expect(key(unit, 'ExecStart')).toEqual([`${process.execPath} ${realpathSync(BIN)} worker`])
    expect(key(unit, 'After')).toEqual(['network-online.target postgresql.service mariadb.service'])
    expect(key(unit, 'WantedBy')).toEqual(['multi-user.target'])
    // Run as root, a root-owned bench: no User= (it runs as root).
    expect(key(unit, 'User')).toEqual([])

    const file = join(tempDir(), 'tenancy-worker-test.service')
    writeFileSync(file, unit)
    await verify(file)
  })

  it('a system unit runs as the bench owner; a user unit has no User= and starts with the user session', async () => {
    const bench = makeBench({ exampleApps: false })
    // A user of every Debian system other than root (systemd warns about "nobody").
    chownSync(bench, 1, 1)
    const owner = (await execa('id', ['-nu', '1'])).stdout
    const system = await unitOf(bench, ['--system'])
    expect(key(system, 'User')).toEqual([owner])
    const user = await unitOf(bench, ['--user'])
    expect(key(user, 'User')).toEqual([])
    expect(key(user, 'After')).toEqual([])
    expect(key(user, 'WantedBy')).toEqual(['default.target'])
    const file = join(tempDir(), 'tenancy-worker-owned.service')
    writeFileSync(file, system)
    await verify(file)
  })

  it('--write installs it, says what to run next, and refuses to overwrite a different file without --force', async () => {
    const bench = makeBench({ exampleApps: false })
    const home = tempDir('xdg-')
    const env = { XDG_CONFIG_HOME: home }
    const name = bench
      .split('/')
      .pop()!
      .replace(/[^A-Za-z0-9_-]+/g, '-')
    const r = await tenancy(bench, ['setup', 'systemd', '--user', '--write', '--json'], { env })
    expect(r.exitCode, r.stderr).toBe(0)
    const file = join(home, 'systemd', 'user', `tenancy-worker-${name}.service`)
    expect(r.json).toMatchObject({ kind: 'systemd', scope: 'user', target: file, written: true, changed: true })
    expect(r.json.next[0]).toBe(
      `systemctl --user daemon-reload && systemctl --user enable --now tenancy-worker-${name}.service`,
    )
    expect(r.json.next[1]).toMatch(/^loginctl enable-linger /)
    expect(readFileSync(file, 'utf8')).toBe(r.json.content)
    await verify(file)

    const same = await tenancy(bench, ['setup', 'systemd', '--user', '--write'], { env })
    expect(same.stdout).toMatch('is up to date; nothing changed')

    writeFileSync(file, '[Service]\nExecStart=/bin/true\n')
    const refused = await tenancy(bench, ['setup', 'systemd', '--user', '--write'], { env })
    expect(refused.exitCode).toBe(2)
    expect(refused.stderr).toMatch(`${file} exists and is not the unit tenancy would write; pass --force`)
    expect(readFileSync(file, 'utf8')).toBe('[Service]\nExecStart=/bin/true\n')
    const forced = await tenancy(bench, ['setup', 'systemd', '--user', '--write', '--force'], { env })
    expect(forced.exitCode, forced.stderr).toBe(0)
    expect(readFileSync(file, 'utf8')).toBe(r.json.content)

    // --path: there instead, and enabled by its path.
    const elsewhere = join(tempDir(), 'units', 'tenancy-worker-here.service')
    const at = await tenancy(bench, ['setup', 'systemd', '--system', '--write', '--path', elsewhere])
    expect(at.exitCode, at.stderr).toBe(0)
    expect(at.stdout).toMatch(`systemctl enable --now ${elsewhere}`)
    expect(existsSync(elsewhere)).toBe(true)
  })

  it('a bench path with spaces and % makes a unit systemd reads back as that path', async () => {
    const bench = awkwardBench()
    const unit = await unitOf(bench, ['--system'])
    expect(key(unit, 'WorkingDirectory')).toEqual([bench.replace(/%/g, '%%')])
    const file = join(tempDir(), 'tenancy-worker-awkward.service')
    writeFileSync(file, unit)
    await verify(file)
  })
})

describe('setup flags', () => {
  it('refuses flags that contradict or do nothing, with exit 2', async () => {
    const bench = makeBench({ exampleApps: false })
    const cases: [string[], RegExp][] = [
      [['setup', 'cron', '--user', '--system'], /give --user or --system, not both/],
      [['setup', 'systemd', '--path', '/tmp/x.service'], /--path says where --write puts it; add --write/],
      [['setup', 'cron', '--force'], /--force replaces an installed file; add --write/],
      [['setup', 'systemd', '--name', 'a.b'], /invalid --name "a\.b"/],
    ]
    for (const [args, says] of cases) {
      const r = await tenancy(bench, args)
      expect(r.exitCode, args.join(' ')).toBe(2)
      expect(r.stderr, args.join(' ')).toMatch(says)
    }
  })
})
