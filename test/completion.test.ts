// Shell completion (SPEC §11): the engine over the real commander program, and the scripts
// loaded in real shells completing a command, a flag and a site name of a real bench.
import { execa } from 'execa'
import { chmodSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { beforeAll, describe, expect, it } from 'vitest'
import { buildProgram } from '../src/cli/main.js'
import { ARGUMENT_VALUES, complete, FLAG_VALUES, type NameSource } from '../src/cli/completion.js'
import type { Command } from 'commander'
import { BIN, cleanEnv, makeBench, setConfig, tempDir, tenancy } from './helpers.js'

const NAMES: NameSource = async (kind) =>
  ({ sites: ['acme.localhost', 'beta.localhost'], tenants: ['acme', 'bob'], apps: ['shared_lib', 'tenant_ops'] })[kind]

const program = buildProgram()
const values = async (...words: string[]) => (await complete(program, words, NAMES)).items.map((i) => i.value)

describe('the completion engine, over the program itself', () => {
  it('completes commands and subcommands, hidden ones left out', async () => {
    const top = await values('')
    expect(top).toEqual(expect.arrayContaining(['new-site', 'drop-site', 'tenant', 'setup', 'completion', 'help']))
    expect(top).not.toContain('__complete')
    expect(await values('new-s')).toEqual(['new-site'])
    expect(await values('tenant', 'cr')).toEqual(['create'])
    expect(await values('host', '')).toEqual(['forget', 'help'])
    expect(await values('setup', '')).toEqual(['cron', 'systemd', 'help'])
    // Global flags and their values before the command do not hide it.
    expect(await values('--site', 'acme.localhost', '--json', 'tenant', 'sh')).toEqual(['show'])
    expect(await values('help', 'ten')).toEqual(['tenant'])
    expect(await values('tenant', 'help', 'del')).toEqual(['delete'])
  })

  it("completes each command's own flags and the global ones", async () => {
    const flags = await values('tenant', 'create', '--')
    expect(flags).toEqual(expect.arrayContaining(['--background', '--data', '--json', '--site', '--config', '--help']))
    expect(flags).not.toContain('--keep-site')
    expect(await values('new-site', '--db-t')).toEqual(['--db-type'])
    // A hidden flag (bench's alias) is accepted but not offered.
    expect(await values('new-site', '--mariadb')).toEqual([])
    // After `--` nothing is a flag any more.
    expect(await values('run', '--site', 'all', '--', '--')).toEqual([])
  })

  it('completes flag values: choices, sites (with "all" for fleet commands), tenants, apps, paths', async () => {
    expect(await values('new-site', '--db-type', '')).toEqual(['sqlite', 'mariadb', 'mysql', 'postgres'])
    expect(await values('new-site', '--db-type', 'p')).toEqual(['postgres'])
    expect(await values('drop-site', '--site', '')).toEqual(['acme.localhost', 'beta.localhost'])
    expect(await values('migrate', '--site', '')).toEqual(['all', 'acme.localhost', 'beta.localhost'])
    expect(await values('backup', '--skip-site', 'b')).toEqual(['beta.localhost'])
    expect(await values('errors', '--tenant', '')).toEqual(['acme', 'bob'])
    expect(await values('rollback', '--app', 's')).toEqual(['shared_lib'])
    expect(await values('completion', '')).toEqual(['bash', 'zsh', 'fish'])
    // zsh and fish keep `--site=ac` one word; bash splits it at the `=`.
    expect(await values('--site=ac')).toEqual(['--site=acme.localhost'])
    expect(await values('--site', '=', 'b')).toEqual(['beta.localhost'])
    expect(await values('--site', '=')).toEqual(['acme.localhost', 'beta.localhost'])
    expect((await complete(program, ['--config', ''], NAMES)).mode).toBe('files')
    expect((await complete(program, ['new-site', 'x.localhost', '--admin-password-file', ''], NAMES)).mode).toBe(
      'files',
    )
    expect((await complete(program, ['list-backups', '--backup-path', ''], NAMES)).mode).toBe('dirs')
  })

  it('completes positional arguments: the site, tenant or app each command names', async () => {
    expect(await values('drop-site', '')).toEqual(['acme.localhost', 'beta.localhost'])
    expect(await values('rename-site', 'a')).toEqual(['acme.localhost'])
    expect(await values('rename-site', 'acme.localhost', '')).toEqual([])
    expect(await values('use', 'b')).toEqual(['beta.localhost'])
    expect(await values('tenant', 'show', '')).toEqual(['acme', 'bob'])
    expect(await values('tenant', 'delete', '--keep-site', 'b')).toEqual(['bob'])
    expect(await values('provision', 'a')).toEqual(['acme'])
    // Variadic: every app after the first too.
    expect(await values('install-app', 'shared_lib', 't')).toEqual(['tenant_ops'])
    expect(await values('uninstall-app', '')).toEqual(['shared_lib', 'tenant_ops'])
    expect(await values('restore', '')).toEqual(['acme.localhost', 'beta.localhost'])
    expect((await complete(program, ['restore', 'acme.localhost', ''], NAMES)).mode).toBe('dirs')
    // A new name is free text: nothing offered.
    expect(await values('new-site', '')).toEqual([])
    expect(await values('tenant', 'create', '')).toEqual([])
  })

  it('an unreadable bench gives no names, not an error', async () => {
    const failing: NameSource = async () => {
      throw new Error('no bench')
    }
    expect((await complete(program, ['drop-site', ''], failing)).items).toEqual([])
    expect((await complete(program, ['migrate', '--site', ''], failing)).items.map((i) => i.value)).toEqual(['all'])
  })

  it('its tables name only commands, arguments and flags the program has (so they cannot go stale)', () => {
    const all: Command[] = []
    const walk = (c: Command) => {
      all.push(c)
      c.commands.forEach(walk)
    }
    walk(program)
    const path = (c: Command): string => (c.parent?.parent ? `${path(c.parent)} ${c.name()}` : c.name())
    const byPath = new Map(all.slice(1).map((c) => [path(c), c]))
    for (const [name, kinds] of Object.entries(ARGUMENT_VALUES)) {
      if (name === 'help') continue
      const command = byPath.get(name)
      expect(command, name).toBeDefined()
      expect(command!.registeredArguments.length, name).toBeGreaterThanOrEqual(kinds.length)
    }
    const flags = new Set(all.flatMap((c) => c.options.map((o) => o.long)))
    for (const flag of Object.keys(FLAG_VALUES)) expect(flags.has(flag), flag).toBe(true)
  })
})

/** A directory holding a `tenancy` that runs this build, as an installed one would be on the PATH. */
function tenancyOnPath(): string {
  const dir = tempDir('tenancy-bin-')
  const file = join(dir, 'tenancy')
  writeFileSync(file, `#!/bin/sh\nexec '${process.execPath}' '${BIN}' "$@"\n`)
  chmodSync(file, 0o755)
  return dir
}

const shellEnv = (bin: string) => cleanEnv({ PATH: `${bin}:${process.env.PATH}` })

async function has(program: string): Promise<boolean> {
  return (await execa('sh', ['-c', `command -v ${program}`], { reject: false })).exitCode === 0
}

/** Runs bash's completion function as bash would on Tab, for `line` (the words; the last one being completed). */
async function bashComplete(bench: string, bin: string, words: string[]): Promise<string[]> {
  const quoted = words.map((w) => `'${w}'`).join(' ')
  const script =
    'source <(tenancy completion bash) && ' +
    `COMP_WORDS=(tenancy ${quoted}) && COMP_CWORD=${words.length} && _tenancy_complete && ` +
    'printf "%s\\n" "${COMPREPLY[@]}"'
  const r = await execa('bash', ['-c', script], { cwd: bench, env: shellEnv(bin), extendEnv: false })
  return r.stdout.split('\n').filter(Boolean)
}

describe('the completion scripts, in real shells, on a real bench', () => {
  let bench: string
  beforeAll(async () => {
    bench = makeBench({ forFile: true, lightSites: true })
    for (const args of [
      ['new-site', 'acme.localhost'],
      ['tenant', 'create', 'bob', '--no-pool'],
    ]) {
      const r = await tenancy(bench, args)
      expect(r.exitCode, r.stderr).toBe(0)
    }
  })

  it('bash: the script loads and registers, and Tab completes a command, a flag and a site name', async () => {
    const bin = tenancyOnPath()
    const loaded = await execa('bash', ['-c', 'source <(tenancy completion bash); complete -p tenancy'], {
      cwd: bench,
      env: shellEnv(bin),
      extendEnv: false,
    })
    expect(loaded.stdout).toBe('complete -F _tenancy_complete tenancy')
    expect(await bashComplete(bench, bin, ['new-s'])).toEqual(['new-site'])
    expect(await bashComplete(bench, bin, ['new-site', '--db-t'])).toEqual(['--db-type'])
    expect(await bashComplete(bench, bin, ['drop-site', 'ac'])).toEqual(['acme.localhost'])
    expect(await bashComplete(bench, bin, ['tenant', 'sh'])).toEqual(['show'])
    // `--site=ac`, as bash splits it.
    expect(await bashComplete(bench, bin, ['--site', '=', 'ac'])).toEqual(['acme.localhost'])
    // A path: bash's own file completion.
    expect(await bashComplete(bench, bin, ['--config', 'tenancy.c'])).toEqual(['tenancy.config.json'])
  })

  it('zsh: the script loads under compinit and completes a site name (skipped without zsh)', async (ctx) => {
    if (!(await has('zsh'))) return ctx.skip('zsh is not installed')
    const bin = tenancyOnPath()
    // _describe and _files only draw inside a completion widget; here they print what they are given.
    const script =
      'autoload -Uz compinit && compinit -u -D; source <(tenancy completion zsh); print -r -- "registered $_comps[tenancy]"; ' +
      '_describe() { print -rl -- "${(@P)${@[-1]}}" }; _files() { print -r -- "files $*" }; ' +
      'words=(tenancy drop-site ac); CURRENT=3; _tenancy; ' +
      'words=(tenancy new-s); CURRENT=2; _tenancy; ' +
      'words=(tenancy restore acme.localhost ""); CURRENT=4; _tenancy'
    const r = await execa('zsh', ['-fc', script], { cwd: bench, env: shellEnv(bin), extendEnv: false })
    expect(r.stdout.split('\n')).toEqual([
      'registered _tenancy',
      'acme.localhost',
      expect.stringMatching(/^new-site:create a site/),
      'files -/',
    ])
  })

  it('fish: the script loads and `complete -C` completes a command and a site name (skipped without fish)', async (ctx) => {
    if (!(await has('fish'))) {
      return ctx.skip('fish is not installed')
    }
    const bin = tenancyOnPath()
    const script =
      'tenancy completion fish | source; complete -C"tenancy drop-site a"; complete -C"tenancy new-s"; complete -C"tenancy --site=ac"'
    const r = await execa('fish', ['-c', script], { cwd: bench, env: shellEnv(bin), extendEnv: false })
    expect(r.stdout.split('\n')).toEqual([
      'acme.localhost',
      expect.stringMatching(/^new-site\tcreate a site/),
      '--site=acme.localhost',
    ])
  })

  it('--names prints the names read-only, and nothing (exit 0) outside a bench or without a registry', async () => {
    // What the registry holds: its files and their bytes (the -shm index aside, which every
    // reader of a WAL database writes its read marks into).
    const state = () =>
      readdirSync(join(bench, '.tenancy')).map((f) => [
        f,
        f.endsWith('-shm') ? '' : readFileSync(join(bench, '.tenancy', f)).toString('base64'),
      ])
    const before = state()
    const sites = await tenancy(bench, ['completion', '--names', 'sites'])
    expect(sites).toMatchObject({ exitCode: 0, stdout: 'acme.localhost\nbob.localhost', stderr: '' })
    const apps = await tenancy(bench, ['completion', '--names', 'apps'])
    expect(apps.stdout).toBe('shared_lib\ntenant_ops')
    expect((await tenancy(bench, ['completion', '--names', 'tenants'])).stdout).toBe('bob')
    // Nothing written: no recovery, no migration, no WAL checkpoint.
    expect(state()).toEqual(before)

    const outside = await tenancy(tempDir(), ['completion', '--names', 'sites'])
    expect(outside).toMatchObject({ exitCode: 0, stdout: '', stderr: '' })
    const engine = await tenancy(tempDir(), ['__complete', 'bash', '--', 'drop-site', ''])
    expect(engine).toMatchObject({ exitCode: 0, stdout: 'words', stderr: '' })

    // A bench whose registry is not there yet: none made by completing.
    const fresh = makeBench({ exampleApps: false })
    rmSync(join(fresh, '.tenancy', 'registry.db'), { force: true })
    const none = await tenancy(fresh, ['completion', '--names', 'sites'])
    expect(none).toMatchObject({ exitCode: 0, stdout: '', stderr: '' })
    expect(existsSync(join(fresh, '.tenancy', 'registry.db'))).toBe(false)

    // A malformed config is no names either, never an error on the operator's prompt.
    setConfig(fresh, (c) => (c.db = 'oops'))
    expect(await tenancy(fresh, ['completion', '--names', 'apps'])).toMatchObject({ exitCode: 0, stdout: '' })
  })

  it('an unknown shell, or none, is exit 2 naming bash, zsh and fish', async () => {
    const ksh = await tenancy(bench, ['completion', 'ksh'])
    expect(ksh.exitCode).toBe(2)
    expect(ksh.stderr).toMatch(/bash, zsh, fish/)
    const none = await tenancy(bench, ['completion'])
    expect(none.exitCode).toBe(2)
    expect(none.stderr).toMatch(/tenancy completion bash\|zsh\|fish/)
  })
})
