import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, utimesSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { describe, expect, it } from 'vitest'
import { execa } from 'execa'
import { enabled, serverUrl } from './backends.js'
import { BIN, makeBench, query, setConfig, spawnTenancy, tenancy } from './helpers.js'

/**
 * Everything a command could have changed: every file's bytes and mode (the registry's files
 * aside), and every registry row. Bad input must leave it exactly as it was.
 */
function snapshot(bench: string): Record<string, string> {
  const out: Record<string, string> = {}
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name)
      const rel = relative(bench, path)
      if (rel.startsWith('.tenancy/registry.db')) continue
      if (entry.isDirectory()) {
        out[`${rel}/`] = 'dir'
        walk(path)
      } else {
        const bytes = readFileSync(path)
        out[rel] = `${(statSync(path).mode & 0o777).toString(8)} ${createHash('sha256').update(bytes).digest('hex')}`
      }
    }
  }
  walk(bench)
  const registry = join(bench, '.tenancy', 'registry.db')
  if (!existsSync(registry)) return out
  for (const table of ['sites', 'tenants', 'steps', 'jobs', 'error_log', 'meta']) {
    out[`registry:${table}`] = JSON.stringify(query(registry, `SELECT * FROM ${table} ORDER BY 1`))
  }
  return out
}

/** A bench with one site and one tenant, so every command has something it could damage. */
async function populatedBench(): Promise<string> {
  const bench = makeBench()
  expect((await tenancy(bench, ['new-site', 's.localhost'])).exitCode).toBe(0)
  expect((await tenancy(bench, ['tenant', 'create', 'acme', '--no-pool'])).exitCode).toBe(0)
  return bench
}

interface BadCase {
  args: string[]
  /** What the one error line must say. */
  says: RegExp
  input?: string
  exit?: number
  env?: Record<string, string>
}

