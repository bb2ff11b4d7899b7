import { execa } from 'execa'
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { findConfigFile } from '../src/bench.js'
import { maskSecrets, resolveConfig } from '../src/config/config.js'
import { coerceConfigValue } from '../src/sites/config-commands.js'
import { TenancyError } from '../src/errors.js'
import { jsonErrorOffset, parseJson, writeJsonAtomic } from '../src/util/json-file.js'
import { BIN, makeBench, setConfig, tempDir, tenancy } from './helpers.js'

function usage(fn: () => unknown): string {
  try {
    fn()
  } catch (error) {
    expect((error as TenancyError).exitCode).toBe(2)
    return (error as Error).message
  }
  throw new Error('expected a usage error')
}

describe('config', () => {
  it('fills every default', () => {
    const config = resolveConfig({}, 'tenancy.config.json', {})
    expect(config.sites_path).toBe('sites')
    expect(config.registry).toBe('sqlite:.tenancy/registry.db')
    expect(config.db.type).toBe('sqlite')
    expect(config.provision.apps).toEqual(['shared_lib', 'tenant_ops'])
    expect(config.provision.api_user).toBe('api@{site}')
    expect(config.provision.max_attempts).toBe(5)
    expect(config.pending).toEqual({ count: 5, include_in_queries: false })
    expect(config.migrate.concurrency).toBeGreaterThan(0)
    expect(config.auto_provision_tenant_sites).toBe(true)
  })

  it('names the key and the expected type of a wrong value', () => {
    expect(usage(() => resolveConfig({ db: { type: 'oracle' } }, 'x.json', {}))).toMatch(
      /x\.json: "db\.type" must be one of .*"sqlite".*\(got "oracle"\)/,
    )
    expect(usage(() => resolveConfig({ pending: { count: -1 } }, 'x.json', {}))).toMatch(
      /"pending\.count" must be a whole number/,
    )
    expect(usage(() => resolveConfig({ provision: { apps: 'x' } }, 'x.json', {}))).toMatch(
      /"provision\.apps" must be a list of strings/,
    )
    expect(usage(() => resolveConfig({ db: 'sqlite' }, 'x.json', {}))).toMatch(/"db" must be an object/)
    expect(usage(() => resolveConfig([], 'x.json', {}))).toMatch(/must hold a JSON object/)
    // A registry URL's password never reaches the message, even one with "@" in it.
    const bad = usage(() => resolveConfig({ registry: 'mysql://u:S3cret@pw@db.internal/reg' }, 'x.json', {}))
    expect(bad).toMatch(/"registry" must be .*\(got "mysql:\/\/u:\*\*\*@db\.internal\/reg"\)/)
    expect(bad).not.toMatch(/S3cret|pw@/)
    const fromEnv = usage(() => resolveConfig({}, 'x.json', { TENANCY_REGISTRY_URL: 'mysql://u:S3cret@db/reg' }))
    expect(fromEnv).toMatch(/TENANCY_REGISTRY_URL must be/)
    expect(fromEnv).not.toMatch(/S3cret/)
    expect(usage(() => resolveConfig({ provision: { steps: [{ run: 'x', timeout: 0 }] } }, 'x.json', {}))).toMatch(
      /timeout/,
    )
  })

  it('reads mysql as mariadb and applies environment overrides', () => {
    expect(resolveConfig({ db: { type: 'mysql' } }, 'x', {}).db.type).toBe('mariadb')
    const config = resolveConfig({}, 'x', { TENANCY_PENDING_COUNT: '9', TENANCY_REGISTRY_URL: 'sqlite:/tmp/r.db' })
    expect(config.pending.count).toBe(9)
    expect(config.registry).toBe('sqlite:/tmp/r.db')
    expect(usage(() => resolveConfig({}, 'x', { TENANCY_PENDING_COUNT: 'many' }))).toMatch(
      /TENANCY_PENDING_COUNT must be a whole number/,
    )
  })

  it('reports malformed JSON with file, line and column', () => {
    expect(usage(() => parseJson('{\n  "a": 1,\n  "b": }\n', 'bench.json'))).toMatch(
      /malformed JSON in bench\.json at line 3, column 8/,
    )
    expect(usage(() => parseJson('{"a": 1', 'c.json'))).toMatch(/c\.json at line 1, column 8: the text ends/)
    expect(usage(() => parseJson('{\n  "db": {"type": "sqlite",}\n}', 'd.json'))).toMatch(
      /line 2, column 27: unexpected "}"/,
    )
  })

  it('finds the error offset exactly where JSON.parse fails, on mutated inputs', () => {
    const valid = JSON.stringify({ a: [1, -2.5e3, true, null, 'x\\"\\u00e9'], b: { c: 'd' }, e: [] }, null, 2)
    let seed = 42
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31
    for (let n = 0; n < 2000; n++) {
      const at = Math.floor(random() * valid.length)
      const ch = '{}[],:"01-eE. \ntrufalsn\\'[Math.floor(random() * 22)]!
      const text = random() < 0.5 ? valid.slice(0, at) + ch + valid.slice(at) : valid.slice(0, at) + valid.slice(at + 1)
      let ok = true
      try {
        JSON.parse(text)
      } catch {
        ok = false
      }
      expect(jsonErrorOffset(text) === -1, text).toBe(ok)
    }
  })

  it('coerces set-config values as bench does', () => {
    expect(coerceConfigValue('1', false)).toBe(1)
    expect(coerceConfigValue('0', false)).toBe(0)
    expect(coerceConfigValue('true', false)).toBe(true)
    expect(coerceConfigValue('false', false)).toBe(false)
    expect(coerceConfigValue('hello', false)).toBe('hello')
    expect(coerceConfigValue('1.5', false)).toBe('1.5')
    expect(coerceConfigValue('{"a":[1,2]}', true)).toEqual({ a: [1, 2] })
    expect(usage(() => coerceConfigValue('{oops', true))).toMatch(/malformed JSON/)
  })

  it('masks secrets at any depth', () => {
    expect(
      maskSecrets({
        db_password: 'p',
        nested: { api_secret: 's', name: 'n' },
        provision_admin_password: 'x',
        registry: 'postgres://u:pw@h/db',
      }),
    ).toEqual({
      db_password: '********',
      nested: { api_secret: '********', name: 'n' },
      provision_admin_password: '********',
      registry: 'postgres://u:********@h/db',
    })
  })

  it('finds the bench upward, from --config, or from TENANCY_CONFIG, and explains when there is none', () => {
    const root = tempDir()
    writeFileSync(join(root, 'tenancy.config.json'), '{}')
    mkdirSync(join(root, 'a', 'b'), { recursive: true })
    expect(findConfigFile({ cwd: join(root, 'a', 'b'), env: {} })).toBe(join(root, 'tenancy.config.json'))
    const elsewhere = tempDir()
    expect(findConfigFile({ cwd: elsewhere, config: join(root, 'tenancy.config.json'), env: {} })).toBe(
      join(root, 'tenancy.config.json'),
    )
    expect(findConfigFile({ cwd: elsewhere, env: { TENANCY_CONFIG: root } })).toBe(join(root, 'tenancy.config.json'))
    expect(usage(() => findConfigFile({ cwd: elsewhere, env: {} }))).toMatch(
      /no tenancy\.config\.json found .* run "tenancy init"/,
    )
    expect(usage(() => findConfigFile({ cwd: elsewhere, config: 'nope.json', env: {} }))).toMatch(/does not exist/)
  })

  it('writes JSON atomically with the requested mode', () => {
    const dir = tempDir()
    const file = join(dir, 'site_config.json')
    writeJsonAtomic(file, { a: 1 }, 0o600)
    writeJsonAtomic(file, { a: 2 }, 0o600)
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({ a: 2 })
    expect(statSync(file).mode & 0o777).toBe(0o600)
  })
})

