// Backup and restore on the servers (issue 14), each side by side with the plain tools in one run,
// on one site holding about 50 MB (tenant_ops customers with long notes, inserted by the server):
//   - `tenancy backup --site S` against `pg_dump -Fc` to a file (PostgreSQL) and against
//     `mariadb-dump --single-transaction | gzip > file` (MariaDB), both as the site's user.
//     Target: ≤ 1.2×.
//   - `tenancy restore S SET --yes --no-backup` against the same dump loaded by hand: plain
//     (createdb + pg_restore; MariaDB: mariadb DB < dump.sql into a database made beforehand) and
//     fair (createdb + pg_restore --single-transaction + dropdb of the previous copy; MariaDB:
//     CREATE DATABASE + gunzip | mariadb + DROP DATABASE of the previous copy). Target: ≤ 1.3×.
//     Restore with its backup first (no --no-backup) is reported for information.
// Servers: TENANCY_TEST_POSTGRES_URL / TENANCY_TEST_MARIADB_URL, else the local defaults.
// Writes the `servers` section of bench/results/backup.json.
//
//   node bench/backup-servers.mjs [--quick]
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
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
  run,
  serverBench,
  time,
  writeResults,
} from './common.mjs'

const quick = process.argv.includes('--quick')
const ROUNDS = quick ? 2 : 3
const TARGET_MB = 50
const SITE = 'big.localhost'
const BATCH = 5000
const WORDS = 'invoice project task customer contact billing terms hours note renewal'.split(' ')

const { results, line } = reporter(76)

/**
 * SQL adding customers `from`..`to`, each with notes of 60 words and numbers (text that
 * compresses like real data) and a random part in its id, as bench/backup.mjs makes on SQLite.
 */
function fillSql(kind, from, to) {
  const words = WORDS.map((w) => `'${w}'`).join(', ')
  if (kind === 'postgres')
    return `INSERT INTO customers (id, customer_name, status, notes, created_at, updated_at)
      SELECT 'CUST-' || i || '-' || substr(md5(random()::text), 1, 8), 'Customer ' || i, 'active',
        (SELECT string_agg(w[1 + (i + k) % 10] || ' ' || i * k, ' ' ORDER BY k) FROM generate_series(0, 59) k),
        at, at
      FROM generate_series(${from}, ${to}) i,
        LATERAL (SELECT to_char(timestamp '2023-11-14 22:13:20' + i * interval '1 second',
          'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS at) t,
        (SELECT ARRAY[${words}] AS w) ws`
  return `INSERT INTO customers (id, customer_name, status, notes, created_at, updated_at)
    SELECT concat('CUST-', s.seq, '-', substr(md5(rand()), 1, 8)), concat('Customer ', s.seq), 'active',
      (SELECT group_concat(concat(elt(1 + (s.seq + k.seq) % 10, ${words}), ' ', s.seq * k.seq)
        ORDER BY k.seq SEPARATOR ' ') FROM seq_0_to_59 k),
      date_format(timestamp '2023-11-14 22:13:20' + interval s.seq second, '%Y-%m-%dT%H:%i:%s.000Z'),
      date_format(timestamp '2023-11-14 22:13:20' + interval s.seq second, '%Y-%m-%dT%H:%i:%s.000Z')
    FROM seq_${from}_to_${to} s`
}

/** Bytes of the site database's tables and indexes, as the server counts them. */
async function sizeOf(kind, a) {
  if (kind === 'postgres') {
    const { rows } = await a.query(
      "SELECT sum(pg_total_relation_size(oid))::bigint AS bytes FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'",
    )
    return Number(rows[0].bytes)
  }
  await a.query('ANALYZE TABLE customers')
  const [rows] = await a.query(
    'SELECT sum(data_length + index_length) AS bytes FROM information_schema.tables WHERE table_schema = DATABASE()',
  )
  return Number(rows[0].bytes)
}

/** Fills the site's customers until its tables hold TARGET_MB; returns the size and the rows. */
async function fill(kind, dbName) {
  const a = await admin(kind, dbName)
  try {
    let rows = 0
    while ((await sizeOf(kind, a)) < TARGET_MB * 1e6) {
      await a.query(fillSql(kind, rows + 1, rows + BATCH))
      rows += BATCH
    }
    // The fill's dirty pages written out now, not during the first timed round.
    if (kind === 'postgres') await a.query('CHECKPOINT')
    return { mb: (await sizeOf(kind, a)) / 1e6, rows }
  } finally {
    await a.close()
  }
}

/** A 0600 file in `dir` logging the plain tools in as `user` (pgpass / a [client] options file). */
function loginFile(kind, dir, name, user, password, cfg) {
  const file = join(dir, name)
  if (kind === 'postgres') {
    writeFileSync(file, `*:*:*:${user}:${password}\n`, { mode: 0o600 })
    return {
      args: ['--no-password', `--host=${cfg.host}`, `--port=${cfg.port}`, `--username=${user}`],
      env: { ...process.env, PGPASSFILE: file },
    }
  }
  writeFileSync(file, `[client]\nuser=${user}\npassword="${password}"\nhost=${cfg.host}\nport=${cfg.port}\n`, {
    mode: 0o600,
  })
  return { args: [`--defaults-extra-file=${file}`], env: process.env }
}