const CASES: BadCase[] = [
  // Keys tenancy manages, at any depth: they hold the site's database credentials.
  {
    args: ['set-config', 'db_password.rotated', 'true', '--site', 's.localhost'],
    says: /"db_password\.rotated" is managed by tenancy/,
  },
  { args: ['set-config', 'db_name.x', '1', '--site', 's.localhost'], says: /"db_name\.x" is managed by tenancy/ },
  { args: ['set-config', 'db_file.x', '1', '--site', 's.localhost'], says: /"db_file\.x" is managed by tenancy/ },
  { args: ['set-config', 'db_password', 'x', '--site', 's.localhost'], says: /"db_password" is managed by tenancy/ },
  // Keys JavaScript would route to a prototype instead of storing.
  {
    args: ['set-config', '__proto__', '1', '--site', 's.localhost'],
    says: /invalid config key "__proto__": "__proto__" cannot be used/,
  },
  { args: ['set-config', 'constructor.prototype.x', '1', '-g'], says: /"constructor" cannot be used as a key/ },
  { args: ['set-config', 'a.prototype', '1', '--site', 's.localhost'], says: /"prototype" cannot be used as a key/ },
  { args: ['tenant', 'create', 'x', '--data', '__proto__=1'], says: /invalid --data key "__proto__"/ },
  { args: ['tenant', 'create', 'x', '--data', 'constructor=1'], says: /invalid --data key "constructor"/ },
  // A global config the pipeline would then reject.
  {
    args: ['set-config', '-g', 'provision.steps', '["activate"]', '-p'],
    says: /cannot set "provision\.steps".*must start with "create-site"/,
  },
  {
    args: ['set-config', '-g', 'provision.steps', '["create-site", "nosuch", "activate"]', '-p'],
    says: /unknown step "nosuch"/,
  },
  {
    args: ['set-config', '-g', 'provision.steps', '["create-site", "activate", "activate"]', '-p'],
    says: /"activate" is listed twice/,
  },
  {
    args: ['set-config', '-g', 'provision.steps', '["create-site", "api-keys", "activate"]'],
    says: /"api-keys" needs "api-user" before it/,
  },
  {
    args: ['set-config', '-g', 'provision.apps', '["nosuch"]', '-p'],
    says: /cannot set "provision\.apps".*app "nosuch" is not in/,
  },
  {
    args: ['set-config', '-g', 'provision.api_user', 'bad{site}'],
    says: /provision\.api_user "bad\{site\}" does not make an email address/,
  },
  { args: ['set-config', '-g', 'db.type', 'oracle'], says: /cannot set "db\.type"/ },
  { args: ['set-config', '-g', 'pending.count', 'many'], says: /cannot set "pending\.count"/ },
  // An empty --site (a shell variable unset): refused, never "no --site".
  { args: ['list-apps', '--site', ''], says: /invalid --site "": give a site name/ },
  { args: ['drop-site', '--site', '', '--yes'], says: /invalid --site "": give a site name/ },
  { args: ['backup', '--site', ''], says: /invalid --site "": give a site name/ },
  // An empty --backup-path: not the bench's own directory.
  {
    args: ['backup', '--site', 's.localhost', '--backup-path', ''],
    says: /invalid --backup-path "": give a directory/,
  },
  { args: ['list-backups', '--backup-path', ' '], says: /invalid --backup-path " ": give a directory/ },
  // A tenant name no tenant has, in the error log's filter.
  { args: ['errors', '--tenant', 'nosuch'], says: /tenant "nosuch" does not exist/ },
  // A machine name sites would be recorded under: refused before a tenant is recorded.
  { args: ['set-config', '-g', 'host', 'a/b'], says: /cannot set "host".*a machine name such as "web-1"/ },
  { args: ['tenant', 'create', 'hz', '--no-pool'], env: { TENANCY_HOST: 'a/b' }, says: /invalid TENANCY_HOST "a\/b"/ },
  { args: ['tenant', 'create', 'hz'], env: { TENANCY_HOST: ' ' }, says: /invalid TENANCY_HOST " "/ },
  // Unbounded stdin.
  {
    args: ['verify-key', 'k', '--site', 's.localhost'],
    input: 'x'.repeat(5000),
    says: /verify-key read more than 4096 bytes from stdin/,
  },
  // --site where a command takes none.
  { args: ['--site', 'nope', 'tenant', 'list'], says: /"tenant list" takes no --site/ },
  { args: ['doctor', '--site', 's.localhost'], says: /"doctor" takes no --site/ },
  { args: ['--site', 's.localhost', 'pending-create'], says: /"pending-create" takes no --site/ },
  { args: ['--site', 's.localhost', 'list-sites'], says: /"list-sites" takes no --site/ },
  // Paths that lead nowhere, JSON that does not parse.
  {
    args: ['--config', '/nonexistent/tenancy.config.json', 'list-sites'],
    says: /config file "\/nonexistent\/tenancy\.config\.json" \(from --config\) does not exist/,
  },
  {
    args: ['new-site', 'n.localhost', '--admin-password-file', '/nonexistent/pw'],
    says: /cannot read admin password from --admin-password-file "\/nonexistent\/pw": no such file; check the path/,
  },
  {
    args: ['set-config', 'limits', '{oops', '-p', '--site', 's.localhost'],
    says: /malformed JSON in the value given to --parse at line 1, column 2/,
  },
  { args: ['set-config', '-g', 'provision.steps', '[', '-p'], says: /malformed JSON in the value given to --parse/ },
  // Names that would reach SQL or the filesystem.
  { args: ['new-site', '../etc'], says: /invalid site name "\.\.\/etc"/ },
  { args: ['install-app', 'x/../y', '--site', 's.localhost'], says: /invalid app name "x\/\.\.\/y"/ },
  { args: ['new-site', 'n.localhost', '--db-name', 'x;drop'], says: /invalid database name "x;drop"/ },
  { args: ['tenant', 'create', 'Acme'], says: /invalid tenant name "Acme"/ },
  // An empty --config (an unset variable) must not fall back to walking up to some other bench.
  { args: ['--config', '', 'list-sites'], says: /invalid --config "": give the path of tenancy\.config\.json/ },
  // --site-url must be an absolute http(s) URL whose host is a site name.
  {
    args: ['tenant', 'create', 'y', '--site-url', 'notaurl'],
    says: /invalid --site-url "notaurl": it must be an absolute http:\/\/ or https:\/\/ URL/,
  },
  {
    args: ['tenant', 'create', 'y', '--site-url', 'ftp://y.example.com'],
    says: /invalid --site-url "ftp:\/\/y\.example\.com"/,
  },
  {
    args: ['tenant', 'create', 'y', '--site-url', 'https://'],
    says: /invalid --site-url "https:\/\/": it is not a valid URL/,
  },
  {
    args: ['tenant', 'create', 'y', '--site-url', 'https://bad_host.com'],
    says: /its host "bad_host\.com" is not a valid site name/,
  },
  {
    args: ['tenant', 'create', 'y', '--site-url', 'https://u:hunter2@y.example.com'],
    says: /must not carry a user name or password/,
  },
]

