// Bundles the CLI and the library with esbuild. Type declarations come from `tsc`
// (tsconfig.build.json).
//
// The CLI is one CommonJS script, dist/cli.cjs, that bin/tenancy.js compiles as a `vm.Script`
// with V8's code cache (dist/cli.cjs.v8cache, written by the CLI itself): Node 20 has no
// module compile cache, and compiling the CLI's code anew (commander, kysely, the command's
// work) costs a command some 30 ms that the cache takes off. What a command does stays
// behind `import('./core.js')`, which esbuild turns into a lazily run initializer: `--help`
// and argument errors never run kysely's or better-sqlite3's loading.
import { build } from 'esbuild'
import { readFileSync, rmSync } from 'node:fs'

const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'))
const sqliteVersion = JSON.parse(
  readFileSync(new URL('../node_modules/better-sqlite3/package.json', import.meta.url), 'utf8'),
).version

rmSync(new URL('../dist/', import.meta.url), { recursive: true, force: true })

const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  sourcemap: 'linked',
  minify: true,
  keepNames: true,
  // Native or optional: resolved from node_modules at run time.
  external: ['better-sqlite3', 'pg', 'mysql2', 'mysql2/promise'],
  define: {
    TENANCY_VERSION: JSON.stringify(version),
    TENANCY_IMPORT: 'undefined',
    TENANCY_BUNDLED_SQLITE: 'undefined',
  },
  logLevel: 'warning',
}
const esm = {
  ...common,
  format: 'esm',
  banner: {
    // Bundled CommonJS dependencies (cross-spawn, prompts) call require().
    js: "import { createRequire as __tenancyCreateRequire } from 'node:module'; const require = __tenancyCreateRequire(import.meta.url);",
  },
}

// The CLI. A vm.Script has no import() in Node 20: every import() of a bundled module or of a
// CommonJS package becomes a require (execa, ora and prompts are bundled, each still
// initialized only when used), and the few ES modules loaded at run time (apps' migrations and
// hooks, `execute` modules: util/import-file.ts) go through the import() bin/tenancy.js hands
// in. import.meta.url is the bundle's own URL, handed in too. better-sqlite3's JavaScript is
// bundled as well (its native addon is the installed one, and util/load-sqlite.ts uses the
// copy only with the very version it came from); `bindings`, which finds the addon without
// `nativeBinding`, is left out.
const cli = await build({
  ...common,
  format: 'cjs',
  external: ['bindings', 'pg', 'mysql2', 'mysql2/promise'],
  entryPoints: { cli: 'src/cli/main.ts' },
  outfile: 'dist/cli.cjs',
  supported: { 'dynamic-import': false },
  define: {
    ...common.define,
    TENANCY_IMPORT: '__tenancy_import',
    TENANCY_BUNDLED_SQLITE: JSON.stringify(sqliteVersion),
    'import.meta.url': '__tenancy_import_meta_url',
  },
  write: true,
  metafile: true,
})
const code = readFileSync(new URL('../dist/cli.cjs', import.meta.url), 'utf8')
if (/\bimport\(/.test(code)) throw new Error('dist/cli.cjs holds an import(), which a vm.Script cannot run')
if (Object.keys(cli.metafile.outputs).length !== 2) throw new Error('dist/cli.cjs must be one file (and its map)')

// migrate's worker threads: one self-contained file each thread loads.
await build({
  ...esm,
  entryPoints: { 'migrate-worker': 'src/migrate/worker-entry.ts' },
  outdir: 'dist',
  splitting: false,
})
// The library (and TENANCY_LIB for hooks): one file, its own lazy chunks.
await build({
  ...esm,
  entryPoints: { index: 'src/index.ts' },
  outdir: 'dist',
  splitting: true,
  chunkNames: 'lib/[name]-[hash]',
})
