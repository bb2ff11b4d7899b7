import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { killWhen, makeBench, setConfig, tenancy } from './helpers.js'
import { splitSqlScript } from '../src/apps/sql-script.js'
import { SITE_BACKENDS, asSite, registryRows, serverHas, siteConfig, useBackend, type BackendName } from './backends.js'

// SPEC §6: a kill -9 at any instant on any driver, MariaDB included (its DDL commits as it
// runs), is finished by `provision`, `migrate` or `doctor --fix` with no manual step. Each
// test runs once uninterrupted, then kills the whole process group at points spread over the
// run — read off the registry or the site as the run gets there, not timed, so that a faster
// run does not slip past its kills — and proves the resumed result is the one of the
// uninterrupted run.

/** Runs a statement that returns no rows (DDL) as a MariaDB site's own user. */
async function siteStatement(bench: string, site: string, text: string): Promise<void> {
  const cfg = siteConfig(bench, site)
  const { default: mysql } = await import('mysql2/promise')
  const conn = await mysql.createConnection({
    host: cfg.db_host,
    port: cfg.db_port,
    user: cfg.db_user,
    password: cfg.db_password,
    database: cfg.db_name,
  })
  try {
    await conn.query(text)
  } finally {
    await conn.end()
  }
}

async function rows(bench: string, site: string, text: string): Promise<any[]> {
  const r = await asSite(bench, site, text)
  if (r.error) throw new Error(`${site}: ${text}: ${r.error}`)
  return r.rows
}

const SCHEMA: Record<BackendName, string[]> = {
  sqlite: [
    "select m.name as t, p.name as c, p.type as ty from sqlite_master m join pragma_table_info(m.name) p where m.type = 'table' order by 1, 2",
    "select name as i, tbl_name as t from sqlite_master where type = 'index' and name not like 'sqlite_%' order by 1",
  ],
  mariadb: [
    'select table_name as t, column_name as c, column_type as ty from information_schema.columns where table_schema = database() order by 1, 2',
    'select distinct index_name as i, table_name as t from information_schema.statistics where table_schema = database() order by 2, 1',
  ],
  postgres: [
    "select table_name as t, column_name as c, data_type as ty from information_schema.columns where table_schema = 'public' order by 1, 2",
    "select indexname as i, tablename as t from pg_indexes where schemaname = 'public' order by 1",
  ],
}

/** What a provisioned site holds: its schema, its ledger, and how many of each thing the install made. */
async function siteShape(bench: string, site: string, backend: BackendName) {
  const count = async (text: string) => Number((await rows(bench, site, text))[0].n)
  return {
    columns: await rows(bench, site, SCHEMA[backend][0]!),
    indexes: await rows(bench, site, SCHEMA[backend][1]!),
    ledger: (await rows(bench, site, 'select app, name from tenancy_migrations order by app, name')).map(
      (r) => `${r.app}/${r.name}`,
    ),
    counts: {
      installed_apps: await count('select count(*) as n from installed_apps'),
      schema_version: await count(
        "select count(*) as n from settings where setting_key = 'shared_lib.schema_version' and setting_value = '4'",
      ),
      settings: await count('select count(*) as n from settings'),
      tags: await count('select count(*) as n from tags'),
      onboarding: await count("select count(*) as n from projects where id = 'PRJ-ONBOARDING'"),
      tasks: await count('select count(*) as n from tasks'),
      audit: await count("select count(*) as n from audit_log where action = 'app_installed'"),
      api_users: await count("select count(*) as n from users where name like 'api@%'"),
      api_keys: await count('select count(*) as n from api_keys'),
      admins: await count("select count(*) as n from user_roles where role = 'Administrator'"),
    },
    ...(backend === 'mariadb'
      ? { in_flight: await count('select count(*) as n from tenancy_migration_progress') }
      : {}),
  }
}