describe('bad input is refused before anything changes', () => {
  it('each case: its exit code, one line naming the thing, the bench unchanged', async () => {
    const bench = await populatedBench()
    const before = snapshot(bench)
    // Four at a time (the machine's cores are shared), the bench compared after each four.
    for (let i = 0; i < CASES.length; i += 4) {
      const batch = CASES.slice(i, i + 4)
      const results = await Promise.all(
        batch.map((c) => tenancy(bench, c.args, { ...(c.input === undefined ? {} : { input: c.input }), env: c.env })),
      )
      batch.forEach((c, j) => {
        const r = results[j]!
        const label = c.args.join(' ').slice(0, 80)
        expect(r.exitCode, label).toBe(c.exit ?? 2)
        expect(r.stderr.trim().split('\n'), label).toHaveLength(1)
        expect(r.stderr, label).toMatch(/^error: /)
        expect(r.stderr, label).toMatch(c.says)
        expect(r.stderr, label).not.toMatch(/hunter2/)
      })
      expect(snapshot(bench), batch.map((c) => c.args.join(' ').slice(0, 80)).join(' | ')).toEqual(before)
    }
  })

  it('a config that is null (not an object) is a usage error, not defaults', async () => {
    const bench = makeBench()
    writeFileSync(join(bench, 'tenancy.config.json'), 'null\n')
    const before = snapshot(bench)
    const r = await tenancy(bench, ['list-sites'])
    expect(r.exitCode).toBe(2)
    expect(r.stderr).toMatch(/tenancy\.config\.json must hold a JSON object/)
    expect(snapshot(bench)).toEqual(before)
  })
})

describe('a registry URL naming a database that does not exist', () => {
  it.skipIf(!enabled('postgres'))(
    'says so (exit 2), also next to sites, instead of offering to adopt them',
    async () => {
      const bench = await populatedBench()
      const before = snapshot(bench)
      const url = new URL(serverUrl('postgres'))
      url.pathname = '/tenancy_no_such_database'
      const r = await tenancy(bench, ['list-sites'], { env: { TENANCY_REGISTRY_URL: url.toString() } })
      expect(r.exitCode).toBe(2)
      expect(r.stderr).toMatch(/database "tenancy_no_such_database" does not exist; create the database first/)
      expect(r.stderr).not.toMatch(/doctor --adopt/)
      expect(snapshot(bench)).toEqual(before)
    },
  )
})

describe('set-config coerces as bench does', () => {
  it('only "1"/"0" become numbers on a site; -p stores any number; typed bench keys take integers', async () => {
    const bench = makeBench()
    await tenancy(bench, ['new-site', 's.localhost'])
    await tenancy(bench, ['set-config', 'answer', '42', '--site', 's.localhost'])
    await tenancy(bench, ['set-config', 'flag', '1', '--site', 's.localhost'])
    await tenancy(bench, ['set-config', 'exact', '42', '-p', '--site', 's.localhost'])
    const site = JSON.parse(readFileSync(join(bench, 'sites', 's.localhost', 'site_config.json'), 'utf8'))
    expect(site).toMatchObject({ answer: '42', flag: 1, exact: 42 })
    // pending.count must be a number, so "3" is read as the number bench's users mean.
    expect((await tenancy(bench, ['set-config', '-g', 'pending.count', '3'])).exitCode).toBe(0)
    expect((await tenancy(bench, ['set-config', '-g', 'custom_key', '42'])).exitCode).toBe(0)
    // Likewise a typed key's JSON or boolean reading.
    expect((await tenancy(bench, ['set-config', '-g', 'provision.retry_delay', '1.5'])).exitCode).toBe(0)
    expect((await tenancy(bench, ['set-config', '-g', 'provision.developer_mode', '0'])).exitCode).toBe(0)
    expect((await tenancy(bench, ['set-config', '-g', 'pending.attributes', '{"plan": "trial"}'])).exitCode).toBe(0)
    const config = JSON.parse(readFileSync(join(bench, 'tenancy.config.json'), 'utf8'))
    expect(config.provision).toMatchObject({ retry_delay: 1.5, developer_mode: false })
    expect(config.pending.attributes).toEqual({ plan: 'trial' })
    expect(config.pending.count).toBe(3)
    expect(config.custom_key).toBe('42')
  })
})

