// The import rules `npm run lint` checks (dependency-cruiser): no cycles, and each layer of
// src/ imports only the layers below it. ARCHITECTURE.md explains the layers.
/** Lowest first: a file may import its own layer and the ones before it, never one after. */
const LAYERS = [
  ['foundation', '^src/(errors|error-codes|names)\\.ts$|^src/util/'],
  ['config, secrets and output', '^src/(config|secrets|output)/'],
  ['database drivers', '^src/databases/'],
  ['registry', '^src/registry/'],
  ['bench', '^src/bench\\.ts$'],
  ['sites', '^src/sites/'],
  ['apps', '^src/apps/'],
  ['events', '^src/events/'],
  ['migrate', '^src/migrate/'],
  ['backups', '^src/backups/'],
  ['fleet', '^src/fleet/'],
  ['provisioning', '^src/provisioning/'],
  ['pool', '^src/pool/'],
  ['doctor', '^src/doctor/'],
  ['session', '^src/session\\.ts$'],
  ['entry points', '^src/cli/|^src/index\\.ts$'],
]

const layerRules = LAYERS.slice(0, -1).map(([name, path], i) => ({
  name: `layer: ${name}`,
  comment: `${name} may import only itself and the layers below it (${
    LAYERS.slice(0, i)
      .map(([n]) => n)
      .join(', ') || 'none'
  })`,
  severity: 'error',
  from: { path },
  to: {
    path: LAYERS.slice(i + 1)
      .map(([, p]) => `(${p})`)
      .join('|'),
  },
}))

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'an import cycle: move the shared piece down a layer',
      severity: 'error',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'output only from the entry points',
      comment: 'core functions return results; only src/cli (and src/index.ts) render them',
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/(cli|output)/|^src/index\\.ts$' },
      to: { path: '^src/output/' },
    },
    ...layerRules,
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js'] },
  },
}