/** The database names a tenant's site was given so far (the intent row names one before it is made). */
async function plannedDatabases(bench: string, site: string): Promise<string[]> {
  const names = (await registryRows(bench, 'select db_name from sites where name = ?', site)).map(
    (r) => r.db_name as string,
  )
  if (existsSync(join(bench, 'sites', site, 'site_config.json'))) names.push(siteConfig(bench, site).db_name)
  return names.filter(Boolean)
}

/** One active tenant, one ready site row, and (on a server) exactly one database and one user: every other name it was given is gone. */
async function expectOneOfEverything(
  bench: string,
  tenant: string,
  backend: BackendName,
  planned: Iterable<string>,
): Promise<void> {
  const site = `${tenant}.localhost`
  const show = await tenancy(bench, ['tenant', 'show', tenant, '--json'])
  expect(show.json, show.stderr).toMatchObject({ status: 'active', provisioning_status: 'completed', site })
  expect(
    show.json.steps.every((s: any) => s.status === 'done' || s.status === 'skipped'),
    JSON.stringify(show.json.steps),
  ).toBe(true)
  expect(
    await registryRows(
      bench,
      'select state from sites where tenant_id = (select id from tenants where name = ?)',
      tenant,
    ),
  ).toEqual([{ state: 'ready' }])
  expect(readdirSync(join(bench, 'sites')).filter((d) => d.startsWith(`${tenant}.`))).toEqual([site])
  if (backend === 'sqlite') return
  const current = siteConfig(bench, site).db_name
  expect(await serverHas(backend, current)).toEqual({ database: true, user: true })
  for (const name of new Set(planned))
    if (name !== current)
      expect(await serverHas(backend, name), `${tenant}: earlier database ${name}`).toEqual({
        database: false,
        user: false,
      })
}

/**
 * Kills `tenant create --no-pool` at `n` points spread over its steps (once the tenant is
 * recorded, then after more and more of its steps are done), then finishes each with
 * `tenancy provision` (or, for the last, `doctor --fix`). Returns what happened. The points
 * are read off the registry as the run goes, so they land in the same phases however fast
 * or loaded the machine is (timed instants drifted into the start-up or past the end).
 */
async function killProvisioning(backend: BackendName, n: number) {
  const bench = makeBench()
  const env = useBackend(bench, backend)
  const first = await tenancy(bench, ['tenant', 'create', 'ref', '--no-pool'], { env })
  expect(first.exitCode, first.stderr).toBe(0)
  const reference = await siteShape(bench, 'ref.localhost', backend)
  expect(reference.ledger.length).toBe(12)
  const steps = (await tenancy(bench, ['tenant', 'show', 'ref', '--json'])).json.steps.length as number
  let killed = 0
  let resumed = 0
  for (let i = 0; i < n; i++) {
    const tenant = `k${i}`
    // Kill once `done` of its steps are done: 0 (just recorded) up to the last app's install
    // (the steps after it take a few milliseconds, less than a poll).
    const done = Math.round((i * (steps - 3)) / Math.max(1, n - 1))
    const reached = async () => {
      const [row] = await registryRows(
        bench,
        "select count(distinct t.id) as t, count(s.idx) as n from tenants t left join steps s on s.tenant_id = t.id and s.status = 'done' where t.name = ?",
        tenant,
      )
      return Number(row.t) > 0 && Number(row.n) >= done
    }
    if (await killWhen(bench, ['tenant', 'create', tenant, '--no-pool'], env, reached, 5)) killed++
    const recorded = await tenancy(bench, ['tenant', 'show', tenant, '--json'])
    if (recorded.exitCode === 2) continue // killed before the tenant was recorded: nothing to finish
    const planned = await plannedDatabases(bench, `${tenant}.localhost`)
    // The last one is left to doctor --fix, the others to provision: both must finish it.
    const finish =
      i === n - 1
        ? await tenancy(bench, ['doctor', '--fix', '--json'], { env })
        : await tenancy(bench, ['provision', tenant], { env })
    expect(finish.exitCode, `${backend} ${tenant} killed after ${done} steps: ${finish.stdout}\n${finish.stderr}`).toBe(
      0,
    )
    if (recorded.json.provisioning_status !== 'completed') resumed++
    await expectOneOfEverything(bench, tenant, backend, planned)
    expect(await siteShape(bench, `${tenant}.localhost`, backend), `${tenant} killed after ${done} steps`).toEqual(
      reference,
    )
  }
  const doctor = await tenancy(bench, ['doctor', '--json'], { env })
  expect(doctor.json.findings, JSON.stringify(doctor.json.findings)).toEqual([])
  return { killed, resumed }
}

