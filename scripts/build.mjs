// Bundles the CLI and the library with esbuild. Node 20 has no module compile cache, and
// loading kysely's and execa's several hundred ESM files costs more than 200 ms per process;
// one bundle with lazily loaded chunks keeps `tenancy --version` near bare `node` startup.
// Type declarations come from `tsc` (tsconfig.build.json).
import { build } from 'esbuild'
import { readFileSync, rmSync } from 'node:fs'

const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'))

rmSync(new URL('../dist/', import.meta.url), { recursive: true, force: true })

const common = {
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  sourcemap: 'linked',
  minify: true,
  keepNames: true,
  // Native or optional: resolved from node_modules at run time.
  external: ['better-sqlite3', 'pg', 'mysql2', 'mysql2/promise'],
  banner: {
    // Bundled CommonJS dependencies (cross-spawn, prompts) call require().
    js: "import { createRequire as __tenancyCreateRequire } from 'node:module'; const require = __tenancyCreateRequire(import.meta.url);",
  },
  define: { TENANCY_VERSION: JSON.stringify(version) },
  logLevel: 'warning',
}

// The CLI: commander and the output module up front; everything a command does in one
// lazily loaded chunk; execa, ora and prompts only when used.
await build({
  ...common,
  entryPoints: { cli: 'src/cli/main.ts' },
  outdir: 'dist',
  splitting: true,
  chunkNames: 'chunks/[name]-[hash]',
})
// migrate's worker threads: one self-contained file each thread loads.
await build({
  ...common,
  entryPoints: { 'migrate-worker': 'src/migrate/worker-entry.ts' },
  outdir: 'dist',
  splitting: false,
})
// The library (and TENANCY_LIB for hooks): one file, its own lazy chunks.
await build({
  ...common,
  entryPoints: { index: 'src/index.ts' },
  outdir: 'dist',
  splitting: true,
  chunkNames: 'lib/[name]-[hash]',
})