describe('show-config', () => {
  const DEFAULT_STEPS = ['create-site', 'developer-mode', 'install-apps', 'api-user', 'api-keys', 'activate']

  it('shows every default filled in (db.host, db.port, provision.steps, host), keeping the JSON keys', async () => {
    const bench = makeBench()
    const r = await tenancy(bench, ['show-config', '--json'], { env: { TENANCY_HOST: 'web-1' } })
    expect(r.exitCode, r.stderr).toBe(0)
    expect(r.json).toMatchObject({
      sites_path: 'sites',
      apps_path: 'apps',
      registry: 'sqlite:.tenancy/registry.db',
      // SQLite databases are files in the site directory: no server to name.
      db: { type: 'sqlite', host: null, port: null, root_user: null },
      default_site_domain: 'localhost',
      auto_provision_tenant_sites: true,
      provision: {
        apps: ['shared_lib', 'tenant_ops'],
        api_user: 'api@{site}',
        developer_mode: true,
        steps: DEFAULT_STEPS,
        max_attempts: 5,
        step_timeout: 300,
        retry_delay: 2,
      },
      pending: { count: 5, include_in_queries: false },
      backups: { path: 'backups', encrypt: false },
      run: { timeout: 3600 },
      host: 'web-1',
    })
    expect(r.json.migrate.concurrency).toBeGreaterThan(0)

    // A server kind: the host, port and admin user new databases go to, unless the config says.
    setConfig(bench, (c) => (c.db = { type: 'mariadb' }))
    expect((await tenancy(bench, ['show-config', '--json'])).json.db).toEqual({
      type: 'mariadb',
      host: '127.0.0.1',
      port: 3306,
      root_user: 'root',
    })
    setConfig(bench, (c) => (c.db = { type: 'postgres', host: 'db.internal', port: 6432 }))
    expect((await tenancy(bench, ['show-config', '--json'])).json.db).toEqual({
      type: 'postgres',
      host: 'db.internal',
      port: 6432,
      root_user: 'postgres',
    })
    // A pipeline of the config's own is shown as it is.
    setConfig(bench, (c) => (c.provision.steps = ['create-site', { run: 'echo hi', timeout: 5 }, 'activate']))
    expect((await tenancy(bench, ['show-config', '--json'])).json.provision.steps).toEqual([
      'create-site',
      { run: 'echo hi', timeout: 5 },
      'activate',
    ])
  })

  it('prints readable `key = value` lines, piped and on a terminal, secrets masked; --site adds the site keys', async () => {
    const bench = makeBench()
    setConfig(bench, (c) => {
      c.provision_mariadb_root_password = 'root-pw-in-config'
      c.registry = 'postgres://tenancy:reg-pw@127.0.0.1/registry'
    })
    const piped = await tenancy(bench, ['show-config'], { env: { TENANCY_REGISTRY_URL: '' } })
    expect(piped.exitCode, piped.stderr).toBe(0)
    const lines = piped.stdout.split('\n')
    for (const line of lines) expect(line).toMatch(/^[a-z_]+(\.[a-z_]+)* = \S/)
    expect(lines).toEqual(
      expect.arrayContaining([
        'sites_path = sites',
        'db.type = sqlite',
        'db.host = none',
        'db.port = none',
        'provision.apps = shared_lib, tenant_ops',
        `provision.steps = ${DEFAULT_STEPS.join(', ')}`,
        'provision.step_timeout = 300',
        'pending.count = 5',
        'auto_provision_tenant_sites = true',
        'registry = postgres://tenancy:********@127.0.0.1/registry',
        'provision_mariadb_root_password = ********',
      ]),
    )
    expect(piped.stdout).not.toMatch(/root-pw-in-config|reg-pw/)

    // A terminal (script gives the command one) sees the same lines, no escapes.
    const tty = await execa('script', ['-qec', `${process.execPath} ${BIN} show-config`, '/dev/null'], {
      cwd: bench,
      reject: false,
      env: { NO_COLOR: '1', PATH: process.env.PATH ?? '' },
      extendEnv: false,
    })
    expect(tty.stdout.replace(/\r/g, '').split('\n')).toEqual(lines)

    setConfig(bench, (c) => (c.registry = 'sqlite:.tenancy/registry.db'))
    expect((await tenancy(bench, ['new-site', 'a.localhost'])).exitCode).toBe(0)
    const site = await tenancy(bench, ['show-config', '--site', 'a.localhost'])
    expect(site.stdout).toMatch(/^db_type = sqlite$/m)
    expect(site.stdout).toMatch(/^db_name = \S+$/m)
    expect(site.stdout).toMatch(/^sites_path = sites$/m)
  })
})
