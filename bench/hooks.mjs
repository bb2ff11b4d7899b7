// Provisioning benchmark (issues 16 and 19), side by side in one run: `tenancy tenant create
// --no-pool`, whole process, on a bench whose sample apps call their hooks in-process
// (tenant_ops's after_install as {"module": …}), against `node -e 0`. Target: ours ≤ 3× node.
// Beside it the fair raw provisioning as a whole process (bench/raw/provision.mjs: the same
// tables and rows, fixtures and the hook's included, the same scrypt hash of the Administrator's
// password, the registry's intent and end): what of the 3× is the SPEC's work. Also reported, to
// show where the time goes: the same pipeline with that hook run as a command (a second Node
// process loading the library, as before issue 16), and with no hook at all. Wall time and CPU
// time (steadier on a busy machine), medians, sides alternated round by round. Writes
// bench/results/hooks.json.
//
//   node bench/hooks.mjs [--quick]
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { BIN, ROOT, median, newBench, reporter, timeNode, writeResults } from './common.mjs'
import { snapshotSite } from './raw/site.mjs'

const quick = process.argv.includes('--quick')
const ROUNDS = quick ? 5 : 9
const env = { ...process.env, NO_COLOR: '1' }

/** A bench (`newBench`) that provisions `shared_lib` and `app`. */
function benchProvisioning(app) {
  const dir = newBench('tenancy-bench-hooks-')
  const file = join(dir, 'tenancy.config.json')
  const config = JSON.parse(readFileSync(file, 'utf8'))
  config.provision.apps = ['shared_lib', app]
  writeFileSync(file, JSON.stringify(config, null, 2))
  return dir
}

// tenant_ops with the very same after_install function run as a command: a Node process that
// loads the library (TENANCY_LIB), connects to the site and calls the hook.
const commandBench = benchProvisioning('tenant_ops_command')
{
  const app = join(commandBench, 'apps', 'tenant_ops_command')
  cpSync(join(commandBench, 'apps', 'tenant_ops'), app, { recursive: true })
  const manifest = JSON.parse(readFileSync(join(app, 'app.json'), 'utf8'))
  const hooks = { after_install: 'node hooks/as-command.mjs' }
  writeFileSync(join(app, 'app.json'), JSON.stringify({ ...manifest, name: 'tenant_ops_command', hooks }))
  writeFileSync(
    join(app, 'hooks', 'as-command.mjs'),
    `import { pathToFileURL } from 'node:url'
const { withSiteDatabase } = await import(pathToFileURL(process.env.TENANCY_LIB).href)
const { default: afterInstall } = await import('./after_install.mjs')
const site = process.env.TENANCY_SITE
const output = await withSiteDatabase(process.env.TENANCY_SITE_PATH, (db, { sql, dbType }) =>
  afterInstall({ db, sql, dbType, site, sitePath: process.env.TENANCY_SITE_PATH, app: process.env.TENANCY_APP, signal: new AbortController().signal }),
)
process.stdout.write(output + '\\n')
`,
  )
}
const benches = {
  module: benchProvisioning('tenant_ops'),
  command: commandBench,
  none: benchProvisioning('tenant_ops_nohook'),
}

const timed = (args, cwd) => timeNode(args, { cwd, env, output: 'pipe' })
const create = (kind, i) => timed([BIN, 'tenant', 'create', `${kind}${i}`, '--no-pool', '--json'], benches[kind])

// One run of each first: each made its tenant, and the module and command forms ran the hook.
for (const kind of Object.keys(benches)) {
  const result = JSON.parse(create(kind, 'warm').stdout)
  if (result.status !== 'active') throw new Error(`tenant create on the ${kind} bench: ${JSON.stringify(result)}`)
}
// The fair raw side replays the tables and rows of the module bench's first tenant, on a bench
// of its own whose registry tenancy made (a first tenant there too).
const rawBench = benchProvisioning('tenant_ops')
timed([BIN, 'tenant', 'create', 'first', '--no-pool'], rawBench)
const scratch = mkdtempSync(join(tmpdir(), 'tenancy-bench-rawprov-'))
const snapshot = join(scratch, 'snapshot.json')
writeFileSync(
  snapshot,
  JSON.stringify(
    snapshotSite(join(benches.module, 'sites', 'modulewarm.localhost', 'db.sqlite'), 'modulewarm.localhost'),
  ),
)
const rawProvision = (i) =>
  timed([join(ROOT, 'bench', 'raw', 'provision.mjs'), snapshot, rawBench, `raw${i}`], rawBench)
rawProvision('warm')

const sides = {
  module: (i) => create('module', i),
  command: (i) => create('command', i),
  none: (i) => create('none', i),
  raw: (i) => rawProvision(i),
  node: () => timed(['-e', '0'], benches.none),
}
const runs = Object.fromEntries(Object.keys(sides).map((k) => [k, []]))
for (let i = 0; i < ROUNDS; i++) for (const [name, side] of Object.entries(sides)) runs[name].push(side(i))
const wall = (name) => median(runs[name].map((r) => r.ms))
const cpu = (name) => (runs[name][0].cpu === undefined ? NaN : median(runs[name].map((r) => r.cpu)))

console.log(`module hooks benchmark (${ROUNDS} rounds, medians)\n`)
const { results, line } = reporter(72)
line('tenant create --no-pool, module hooks (process) vs node -e 0', wall('module'), wall('node'), '<= 3x')
line('  CPU time: same vs node -e 0', cpu('module'), cpu('node'), 'info')
line('  same vs the fair raw provisioning (process: same tables, rows, scrypt)', wall('module'), wall('raw'), 'info')
line('  CPU time: same vs the fair raw provisioning', cpu('module'), cpu('raw'), 'info')
line('  the fair raw provisioning (process) vs node -e 0', wall('raw'), wall('node'), 'info')
line('  tenant_ops after_install as a command (process) vs node -e 0', wall('command'), wall('node'), 'info')
line('  CPU time: same vs node -e 0', cpu('command'), cpu('node'), 'info')
line('  no hook at all (process) vs node -e 0', wall('none'), wall('node'), 'info')
line("  module hooks vs no hook (the in-process hook's cost)", wall('module'), wall('none'), 'info')
line('  command hook vs module hook', wall('command'), wall('module'), 'info')
writeResults('hooks.json', results)
for (const dir of [...Object.values(benches), rawBench, scratch]) rmSync(dir, { recursive: true, force: true })