/** `args` as one shell word each, for a `bash -c` pipeline. */
const sh = (args) => args.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ')
const bash = (script, env) => run('bash', ['-o', 'pipefail', '-c', script], { env })

/** The sides alternate which goes first each round, so a checkpoint or a flush falls on each alike. */
async function sideBySide(rounds, sides) {
  const times = sides.map(() => [])
  for (let i = 0; i < rounds; i++) {
    const order = sides.map((_, k) => k)
    if (i % 2) order.reverse()
    for (const k of order) times[k].push(await time(sides[k]))
  }
  return times.map(median)
}

console.log(
  `tenancy backup/restore on servers (${ROUNDS} rounds, medians; node ${process.version}, ${execFileSync('nproc').toString().trim()} cores)\n`,
)

for (const kind of ['postgres', 'mariadb']) {
  if (!(await reachable(kind))) continue
  const label = kind === 'postgres' ? 'PostgreSQL' : 'MariaDB'
  const url = SERVERS[kind]
  const server = { host: url.hostname, port: url.port || (kind === 'postgres' ? '5432' : '3306') }
  const env = envFor(kind)
  const bench = serverBench(kind)
  const tenancy = (...args) =>
    run(process.execPath, [BIN, ...args], { cwd: bench, env, stdio: ['ignore', 'pipe', 'pipe'] })
  const raws = []
  let siteMade = false
  try {
    tenancy('new-site', SITE, '--install-app', 'tenant_ops')
    siteMade = true
    const sitePath = join(bench, 'sites', SITE)
    const { mb, rows } = await fill(kind, lib.readSiteConfig(sitePath).db_name)
    const scratch = join(bench, 'raw')
    mkdirSync(scratch, { mode: 0o700 })
    const rootLogin = loginFile(
      kind,
      scratch,
      'admin.login',
      decodeURIComponent(url.username || (kind === 'postgres' ? 'postgres' : 'root')),
      decodeURIComponent(url.password),
      server,
    )
    const backups = join(bench, 'backups')
    const bytesOf = (dir) => readdirSync(dir).reduce((n, f) => n + statSync(join(dir, f)).size, 0)

    // Backup.
    let setBytes = 0
    let rawBytes = 0
    {
      // The site's own login, as tenancy's dump uses (the config is read again: restores change it).
      const cfg = () => lib.readSiteConfig(sitePath)
      const siteLogin = () => loginFile(kind, scratch, 'site.login', cfg().db_user, cfg().db_password, server)
      const inside = []
      const ours = () => {
        rmSync(backups, { recursive: true, force: true })
        const out = tenancy('backup', '--site', SITE, '--json')
        inside.push(JSON.parse(String(out.stdout)).duration_ms)
        const site = join(backups, SITE)
        setBytes = bytesOf(join(site, readdirSync(site)[0]))
      }
      const out = join(scratch, kind === 'postgres' ? 'out.pgdump' : 'out.sql.gz')
      const raw = () => {
        rmSync(out, { force: true })
        const login = siteLogin()
        if (kind === 'postgres')
          run('pg_dump', ['-Fc', ...login.args, `--file=${out}`, `--dbname=${cfg().db_name}`], { env: login.env })
        else
          bash(
            `${sh(['mariadb-dump', ...login.args, '--single-transaction', '--no-tablespaces', cfg().db_name])} | gzip > ${sh([out])}`,
            login.env,
          )
        rawBytes = statSync(out).size
      }
      await sideBySide(1, [ours, raw]) // warm-up
      inside.length = 0
      const [o, r] = await sideBySide(ROUNDS, [ours, raw])
      const what = kind === 'postgres' ? 'pg_dump -Fc > file' : 'mariadb-dump --single-transaction | gzip > file'
      const figure = line(
        `${label}: backup --site, ${mb.toFixed(0)} MB (${rows} rows; process) vs ${what}`,
        o,
        r,
        '<= 1.2x',
        `  (${(setBytes / 1e6).toFixed(1)} MB vs ${(rawBytes / 1e6).toFixed(1)} MB; in-process ${median(inside)} ms)`,
      )
      Object.assign(figure, {
        ours_inside_ms: median(inside),
        database_mb: +mb.toFixed(1),
        set_mb: +(setBytes / 1e6).toFixed(1),
        raw_mb: +(rawBytes / 1e6).toFixed(1),
      })
    }

    // Restore of one set (kept apart from backups/, which the backup-first restore writes into).
    {
      const sets = join(bench, 'sets')
      tenancy('backup', '--site', SITE, '--backup-path', 'sets')
      const set = join(sets, SITE, readdirSync(join(sets, SITE))[0])
      const dump = join(set, kind === 'postgres' ? 'database.pgdump' : 'database.sql.gz')
      const plainDump = join(scratch, 'dump.sql')
      if (kind === 'mariadb') bash(`gunzip -c ${sh([dump])} > ${sh([plainDump])}`)
      const newName = () => {
        const name = `bench_${randomBytes(6).toString('hex')}`
        raws.push(name)
        return name
      }
      const dropNow = async (name) => {
        await dropRaw(kind, [name])
        raws.splice(raws.indexOf(name), 1)
      }
      const r = rootLogin
      const pgRestore = ['pg_restore', ...r.args, '--no-owner', '--no-acl']
      const mariadb = ['mariadb', ...r.args, '--batch']
      const sql = (statement) => run('mariadb', [...r.args, '-e', statement], { env: r.env })
      /** The time of each part, for where the time goes. */
      const parts = {}
      const timed = async (part, fn) => {
        const ms = await time(fn)
        ;(parts[part] ??= []).push(ms)
        return ms
      }

      // tenancy: the whole process, and its own duration_ms (the rest is starting and exiting).
      const ours = async () => {
        const started = performance.now()
        const out = tenancy('restore', SITE, set, '--yes', '--no-backup', '--json')
        ;(parts.ours_inside ??= []).push(JSON.parse(String(out.stdout)).duration_ms)
        return performance.now() - started
      }
      const oursBackupFirst = async () => {
        const ms = await time(() => tenancy('restore', SITE, set, '--yes'))
        rmSync(backups, { recursive: true, force: true })
        return ms
      }
      // Plain: the database made (MariaDB: beforehand, untimed) and loaded; dropped untimed.
      const plain = async () => {
        const name = newName()
        let ms = 0
        if (kind === 'postgres') {
          ms += await timed('plain_createdb', () => run('createdb', [...r.args, name], { env: r.env }))
          ms += await timed('plain_load', () =>
            run(pgRestore[0], [...pgRestore.slice(1), `--dbname=${name}`, dump], { env: r.env }),
          )
        } else {
          sql(`CREATE DATABASE \`${name}\``)
          ms += await timed('plain_load', () => bash(`${sh([...mariadb, name])} < ${sh([plainDump])}`, r.env))
        }
        await dropNow(name)
        return ms
      }
      // Fair: a fresh copy made and loaded, then the previous copy dropped, as restore does.
      const loadFresh = async (name) => {
        let ms = 0
        if (kind === 'postgres') {
          ms += await timed('fair_create', () => run('createdb', [...r.args, name], { env: r.env }))
          ms += await timed('fair_load', () =>
            run(
              pgRestore[0],
              [...pgRestore.slice(1), '--single-transaction', '--exit-on-error', `--dbname=${name}`, dump],
              { env: r.env },
            ),
          )
        } else {
          ms += await timed('fair_create', () => sql(`CREATE DATABASE \`${name}\``))
          ms += await timed('fair_load', () => bash(`gunzip -c ${sh([dump])} | ${sh([...mariadb, name])}`, r.env))
        }
        return ms
      }
      let previous = newName()
      await loadFresh(previous)
      const fair = async () => {
        const name = newName()
        let ms = await loadFresh(name)
        ms += await timed('fair_drop', () =>
          kind === 'postgres'
            ? run('dropdb', [...r.args, '--force', previous], { env: r.env })
            : sql(`DROP DATABASE \`${previous}\``),
        )
        raws.splice(raws.indexOf(previous), 1)
        previous = name
        return ms
      }

      // One warm-up of each, then the rounds, each side's turn alternating.
      const sides = { ours, plain, fair, backupFirst: oursBackupFirst }
      for (const side of Object.values(sides)) await side()
      for (const part of Object.keys(parts)) parts[part] = []
      const times = Object.fromEntries(Object.keys(sides).map((k) => [k, []]))
      for (let i = 0; i < ROUNDS; i++) {
        const order = Object.keys(sides)
        if (i % 2) order.reverse()
        for (const k of order) times[k].push(await sides[k]())
      }
      const [o, p, f, b] = [times.ours, times.plain, times.fair, times.backupFirst].map(median)
      const breakdown = Object.fromEntries(Object.entries(parts).map(([k, v]) => [`${k}_ms`, +median(v).toFixed(0)]))
      const plainWhat = kind === 'postgres' ? 'createdb + pg_restore' : 'mariadb DB < dump.sql'
      const fairWhat =
        kind === 'postgres' ? 'createdb + pg_restore -1 + dropdb old' : 'CREATE DATABASE + gunzip | mariadb + DROP old'
      const inside = `  (in-process ${breakdown.ours_inside_ms} ms)`
      Object.assign(line(`${label}: restore --no-backup (process) vs ${plainWhat}`, o, p, '<= 1.3x', inside), breakdown)
      Object.assign(line(`${label}: restore --no-backup (process) vs ${fairWhat}`, o, f, '<= 1.3x', inside), breakdown)
      line(`${label}:   restore with its backup first vs the same`, b, f, 'info')
    }
  } finally {
    if (siteMade) run(process.execPath, [BIN, 'drop-site', SITE, '--yes', '--no-backup'], { cwd: bench, env })
    await dropRaw(kind, raws)
    rmSync(bench, { recursive: true, force: true })
  }
}

writeResults('backup.json', results, 'servers')
