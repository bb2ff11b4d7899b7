// Server benchmarks (issue 6), each side by side with a plain pg / mysql2 script in the same run:
//   - new-site with both sample apps on PostgreSQL and on MariaDB, in-process, against a plain
//     script doing CREATE USER/ROLE, CREATE DATABASE, the grants, and the same DDL and rows
//     (taken from a site tenancy made, with pg_dump / mariadb-dump);
//   - migrate over N server sites with one new migration (process), against a plain loop
//     that connects as each site's user and runs the DDL and the ledger insert in a transaction.
// Servers: TENANCY_TEST_POSTGRES_URL / TENANCY_TEST_MARIADB_URL, else the local defaults.
//
//   node bench/servers.mjs [--quick]
import { execFileSync, spawnSync } from 'node:child_process'
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import pg from 'pg'
import mysql from 'mysql2/promise'
import {
  BIN,
  SERVERS,
  admin,
  dropRaw,
  envFor,
  lib,
  median,
  reachable,
  reporter,
  serverBench,
  writeResults,
} from './common.mjs'

const quick = process.argv.includes('--quick')
const ROUNDS = quick ? 3 : 5
const SITES = 50

const { results, line: report } = reporter()

/** The DDL and rows of a site tenancy made, as one script (what the plain side replays). */
function dumpSite(kind, cfg) {
  const url = SERVERS[kind]
  if (kind === 'postgres') {
    return execFileSync(
      'pg_dump',
      [
        '--no-owner',
        '--no-privileges',
        '--inserts',
        '-h',
        url.hostname,
        '-p',
        url.port || '5432',
        '-U',
        cfg.db_user,
        cfg.db_name,
      ],
      {
        env: { ...process.env, PGPASSWORD: cfg.db_password },
      },
    )
      .toString()
      .split('\n')
      .filter((l) => !/^(SET|SELECT pg_catalog\.set_config|--|\\)/.test(l))
      .join('\n')
  }
  return execFileSync(
    'mariadb-dump',
    [
      '--skip-comments',
      '--skip-add-locks',
      '--skip-lock-tables',
      '--skip-dump-date',
      '--compact',
      '-h',
      url.hostname,
      '-P',
      url.port || '3306',
      '-u',
      cfg.db_user,
      cfg.db_name,
    ],
    {
      env: { ...process.env, MYSQL_PWD: cfg.db_password },
    },
  ).toString()
}

/** What new-site does, with a plain client and nothing else: user, database, grants, DDL and rows. */
async function rawNewSite(kind, script) {
  const name = `_${randomBytes(8).toString('hex')}`
  const password = randomBytes(18).toString('base64url')
  const url = SERVERS[kind]
  const a = await admin(kind)
  if (kind === 'postgres') {
    await a.query(`CREATE ROLE "${name}" LOGIN PASSWORD '${password}'`)
    await a.query(`CREATE DATABASE "${name}" OWNER "${name}"`)
    await a.query(`REVOKE ALL ON DATABASE "${name}" FROM PUBLIC`)
    await a.close()
    const site = new pg.Client({
      host: url.hostname,
      port: Number(url.port || 5432),
      user: name,
      password,
      database: name,
    })
    await site.connect()
    await site.query(`BEGIN;\n${script}\nCOMMIT;`)
    await site.end()
  } else {
    await a.query(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`)
    await a.query(`CREATE USER '${name}'@'%' IDENTIFIED BY '${password}'`)
    await a.query(`GRANT ALL PRIVILEGES ON \`${name}\`.* TO '${name}'@'%'`)
    await a.close()
    const site = await mysql.createConnection({
      host: url.hostname,
      port: Number(url.port || 3306),
      user: name,
      password,
      database: name,
      multipleStatements: true,
    })
    await site.query(script)
    await site.end()
  }
  return name
}

/** Drops every site of a bench (its databases and users) and the bench. */
async function dropBench(kind, bench) {
  const sites = join(bench, 'sites')
  const names = []
  for (const site of readdirSync(sites)) {
    try {
      names.push(JSON.parse(readFileSync(join(sites, site, 'site_config.json'), 'utf8')).db_name)
    } catch {}
  }
  await dropRaw(kind, names)
  rmSync(bench, { recursive: true, force: true })
}

console.log(
  `tenancy server benchmarks (${ROUNDS} rounds, medians; ${SITES} sites for migrate; node ${process.version}, ${execFileSync('nproc').toString().trim()} cores)\n`,
)

