// Start-up benchmark (issue 19, "explore startup itself"), side by side in one run: what it costs
// a command to load the CLI, as bin/tenancy.js does it (dist/cli.cjs compiled as a vm.Script
// with V8's code cache, bin/load-cli.js), against
//   - `node -e 0`, Node's own start;
//   - the same bundle compiled without the cache (a copy of bin/ whose load-cli.js neither reads
//     nor writes it): what the cache buys;
//   - a Node 20 user-land startup snapshot of the bundle (`node --snapshot-blob X --build-snapshot
//     entry.cjs`, `v8.startupSnapshot`): the bundle evaluated at build time, `main` run by the
//     deserialize function. Started with `node --snapshot-blob X -- ARGS` (the flag as a user
//     cannot pass it: a shebang cannot name a per-install absolute path), through a re-exec from a
//     node launcher (what bin/tenancy.js would have to do), and through an `exec` from a sh
//     launcher;
//   - a trivial snapshot (a deserialize function that does nothing): the floor of that path.
// For `tenancy --help` and `tenancy list-sites` (a bench with one site). Every variant's output
// is checked to equal the code cache's first. Wall and CPU time (steadier on a busy machine),
// medians, the variants in a rotating order round by round. Writes bench/results/startup.json.
//
//   node bench/startup.mjs [--quick]
import { spawnSync } from 'node:child_process'
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { BIN, ROOT, childCpuMs, median, newBench, reporter, timeNode, writeResults } from './common.mjs'

const quick = process.argv.includes('--quick')
const ROUNDS = quick ? 5 : 15
const env = { ...process.env, NO_COLOR: '1' }
const BUNDLE = join(ROOT, 'dist', 'cli.cjs')
const work = mkdtempSync(join(tmpdir(), 'tenancy-bench-startup-'))
const { results, line } = reporter(78)

/** Replaces `from` in `text`, which must hold it. */
function patch(text, from, to) {
  if (!text.includes(from)) throw new Error(`bin/load-cli.js no longer holds ${JSON.stringify(from)}`)
  return text.replace(from, to)
}

// No cache: bin/ copied, its load-cli.js loading the very bundle with neither read nor write of
// the cache (a plain compile, as a read-only install does).
const plainBin = join(work, 'plain', 'bin')
mkdirSync(plainBin, { recursive: true })
copyFileSync(BIN, join(plainBin, 'tenancy.js'))
writeFileSync(join(work, 'plain', 'package.json'), '{ "type": "module" }\n')
let loader = readFileSync(join(ROOT, 'bin', 'load-cli.js'), 'utf8')
loader = patch(loader, "new URL('../dist/cli.cjs', import.meta.url)", JSON.stringify(pathToFileURL(BUNDLE).href))
loader = patch(loader, 'const cache = readCache(source)', 'const cache = undefined')
loader = patch(loader, 'function writeCache(script, source, commands) {', '$&\n  return')
writeFileSync(join(plainBin, 'load-cli.js'), loader)

// The snapshot's entry: the bundle wrapped as bin/load-cli.js wraps it, evaluated at build time.
// At build time `require` knows only Node's built-in modules, and a function compiled then has no
// dynamic import() after deserialization ("A dynamic import callback was not specified"): the
// bundle gets a `require` made at run time, and its import() (apps' migrations and hooks) from a
// CommonJS file the real loader loads then. Node parses the options before the first argument
// that is not one (`-v`, `--help` would be Node's): a launcher passes `--` first.
const importHelper = join(work, 'import.cjs')
writeFileSync(importHelper, 'module.exports = (specifier) => import(specifier)\n')
const entry = join(work, 'entry.cjs')
writeFileSync(
  entry,
  `'use strict'
const { startupSnapshot } = require('node:v8')
const BUNDLE = ${JSON.stringify(BUNDLE)}
let runtimeRequire = require
const bundleRequire = (id) => runtimeRequire(id)
bundleRequire.resolve = (id, options) => runtimeRequire.resolve(id, options)
let runtimeImport = (specifier) => Promise.reject(new Error(\`import(\${specifier}) while building the snapshot\`))
const cli = { exports: {} }
;(function (exports, require, module, __filename, __dirname, __tenancy_import_meta_url, __tenancy_import) {
${readFileSync(BUNDLE, 'utf8')}
})(cli.exports, bundleRequire, cli, BUNDLE, ${JSON.stringify(dirname(BUNDLE))}, ${JSON.stringify(pathToFileURL(BUNDLE).href)}, (specifier) => runtimeImport(specifier))
startupSnapshot.setDeserializeMainFunction(async () => {
  runtimeRequire = require('node:module').createRequire(BUNDLE)
  runtimeImport = runtimeRequire(${JSON.stringify(importHelper)})
  await cli.exports.main([process.argv[0], BUNDLE, ...process.argv.slice(1)])
})
`,
)
const blob = join(work, 'cli.blob')
const trivialBlob = join(work, 'trivial.blob')
writeFileSync(join(work, 'trivial.cjs'), "require('node:v8').startupSnapshot.setDeserializeMainFunction(() => {})\n")
const built = timeNode(['--snapshot-blob', blob, '--build-snapshot', entry], { cwd: work, env })
timeNode(['--snapshot-blob', trivialBlob, '--build-snapshot', join(work, 'trivial.cjs')], { cwd: work, env })

