// rollback benchmark (issue 15), side by side in one run: a new migration of tenant_ops (a
// column and an index on customers) applied by a whole-process `tenancy migrate` to 1,000 SQLite
// sites, then reverted by a whole-process `tenancy rollback --site all`, each with its default
// flags, as an operator runs them. Target: rollback ≤ 1.5× migrate's time for the same migration.
// Also both at the same `--concurrency` (so the figure shows the code, not the defaults; when that
// is both defaults, as with an unset migrate.concurrency, the default runs serve) and a rollback
// over one site (the CLI's start). Every round applies and reverts it again, so both sides touch
// the same files in the same state. Writes bench/results/fleet-rollback.json.
//
//   node bench/fleet-rollback.mjs [--quick]
import { execFileSync, spawnSync } from 'node:child_process'
import { rmSync, writeFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { join } from 'node:path'
import { BIN, cloneSites, lib, median, newBench, reporter, writeResults } from './common.mjs'

const quick = process.argv.includes('--quick')
const SITES = quick ? 200 : 1000
const ROUNDS = quick ? 2 : 3
const APP = 'tenant_ops_nohook'
const MIGRATION = '0007_bench_customer_region'

const bench = newBench('tenancy-bench-rollback-')
const env = { ...process.env, TENANCY_ADMIN_PASSWORD: 'bench-pw', NO_COLOR: '1' }
const lanes = String(availableParallelism())
// Both commands' default lanes for SQLite sites (the CPU count unless the config says otherwise):
// when that is `lanes`, the runs at `--concurrency lanes` would repeat the default ones.
let defaultsAreLanes
{
  const b = await lib.openBench({ cwd: bench, env })
  defaultsAreLanes = b.config.migrate.concurrency === Number(lanes)
  await lib.newSite(b, { site: 'template.localhost', installApps: [APP] })
  await b.close()
}
const names = Array.from({ length: SITES }, (_, i) => `r${i}.localhost`)
cloneSites(bench, 'template.localhost', names)
// The migration the fleet gets: written after the sites were made, so every site lacks it.
writeFileSync(
  join(bench, 'apps', APP, 'migrations', `${MIGRATION}.mjs`),
  `// A region on customers, indexed: the shape of a small everyday migration.
export async function up(db) {
  await db.schema.alterTable('customers').addColumn('region', 'varchar(32)').execute()
  await db.schema.createIndex('idx_customers_region').on('customers').column('region').execute()
}

export async function down(db, ctx) {
  const dropIndex = db.schema.dropIndex('idx_customers_region')
  await (ctx.dbType === 'mariadb' ? dropIndex.on('customers') : dropIndex).execute()
  await db.schema.alterTable('customers').dropColumn('region').execute()
}
`,
)

/** Runs tenancy with `--json`, timed, and checks every site did `status` (`count` of them). */
const timed = (args, count, status) => {
  const started = process.hrtime.bigint()
  const r = spawnSync(process.execPath, [BIN, ...args, '--json'], {
    cwd: bench,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer: 64 << 20,
  })
  const ms = Number(process.hrtime.bigint() - started) / 1e6
  if (r.status !== 0) throw new Error(`tenancy ${args.join(' ')} failed (${r.status}): ${r.stderr}`)
  const sites = JSON.parse(r.stdout.toString()).sites
  const done = sites.filter((s) => s.status === status).length
  if (sites.length !== count || done !== count)
    throw new Error(`tenancy ${args.join(' ')}: ${done} of ${sites.length} sites ${status}, expected ${count}`)
  return ms
}
const sides = {
  migrate: () => timed(['migrate'], SITES, 'migrated'),
  rollback: () => timed(['rollback', '--site', 'all'], SITES, 'rolled_back'),
  ...(!defaultsAreLanes && {
    migrate_n: () => timed(['migrate', '--concurrency', lanes], SITES, 'migrated'),
    rollback_n: () => timed(['rollback', '--site', 'all', '--concurrency', lanes], SITES, 'rolled_back'),
  }),
  migrate_one: () => timed(['migrate', '--site', names[0]], 1, 'migrated'),
  rollback_one: () => timed(['rollback', '--site', names[0]], 1, 'rolled_back'),
}
// One pair first: checks both do the whole fleet, and warms the page cache.
sides.migrate()
sides.rollback()
const runs = Object.fromEntries(Object.keys(sides).map((k) => [k, []]))
for (let i = 0; i < ROUNDS; i++) for (const [name, side] of Object.entries(sides)) runs[name].push(side())

const { results, line } = reporter(72)
console.log(
  `rollback of one migration over ${SITES} SQLite sites against migrate applying it (whole processes; ${ROUNDS} rounds, medians; node ${process.version}, ${execFileSync('nproc').toString().trim()} cores)\n`,
)
const m = (name) => median(runs[name])
const about = { sites: SITES, rounds: ROUNDS }
Object.assign(
  line(`rollback --site all vs migrate, ${SITES} sites (defaults)`, m('rollback'), m('migrate'), '<= 1.5x'),
  about,
)
Object.assign(
  defaultsAreLanes
    ? line(
        `  same, both --concurrency ${lanes} (the defaults here: the runs above)`,
        m('rollback'),
        m('migrate'),
        'info',
      )
    : line(`  same, both --concurrency ${lanes}`, m('rollback_n'), m('migrate_n'), 'info'),
  about,
)
line('  one site: rollback --site S vs migrate --site S', m('rollback_one'), m('migrate_one'), 'info')
writeResults('fleet-rollback.json', results)
rmSync(bench, { recursive: true, force: true })