const mariadb = SITE_BACKENDS.find((b) => b.name === 'mariadb')!

describe('kill -9 during provisioning, then provision (or doctor --fix) finishes it', () => {
  // Five points spread over the run land in its phases (the database and user, each app's
  // migrations and hook); each one is a full MariaDB provisioning to finish and check.
  it.skipIf(mariadb.skip)('MariaDB: 5 instants over tenant create, no manual step', { timeout: 240_000 }, async () => {
    const { killed, resumed } = await killProvisioning('mariadb', 5)
    console.log(`mariadb provisioning: ${killed} of 5 kills landed, ${resumed} resumed, 0 manual steps`)
    // A kill polled a little late may find the run finished (or, after it, completed).
    expect(killed).toBeGreaterThanOrEqual(4)
    expect(resumed).toBeGreaterThanOrEqual(3)
  })

  for (const backend of SITE_BACKENDS.filter((b) => b.name !== 'mariadb')) {
    it.skipIf(backend.skip)(
      `${backend.name}: 4 instants over tenant create, no manual step`,
      { timeout: 120_000 },
      async () => {
        const { killed, resumed } = await killProvisioning(backend.name, 4)
        console.log(`${backend.name} provisioning: ${killed} of 4 kills landed, ${resumed} resumed, 0 manual steps`)
        expect(killed).toBeGreaterThanOrEqual(3)
        expect(resumed).toBeGreaterThanOrEqual(2)
      },
    )
  }
})

/** A round of new migrations for the `crashy` app: a `.sql` and a `.mjs`, each of many statements, some not idempotent. */
function addRound(bench: string, round: number): string[] {
  const dir = join(bench, 'apps', 'crashy', 'migrations')
  const t = `r${round}`
  const sqlName = `${String(10 + 2 * round).padStart(4, '0')}_${t}_script`
  const jsName = `${String(11 + 2 * round).padStart(4, '0')}_${t}_code`
  writeFileSync(
    join(dir, `${sqlName}.sql`),
    `-- round ${round}: DDL and DML interleaved; UPDATE and INSERT would show a second run.
CREATE TABLE ${t}_items (id INT NOT NULL PRIMARY KEY, label VARCHAR(40) NOT NULL);
INSERT INTO ${t}_items (id, label) VALUES (1, 'one;1'), (2, 'two');
INSERT INTO crash_log (rnd, step) VALUES (${round}, 'sql-a');
ALTER TABLE ${t}_items ADD COLUMN price DECIMAL(10,2) NOT NULL DEFAULT 0;
SELECT SLEEP(0.02);
UPDATE ${t}_items SET price = price + 1.5;
CREATE INDEX idx_${t}_label ON ${t}_items (label);
INSERT INTO crash_log (rnd, step) VALUES (${round}, 'sql-b');
ALTER TABLE ${t}_items ADD COLUMN note VARCHAR(40);
SELECT SLEEP(0.02);
ALTER TABLE ${t}_items DROP COLUMN note;
CREATE TABLE ${t}_extra (k VARCHAR(20) NOT NULL PRIMARY KEY);
RENAME TABLE ${t}_extra TO ${t}_extra2;
DROP TABLE ${t}_extra2;
INSERT INTO crash_log (rnd, step) VALUES (${round}, 'sql-c');
`,
  )
  writeFileSync(
    join(dir, `${jsName}.mjs`),
    `export async function up(db, { sql }) {
  await db.schema.createTable('${t}_js').addColumn('id', 'integer', (c) => c.primaryKey()).addColumn('v', 'integer').execute()
  await db.insertInto('${t}_js').values([{ id: 1, v: 10 }, { id: 2, v: 20 }]).execute()
  await db.insertInto('crash_log').values({ rnd: ${round}, step: 'js-a' }).execute()
  await sql\`select sleep(0.02)\`.execute(db)
  await sql.raw("CREATE TABLE ${t}_m1 (id INT); INSERT INTO crash_log (rnd, step) VALUES (${round}, 'js-raw;'); CREATE TABLE ${t}_m2 (id INT)").execute(db)
  await db.schema.alterTable('${t}_js').addColumn('w', 'integer', (c) => c.notNull().defaultTo(0)).execute()
  await db.updateTable('${t}_js').set({ w: sql\`w + 7\` }).execute()
  const rows = await db.selectFrom('${t}_js').select('id').execute()
  await db.schema.createIndex('idx_${t}_js_v').on('${t}_js').column('v').execute()
  await db.insertInto('crash_log').values({ rnd: ${round}, step: 'js-b' + rows.length }).execute()
  await db.schema.alterTable('${t}_js').dropColumn('v').execute()
  await db.insertInto('crash_log').values({ rnd: ${round}, step: 'js-c' }).execute()
}
`,
  )
  return [sqlName, jsName]
}