describe('bench password flags', () => {
  it('--admin-password works with a warning and reaches no child: not its argv, not its environment', async () => {
    const bench = makeBench()
    // An app whose after_install hook records what a child of tenancy can see.
    const app = join(bench, 'apps', 'spy')
    mkdirSync(join(app, 'migrations'), { recursive: true })
    writeFileSync(join(app, 'migrations', '0001_init.sql'), 'CREATE TABLE spy_seen (id INTEGER PRIMARY KEY);\n')
    writeFileSync(
      join(app, 'app.json'),
      JSON.stringify({
        name: 'spy',
        version: '1.0.0',
        hooks: {
          after_install: `node -e "require('fs').writeFileSync('seen.json', JSON.stringify({argv: process.argv, env: process.env}))"`,
        },
      }),
    )
    const secret = 'Sup3r-Secret-Admin-pw'
    const r = await tenancy(bench, [
      'new-site',
      'p.localhost',
      '--admin-password',
      secret,
      '--install-app',
      'spy',
      '--json',
    ])
    expect(r.exitCode).toBe(0)
    expect(r.stderr).toMatch(
      /warning: --admin-password puts a password on the command line, where other users of this machine can read it; use --admin-password-file or TENANCY_ADMIN_PASSWORD instead/,
    )
    // Given, not generated: never printed back.
    expect(r.json.admin_password).toBeUndefined()
    expect(r.stdout + r.stderr).not.toContain(secret)
    const seen = readFileSync(join(app, 'seen.json'), 'utf8')
    expect(seen).toContain('p.localhost')
    expect(seen).not.toContain(secret)
  })

  it('drop-site, tenant delete and pending-clear take --db-root-password-file and --db-root-password', async () => {
    const bench = makeBench()
    for (const args of [
      ['drop-site', '--help'],
      ['tenant', 'delete', '--help'],
      ['pending-clear', '--help'],
      ['new-site', '--help'],
    ]) {
      const help = await tenancy(bench, args)
      expect(help.stdout, args.join(' ')).toContain('--db-root-password-file <file>')
      expect(help.stdout, args.join(' ')).toContain('--db-root-password <password>')
    }
    // The alias is accepted, and warned about like the flag itself.
    await tenancy(bench, ['new-site', 'q.localhost'])
    const r = await tenancy(bench, ['drop-site', 'q.localhost', '--yes', '--mariadb-root-password', 'pw-in-argv'])
    expect(r.exitCode).toBe(0)
    expect(r.stderr).toMatch(/warning: --mariadb-root-password puts a password on the command line/)
    expect(r.stderr).not.toContain('pw-in-argv')
  })

  it('a server site with no root password names the flags among the places looked', async () => {
    const bench = makeBench()
    setConfig(bench, (c) => {
      c.db = { type: 'mariadb', host: '127.0.0.1', port: 1 }
    })
    const r = await tenancy(bench, ['new-site', 'm.localhost'])
    expect(r.exitCode).toBe(2)
    expect(r.stderr).toMatch(
      /missing MariaDB root password: looked in --db-root-password-file FILE, the TENANCY_DB_ROOT_PASSWORD environment variable/,
    )
  })
})

describe('the root password prompt', () => {
  it.skipIf(!enabled('mariadb'))(
    "takes an empty answer as MariaDB root's empty password, on a real terminal",
    async () => {
      const bench = makeBench({ exampleApps: false })
      const url = new URL(serverUrl('mariadb')!)
      setConfig(bench, (c) => {
        c.db = { type: 'mariadb', host: url.hostname, port: Number(url.port || 3306) }
      })
      // `script` gives the command a real terminal; Enter at the prompt is an empty password.
      const r = await execa('script', ['-qec', `${process.execPath} ${BIN} new-site pr.localhost`, '/dev/null'], {
        cwd: bench,
        input: '\r',
        reject: false,
        env: { NO_COLOR: '1', TENANCY_ADMIN_PASSWORD: 'pw-for-admin', PATH: process.env.PATH ?? '' },
        timeout: 60_000,
      })
      expect(r.stdout).toMatch(/mariadb root password \(leave empty if it has none\)/i)
      expect(r.stdout).not.toMatch(/error:/)
      expect(r.exitCode, r.stdout).toBe(0)
      const dropped = await tenancy(bench, ['drop-site', 'pr.localhost', '--yes', '--no-backup'], {
        env: { TENANCY_DB_ROOT_PASSWORD: '' },
      })
      expect(dropped.exitCode, dropped.stderr).toBe(0)
    },
  )
})