for (const kind of ['postgres', 'mariadb']) {
  if (!(await reachable(kind))) continue
  const label = kind === 'postgres' ? 'PostgreSQL' : 'MariaDB'

  // new-site with both sample apps, in-process, against the plain script.
  {
    const bench = serverBench(kind)
    const b = await lib.openBench({ cwd: bench, env: envFor(kind) })
    // PostgreSQL: the DDL and rows from pg_dump. MariaDB: the very statements tenancy sent
    // (from the general log), because a dump folds indexes into CREATE TABLE, which InnoDB
    // builds far faster than the apps' separate CREATE INDEX / ALTER TABLE statements.
    const a = kind === 'mariadb' ? await admin(kind) : undefined
    await a?.query("SET GLOBAL log_output = 'TABLE'; TRUNCATE mysql.general_log; SET GLOBAL general_log = 1")
    await lib.newSite(b, { site: 'template.localhost', installApps: ['tenant_ops_nohook'] })
    const templateCfg = lib.readSiteConfig(join(bench, 'sites', 'template.localhost'))
    let script = dumpSite(kind, templateCfg)
    if (a) {
      await a.query('SET GLOBAL general_log = 0')
      const [rows] = await a.query(
        `SELECT CONVERT(argument USING utf8mb4) AS q FROM mysql.general_log WHERE command_type = 'Query' AND thread_id IN (SELECT thread_id FROM mysql.general_log WHERE command_type = 'Connect' AND CONVERT(argument USING utf8mb4) LIKE '${templateCfg.db_user}@%') ORDER BY event_time`,
      )
      script = rows
        .map((r) => r.q.trim())
        .filter((q) => !/^(select|begin|commit)\b/i.test(q))
        .map((q) => (q.endsWith(';') ? q : `${q};`))
        .join('\n')
      await a.close()
    }
    const raws = []
    const ours = []
    const plain = []
    // The sides alternate which goes first, so a checkpoint or a flush falls on both alike.
    const oursOnce = async (i) => {
      const t = performance.now()
      await lib.newSite(b, { site: `s${i}.localhost`, installApps: ['tenant_ops_nohook'] })
      ours.push(performance.now() - t)
    }
    const plainOnce = async () => {
      const t = performance.now()
      raws.push(await rawNewSite(kind, script))
      plain.push(performance.now() - t)
    }
    for (let i = 0; i < ROUNDS * 2; i++) {
      if (i % 2) (await plainOnce(), await oursOnce(i))
      else (await oursOnce(i), await plainOnce())
    }
    report(
      `${label}: new-site shared_lib + tenant_ops (in-process) vs plain script`,
      median(ours),
      median(plain),
      '<= 1.5x',
    )
    const withHook = []
    for (let i = 0; i < Math.min(ROUNDS, 3); i++) {
      const t = performance.now()
      await lib.newSite(b, { site: `h${i}.localhost`, installApps: ['tenant_ops'] })
      withHook.push(performance.now() - t)
    }
    report(
      `${label}:   same with tenant_ops's after_install hook (in-process)`,
      median(withHook),
      median(plain),
      'info',
    )
    const proc = []
    for (let i = 0; i < Math.min(ROUNDS, 3); i++) {
      const t = performance.now()
      const r = spawnSync(
        process.execPath,
        [BIN, 'new-site', `p${i}.localhost`, '--install-app', 'tenant_ops_nohook'],
        { cwd: bench, env: envFor(kind), stdio: ['ignore', 'ignore', 'pipe'] },
      )
      if (r.status !== 0) throw new Error(String(r.stderr))
      proc.push(performance.now() - t)
    }
    report(`${label}:   same as a whole process (tenancy new-site)`, median(proc), median(plain), 'info')
    await b.close()
    await dropRaw(kind, raws)
    await dropBench(kind, bench)
  }

  // migrate over SITES server sites: set up with the plain script (fast), registered as tenancy sites.
  {
    const bench = serverBench(kind)
    const b = await lib.openBench({ cwd: bench, env: envFor(kind) })
    await lib.newSite(b, { site: 'template.localhost', installApps: ['shared_lib'] })
    const templateCfg = lib.readSiteConfig(join(bench, 'sites', 'template.localhost'))
    const script = dumpSite(kind, templateCfg)
    const registry = await b.registry()
    const template = await registry.getSite('template.localhost')
    const sites = []
    for (let i = 0; i < SITES * 2; i++) {
      const name = `_${randomBytes(8).toString('hex')}`
      const password = randomBytes(18).toString('base64url')
      sites.push({ site: `m${i}.localhost`, db_name: name, db_password: password })
    }
    const a = await admin(kind)
    for (const s of sites) {
      if (kind === 'postgres') {
        await a.query(`CREATE ROLE "${s.db_name}" LOGIN PASSWORD '${s.db_password}'`)
        // Not TEMPLATE: the copies' objects would stay owned by the template's role.
        await a.query(`CREATE DATABASE "${s.db_name}" OWNER "${s.db_name}"`)
        const c = new pg.Client({
          host: SERVERS.postgres.hostname,
          port: Number(SERVERS.postgres.port || 5432),
          user: s.db_name,
          password: s.db_password,
          database: s.db_name,
        })
        await c.connect()
        await c.query(script)
        await c.end()
        await a.query(`REVOKE ALL ON DATABASE "${s.db_name}" FROM PUBLIC`)
      } else {
        await a.query(
          `CREATE DATABASE \`${s.db_name}\`; CREATE USER '${s.db_name}'@'%' IDENTIFIED BY '${s.db_password}'; GRANT ALL PRIVILEGES ON \`${s.db_name}\`.* TO '${s.db_name}'@'%'; USE \`${s.db_name}\`; ${script}`,
        )
      }
    }
    await a.close()
    const ours = sites.slice(0, SITES)
    const plainSites = sites.slice(SITES)
    for (const s of ours) {
      const dir = join(bench, 'sites', s.site)
      mkdirSync(dir)
      writeFileSync(
        join(dir, 'site_config.json'),
        JSON.stringify({ ...templateCfg, db_name: s.db_name, db_user: s.db_name, db_password: s.db_password }),
        { mode: 0o600 },
      )
      await registry.db
        .insertInto('sites')
        .values({
          ...template,
          apps: JSON.stringify(template.apps),
          name: s.site,
          db_name: s.db_name,
          db_user: s.db_name,
        })
        .execute()
    }
    await lib.dropSite(b, { site: 'template.localhost', archive: false })
    await b.close()

    const env = envFor(kind)
    const run = () => {
      const t = performance.now()
      const r = spawnSync(process.execPath, [BIN, 'migrate', '--json'], {
        cwd: bench,
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
        maxBuffer: 64 * 1024 * 1024,
      })
      if (r.status !== 0) throw new Error(String(r.stderr))
      return { ms: performance.now() - t, out: JSON.parse(String(r.stdout)) }
    }
    const connectAs = async (s) => {
      const url = SERVERS[kind]
      if (kind === 'postgres') {
        const c = new pg.Client({
          host: url.hostname,
          port: Number(url.port || 5432),
          user: s.db_name,
          password: s.db_password,
          database: s.db_name,
        })
        await c.connect()
        return { query: (q, p) => c.query(q, p), close: () => c.end() }
      }
      const c = await mysql.createConnection({
        host: url.hostname,
        port: Number(url.port || 3306),
        user: s.db_name,
        password: s.db_password,
        database: s.db_name,
        multipleStatements: true,
      })
      return { query: (q, p) => c.query(q, p), close: () => c.end() }
    }
    const ledger =
      kind === 'postgres'
        ? 'INSERT INTO tenancy_migrations (app, name, applied_at) VALUES ($1, $2, $3)'
        : 'INSERT INTO tenancy_migrations (app, name, applied_at) VALUES (?, ?, ?)'
    const ddl =
      'CREATE TABLE bench_invoices (id VARCHAR(32) PRIMARY KEY, customer VARCHAR(64), amount DECIMAL(12,2), issued_at VARCHAR(32));\nCREATE INDEX bench_invoices_customer ON bench_invoices (customer);\n'

    const noop = run()
    const t0 = performance.now()
    for (const s of plainSites) {
      const c = await connectAs(s)
      await c.query('SELECT app, name FROM tenancy_migrations')
      await c.close()
    }
    const rawNoop = performance.now() - t0
    report(
      `${label}: migrate ${SITES} sites, nothing pending (process) vs plain loop`,
      noop.ms,
      rawNoop,
      'info',
      `  ${(SITES / (noop.ms / 1000)).toFixed(0)} sites/s`,
    )

    writeFileSync(join(bench, 'apps', 'shared_lib', 'migrations', '0100_bench_invoices.sql'), ddl)
    const applied = run()
    const migrated = applied.out.sites.filter((s) => s.status === 'migrated').length
    if (migrated !== SITES) throw new Error(`migrate migrated ${migrated} of ${SITES} sites`)
    const t1 = performance.now()
    for (const s of plainSites) {
      const c = await connectAs(s)
      await c.query('BEGIN')
      for (const statement of ddl.split(';\n').filter((x) => x.trim())) await c.query(statement)
      await c.query(ledger, ['shared_lib', '0100_bench_invoices', new Date().toISOString()])
      await c.query('COMMIT')
      await c.close()
    }
    const rawMs = performance.now() - t1
    report(
      `${label}: migrate ${SITES} sites, one new migration (process) vs plain loop`,
      applied.ms,
      rawMs,
      'info',
      `  ${(SITES / (applied.ms / 1000)).toFixed(0)} sites/s vs ${(SITES / (rawMs / 1000)).toFixed(0)}`,
    )
    await dropRaw(
      kind,
      sites.map((s) => s.db_name),
    )
    rmSync(bench, { recursive: true, force: true })
  }
}

writeResults('servers.json', results)