/** Every migration of `round` applied exactly once: its ledger rows, tables, columns, index, data. */
async function expectRound(bench: string, site: string, round: number, names: string[]): Promise<void> {
  const t = `r${round}`
  const ledger = (
    await rows(bench, site, "select name from tenancy_migrations where app = 'crashy' order by name")
  ).map((r) => r.name)
  for (const name of names) expect(ledger.filter((n: string) => n === name)).toEqual([name])
  expect(await rows(bench, site, 'select count(*) as n from tenancy_migration_progress')).toEqual([{ n: 0 }])
  expect(await rows(bench, site, `select id, label, price from ${t}_items order by id`)).toEqual([
    { id: 1, label: 'one;1', price: 1.5 },
    { id: 2, label: 'two', price: 1.5 },
  ])
  expect(await rows(bench, site, `select id, w from ${t}_js order by id`)).toEqual([
    { id: 1, w: 7 },
    { id: 2, w: 7 },
  ])
  const columns = await rows(
    bench,
    site,
    `select table_name as t, column_name as c from information_schema.columns where table_schema = database() and table_name like '${t}\\_%' order by 1, 2`,
  )
  expect(columns.map((c) => `${c.t}.${c.c}`)).toEqual([
    `${t}_items.id`,
    `${t}_items.label`,
    `${t}_items.price`,
    `${t}_js.id`,
    `${t}_js.w`,
    `${t}_m1.id`,
    `${t}_m2.id`,
  ])
  const indexes = await rows(
    bench,
    site,
    `select distinct index_name as i from information_schema.statistics where table_schema = database() and table_name = '${t}_items' order by 1`,
  )
  expect(indexes.map((i) => i.i).sort()).toEqual(['PRIMARY', `idx_${t}_label`].sort())
  expect(
    (await rows(bench, site, `select step from crash_log where rnd = ${round} order by id`)).map((r) => r.step),
  ).toEqual(['sql-a', 'sql-b', 'sql-c', 'js-a', 'js-raw;', 'js-b2', 'js-c'])
}