describe('messages that say what is true', () => {
  it('answering "no" at a confirmation says "Cancelled; nothing changed." (no tick, no error) and changes nothing', async () => {
    const bench = makeBench()
    await tenancy(bench, ['new-site', 'keep.localhost'])
    const before = snapshot(bench)
    // `script` gives the command a real terminal, as an operator's would be.
    const r = await execa('script', ['-qec', `${process.execPath} ${BIN} drop-site keep.localhost`, '/dev/null'], {
      cwd: bench,
      input: 'n\n',
      reject: false,
      env: { NO_COLOR: '1' },
    })
    expect(r.exitCode).toBe(1)
    expect(r.stdout).toMatch(/Drop site keep\.localhost and its database\? \[y\/N\]/)
    expect(r.stdout).toMatch(/Cancelled; nothing changed\./)
    expect(r.stdout).not.toMatch(/✔|error:/)
    expect(snapshot(bench)).toEqual(before)
  })

  it('doctor says when it leaves a young stray directory alone, and judges it once it is old', async () => {
    const bench = makeBench()
    await tenancy(bench, ['new-site', 'real.localhost'])
    const stray = join(bench, 'sites', 'junk')
    mkdirSync(stray)
    const young = await tenancy(bench, ['doctor', '--fix'])
    expect(young.exitCode).toBe(0)
    expect(young.stderr).toMatch(
      /directory .*sites\/junk is \d+ s old, too young to judge \(a site may be on its way in\): left alone/,
    )
    expect(existsSync(stray)).toBe(true)
    const json = await tenancy(bench, ['doctor', '--json'])
    expect(json.json.too_young).toEqual([{ directory: stray, age_s: expect.any(Number) }])
    const old = new Date(Date.now() - 120_000)
    utimesSync(stray, old, old)
    // Every finding has the README's whole shape, fixed or not.
    const looked = await tenancy(bench, ['doctor', '--json'])
    expect(Object.keys(looked.json.findings[0]).sort()).toEqual([
      'fix',
      'fix_error',
      'fixed',
      'kind',
      'problem',
      'subject',
    ])
    expect(looked.json.findings[0]).toMatchObject({ kind: 'stray_directory', fixed: false, fix_error: null })
    const human = await tenancy(bench, ['doctor'])
    expect(human.stdout + human.stderr).toMatch(/--fix would /)
    const later = await tenancy(bench, ['doctor', '--fix', '--json'])
    expect(later.json.too_young).toEqual([])
    expect(later.json.findings).toMatchObject([
      { kind: 'stray_directory', subject: 'junk', fixed: true, fix_error: null },
    ])
    expect(existsSync(stray)).toBe(false)
  })

  it('"tenancy help tenant create" prints the command\'s help, not the group\'s', async () => {
    const bench = makeBench()
    const r = await tenancy(bench, ['help', 'tenant', 'create'])
    expect(r.exitCode).toBe(0)
    expect(r.stdout).toMatch(/^Usage: tenancy tenant create/)
  })

  it('Ctrl-C during migrate: the sites not started are "interrupted", not skipped, and the exit code is 130', async () => {
    const bench = makeBench()
    for (let i = 1; i <= 5; i++)
      expect((await tenancy(bench, ['new-site', `m${i}.localhost`, '--install-app', 'shared_lib'])).exitCode).toBe(0)
    // A new migration that takes a while on every site.
    writeFileSync(
      join(bench, 'apps', 'shared_lib', 'migrations', '0099_slow.mjs'),
      'export async function up(db) { const until = Date.now() + 700; while (Date.now() < until); await db.schema.createTable("slow_marker").addColumn("id", "integer").execute() }\n',
    )
    const child = spawnTenancy(bench, ['migrate', '--concurrency', '1', '--json'])
    // Wait until the first site has been taken up, then interrupt.
    await new Promise((resolve) => setTimeout(resolve, 1200))
    child.kill('SIGINT')
    const r = await child
    expect(r.exitCode).toBe(130)
    const json = JSON.parse(String(r.stdout))
    expect(json.interrupted).toBe(true)
    const statuses = json.sites.map((s: any) => s.status)
    expect(statuses).toContain('interrupted')
    expect(statuses).not.toContain('skipped')
    expect(statuses).not.toContain('failed')
    for (const s of json.sites.filter((x: any) => x.status === 'interrupted'))
      expect(s.error).toBe('not started: migrate was interrupted')
    // Finishing the job later: every site ends migrated or up to date.
    const again = await tenancy(bench, ['migrate', '--json'])
    expect(again.exitCode).toBe(0)
    expect(again.json.failed).toBe(0)
  })
})