// The launchers a user would start: node re-executing node with the flag (Node 20 has no exec;
// a real one would also check that the blob was built by this Node, not timed here), and a
// shell script exec-ing it.
const reexec = join(work, 'reexec.mjs')
writeFileSync(
  reexec,
  `import { spawnSync } from 'node:child_process'
const r = spawnSync(process.execPath, ['--snapshot-blob', ${JSON.stringify(blob)}, '--', ...process.argv.slice(2)], { stdio: 'inherit' })
process.exitCode = r.status ?? 1
`,
)
const shLauncher = join(work, 'tenancy.sh')
writeFileSync(shLauncher, `#!/bin/sh\nexec "${process.execPath}" --snapshot-blob "${blob}" -- "$@"\n`)

/** Wall and CPU milliseconds of `sh SCRIPT ARGS`, which must succeed (timeNode runs node only). */
function timeSh(args, cwd, output = 'ignore') {
  const cpu = childCpuMs()
  const started = process.hrtime.bigint()
  const r = spawnSync('/bin/sh', args, { cwd, env, stdio: ['ignore', output, 'pipe'] })
  const ms = Number(process.hrtime.bigint() - started) / 1e6
  if (r.status !== 0) throw new Error(`sh ${args.join(' ')} failed (${r.status}): ${r.stderr}`)
  return { ms, cpu: cpu === undefined ? undefined : childCpuMs() - cpu, stdout: r.stdout?.toString() }
}

const bench = newBench('tenancy-bench-startup-')
timeNode([BIN, 'new-site', 's1.localhost'], { cwd: bench, env: { ...env, TENANCY_ADMIN_PASSWORD: 'bench-pw' } })
console.log(
  `start-up benchmarks (${ROUNDS} rounds, medians; snapshot blob ${(statSync(blob).size / 1e6).toFixed(1)} MB, built in ${built.ms.toFixed(0)} ms)\n`,
)

const COMMANDS = { '--help': ['--help'], 'list-sites': ['list-sites'] }
const variants = (args) => ({
  cache: (output) => timeNode([BIN, ...args], { cwd: bench, env, output }),
  plain: (output) => timeNode([join(plainBin, 'tenancy.js'), ...args], { cwd: bench, env, output }),
  snapshot: (output) => timeNode(['--snapshot-blob', blob, '--', ...args], { cwd: bench, env, output }),
  reexec: (output) => timeNode([reexec, ...args], { cwd: bench, env, output }),
  sh: (output) => timeSh([shLauncher, ...args], bench, output),
})
const sides = {
  node: () => timeNode(['-e', '0'], { env }),
  trivial: () => timeNode(['--snapshot-blob', trivialBlob], { env }),
}
for (const [name, args] of Object.entries(COMMANDS)) {
  const own = variants(args)
  // One of each first, not counted, their output compared: the code cache written for the command.
  const expected = own.cache('pipe').stdout
  for (const [variant, run] of Object.entries(own))
    if (run('pipe').stdout !== expected) throw new Error(`tenancy ${name}: the ${variant} variant printed otherwise`)
  for (const [variant, run] of Object.entries(own)) sides[`${name} ${variant}`] = () => run('ignore')
}
for (const side of Object.values(sides)) side()

const names = Object.keys(sides)
const runs = Object.fromEntries(names.map((name) => [name, []]))
for (let i = 0; i < ROUNDS; i++)
  for (let j = 0; j < names.length; j++) {
    const name = names[(i + j) % names.length]
    runs[name].push(sides[name]())
  }
const ms = (name) => median(runs[name].map((r) => r.ms))
const cpu = (name) => median(runs[name].map((r) => r.cpu))

for (const name of Object.keys(COMMANDS)) {
  const at = (variant) => ms(`${name} ${variant}`)
  line(`tenancy ${name}: code cache (bin/tenancy.js) vs node -e 0`, at('cache'), ms('node'), 'info')
  line(`  code cache vs no cache (plain compile)`, at('cache'), at('plain'), 'info')
  line(`  no cache vs node -e 0`, at('plain'), ms('node'), 'info')
  line(`  snapshot, node --snapshot-blob (direct) vs code cache`, at('snapshot'), at('cache'), 'info')
  line(`  snapshot, direct vs node -e 0`, at('snapshot'), ms('node'), 'info')
  line(`  snapshot via re-exec from node (as bin/tenancy.js would) vs code cache`, at('reexec'), at('cache'), 'info')
  line(`  snapshot via re-exec vs node -e 0`, at('reexec'), ms('node'), 'info')
  line(`  snapshot via a sh launcher (exec) vs code cache`, at('sh'), at('cache'), 'info')
  const cpuAt = (variant) => cpu(`${name} ${variant}`)
  line(`  CPU time: code cache vs no cache`, cpuAt('cache'), cpuAt('plain'), 'info')
  line(`  CPU time: snapshot, direct vs code cache`, cpuAt('snapshot'), cpuAt('cache'), 'info')
  line(`  CPU time: snapshot via re-exec vs code cache`, cpuAt('reexec'), cpuAt('cache'), 'info')
  line(`  CPU time: snapshot via a sh launcher vs code cache`, cpuAt('sh'), cpuAt('cache'), 'info')
}
line('trivial snapshot (node --snapshot-blob, nothing run) vs node -e 0', ms('trivial'), ms('node'), 'info')
line('  CPU time: same', cpu('trivial'), cpu('node'), 'info')

writeResults('startup.json', results)
for (const dir of [bench, work]) rmSync(dir, { recursive: true, force: true })