describe('kill -9 during MariaDB migrate, then migrate finishes it', () => {
  it.skipIf(mariadb.skip)(
    '5 instants over a migrate of two multi-statement migrations, every statement applied once',
    { timeout: 180_000 },
    async () => {
      const bench = makeBench()
      const env = useBackend(bench, 'mariadb')
      setConfig(bench, (c) => (c.provision.apps = ['shared_lib']))
      const app = join(bench, 'apps', 'crashy')
      mkdirSync(join(app, 'migrations'), { recursive: true })
      writeFileSync(join(app, 'app.json'), JSON.stringify({ name: 'crashy', version: '0.1.0' }))
      writeFileSync(
        join(app, 'migrations', '0001_log.sql'),
        'CREATE TABLE crash_log (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, rnd INT NOT NULL, step VARCHAR(20) NOT NULL);\n',
      )
      const created = await tenancy(bench, ['tenant', 'create', 'live', '--no-pool'], { env })
      expect(created.exitCode, created.stderr).toBe(0)
      const site = 'live.localhost'
      const install = await tenancy(bench, ['install-app', 'crashy', '--site', site], { env })
      expect(install.exitCode, install.stderr).toBe(0)

      // Rounds 0 and 1 run uninterrupted (cold, then warm): what every killed round must come to.
      for (const round of [0, 1]) {
        const names = addRound(bench, round)
        const clean = await tenancy(bench, ['migrate', '--json'], { env })
        expect(clean.exitCode, clean.stderr).toBe(0)
        await expectRound(bench, site, round, names)
      }

      // Each killed round dies once its migrations have logged this many of their seven steps
      // (0: as it starts; 4 and 5: inside the JavaScript migration), polled every 5 ms.
      let killed = 0
      let interrupted = 0
      for (const [i, steps] of [0, 1, 2, 4, 5].entries()) {
        const round = i + 2
        const names = addRound(bench, round)
        const logged = async () =>
          Number((await rows(bench, site, `select count(*) as n from crash_log where rnd = ${round}`))[0]?.n ?? 0) >=
          steps
        if (await killWhen(bench, ['migrate'], env, logged, 5)) killed++
        const ledger = (await rows(bench, site, "select name from tenancy_migrations where app = 'crashy'")).map(
          (r) => r.name,
        )
        if (names.some((n) => !ledger.includes(n))) interrupted++
        const again = await tenancy(bench, ['migrate', '--json'], { env })
        expect(again.exitCode, `round ${round} killed after ${steps} steps: ${again.stdout}\n${again.stderr}`).toBe(0)
        await expectRound(bench, site, round, names)
      }
      console.log(
        `mariadb migrate: ${killed} of 5 kills landed, ${interrupted} left migrations to finish, 0 manual steps`,
      )
      expect(killed).toBeGreaterThanOrEqual(3)
      expect(interrupted).toBeGreaterThanOrEqual(2)
      const files = readdirSync(join(app, 'migrations')).length
      expect(await rows(bench, site, "select count(*) as n from tenancy_migrations where app = 'crashy'")).toEqual([
        { n: files },
      ])
    },
  )
})

describe('kill -9 during MariaDB pending-create: stuck pool tenants are finished, not counted forever', () => {
  it.skipIf(mariadb.skip)(
    'doctor --fix and the next pending-create finish what the killed runs left',
    { timeout: 180_000 },
    async () => {
      const bench = makeBench()
      const env = useBackend(bench, 'mariadb')
      const first = await tenancy(bench, ['pending-create', '--count', '1', '--json'], { env })
      expect(first.exitCode, first.stderr).toBe(0)
      const pendingSites = async () =>
        (await registryRows(bench, 'select site from tenants where pending_since is not null order by id')).map(
          (r) => r.site as string,
        )
      const [refSite] = await pendingSites()
      const reference = await siteShape(bench, refSite!, 'mariadb')
      const planned = new Map<string, string[]>()
      const remember = async () => {
        for (const site of await pendingSites())
          planned.set(site, [...(planned.get(site) ?? []), ...(await plannedDatabases(bench, site))])
      }

      // Killed inside an app install of the second pool tenant; doctor --fix finishes it.
      const installing = async () =>
        (
          await registryRows(
            bench,
            "select s.name from steps s join tenants t on t.id = s.tenant_id where t.pending_since is not null and s.status = 'running' and s.name like 'install-app %'",
          )
        ).length > 0
      expect(await killWhen(bench, ['pending-create', '--count', '3'], env, installing)).toBe(true)
      await remember()
      const statuses = async () =>
        (await registryRows(bench, 'select provisioning_status as s from tenants where pending_since is not null')).map(
          (r) => r.s as string,
        )
      expect(await statuses()).toContain('in_progress')
      const doctor = await tenancy(bench, ['doctor', '--fix', '--json'], { env })
      expect(doctor.exitCode, `${doctor.stdout}\n${doctor.stderr}`).toBe(0)
      expect(doctor.json.findings.map((f: any) => [f.kind, f.fixed])).toContainEqual(['stuck_tenant', true])
      // Reservations not yet started stay queued for pending-create; none is left half-made.
      expect((await statuses()).filter((s) => s !== 'completed' && s !== 'queued')).toEqual([])

      // Killed again; the next pending-create resumes every unfinished reservation.
      await killWhen(bench, ['pending-create', '--count', '3'], env, installing)
      await remember()
      const again = await tenancy(bench, ['pending-create', '--count', '3', '--json'], { env })
      expect(again.exitCode, `${again.stdout}\n${again.stderr}`).toBe(0)
      expect(again.json.pool).toEqual({ ready: 3, provisioning: 0, failed: 0 })
      const sites = await pendingSites()
      expect(sites.length).toBe(3)
      for (const site of sites) {
        expect(await siteShape(bench, site, 'mariadb'), site).toEqual(reference)
        const current = siteConfig(bench, site).db_name
        expect(await serverHas('mariadb', current)).toEqual({ database: true, user: true })
        for (const name of new Set(planned.get(site) ?? []))
          if (name !== current)
            expect(await serverHas('mariadb', name), `${site}: earlier database ${name}`).toEqual({
              database: false,
              user: false,
            })
      }
    },
  )
})

describe('splitting a .sql migration into statements (MariaDB runs them one at a time)', () => {
  it('splits at top-level semicolons only: not in quotes, comments or a stored-program body', () => {
    const script = `-- a comment; with a semicolon
INSERT INTO a VALUES ('x;y', "q\\"; ", 'it''s;'); # another; comment
/* block; comment */ CREATE TABLE \`we;ird\` (id INT);
CREATE TRIGGER t BEFORE INSERT ON a FOR EACH ROW BEGIN
  IF NEW.x = 1 THEN SET NEW.y = CASE WHEN NEW.z THEN 2 ELSE 3 END; END IF;
  lbl: LOOP LEAVE lbl; END LOOP lbl;
END;
CREATE TRIGGER t2 BEFORE UPDATE ON a FOR EACH ROW IF NEW.x = 1 THEN SET NEW.y = IF(NEW.z, 1, 2); END IF;
CREATE TABLE IF NOT EXISTS b (id INT);;
SELECT 1`
    expect(splitSqlScript(script)).toEqual([
      `INSERT INTO a VALUES ('x;y', "q\\"; ", 'it''s;')`,
      'CREATE TABLE `we;ird` (id INT)',
      'CREATE TRIGGER t BEFORE INSERT ON a FOR EACH ROW BEGIN\n  IF NEW.x = 1 THEN SET NEW.y = CASE WHEN NEW.z THEN 2 ELSE 3 END; END IF;\n  lbl: LOOP LEAVE lbl; END LOOP lbl;\nEND',
      'CREATE TRIGGER t2 BEFORE UPDATE ON a FOR EACH ROW IF NEW.x = 1 THEN SET NEW.y = IF(NEW.z, 1, 2); END IF',
      'CREATE TABLE IF NOT EXISTS b (id INT)',
      'SELECT 1',
    ])
  })
})

describe('MariaDB migrations after a failure: resumed at the failed statement, never guessed', () => {
  it.skipIf(mariadb.skip)(
    'a clash that was there before is not taken as done; a fixed statement resumes; other statements are refused',
    { timeout: 120_000 },
    async () => {
      const bench = makeBench({ exampleApps: false })
      const env = useBackend(bench, 'mariadb')
      const dir = join(bench, 'apps', 'solo', 'migrations')
      mkdirSync(dir, { recursive: true })
      writeFileSync(join(bench, 'apps', 'solo', 'app.json'), JSON.stringify({ name: 'solo', version: '0.1.0' }))
      writeFileSync(
        join(dir, '0001_base.sql'),
        'CREATE TABLE base (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, note VARCHAR(20));\n',
      )
      const site = 's.localhost'
      const made = await tenancy(bench, ['new-site', site, '--install-app', 'solo'], { env })
      expect(made.exitCode, made.stderr).toBe(0)
      const migrate = () => tenancy(bench, ['migrate', '--json'], { env })
      const solo = async () =>
        (await rows(bench, site, "select name from tenancy_migrations where app = 'solo' order by name")).map(
          (r) => r.name,
        )

      // The operator's own table clashes with the migration's third statement.
      await siteStatement(bench, site, 'CREATE TABLE clash (x INT)')
      writeFileSync(
        join(dir, '0002_clash.sql'),
        "INSERT INTO base (note) VALUES ('once');\nCREATE TABLE mine (id INT);\nCREATE TABLE clash (id INT);\nINSERT INTO base (note) VALUES ('after');\n",
      )
      for (let i = 0; i < 2; i++) {
        const r = await migrate()
        expect(r.exitCode).toBe(1)
        expect(r.json.sites[0]).toMatchObject({ status: 'failed', migration: '0002_clash' })
        expect(r.json.sites[0].error).toMatch(/Table 'clash' already exists/)
      }
      expect(await solo()).toEqual(['0001_base'])
      // Fixed: the rerun starts at the failed statement; the first two are not run again.
      await siteStatement(bench, site, 'DROP TABLE clash')
      const fixed = await migrate()
      expect(fixed.exitCode, fixed.stdout).toBe(0)
      expect(await rows(bench, site, 'select note from base order by id')).toEqual([
        { note: 'once' },
        { note: 'after' },
      ])
      expect(await solo()).toEqual(['0001_base', '0002_clash'])

      // A JS migration that fails after some statements, then is changed before that point.
      const js = (first: string, fail: boolean) =>
        `export async function up(db) {\n  await db.insertInto('base').values(${first}).execute()\n  await db.schema.createTable('js_made').addColumn('id', 'integer').execute()\n${fail ? "  throw new Error('not yet')\n" : ''}  await db.insertInto('base').values({ note: 'js-end' }).execute()\n}\n`
      writeFileSync(join(dir, '0003_code.mjs'), js("{ note: 'js-start' }", true))
      expect((await migrate()).json.sites[0]).toMatchObject({
        status: 'failed',
        migration: '0003_code',
        error: expect.stringMatching(/not yet/),
      })
      writeFileSync(join(dir, '0003_code.mjs'), js("{ id: 99, note: 'other' }", false))
      const refused = await migrate()
      expect(refused.exitCode).toBe(1)
      expect(refused.json.sites[0].error).toMatch(
        /migration solo\/0003_code was interrupted at statement 2, and it now issues other statements before that one/,
      )
      writeFileSync(join(dir, '0003_code.mjs'), js("{ note: 'js-start' }", false))
      const resumed = await migrate()
      expect(resumed.exitCode, resumed.stdout).toBe(0)
      expect((await rows(bench, site, 'select note from base order by id')).map((r) => r.note)).toEqual([
        'once',
        'after',
        'js-start',
        'js-end',
      ])
      expect(await solo()).toEqual(['0001_base', '0002_clash', '0003_code'])
      expect(await rows(bench, site, 'select count(*) as n from tenancy_migration_progress')).toEqual([{ n: 0 }])
    },
  )
})
