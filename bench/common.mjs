// What the benchmark scripts share: the median, and a bench with the example apps.
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const ROOT = fileURLToPath(new URL('..', import.meta.url))
export const lib = await import(join(ROOT, 'dist', 'index.js'))

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

/** A bench with the example apps, plus `tenant_ops_nohook`: tenant_ops without its after_install hook. */
export function newBench(prefix = 'tenancy-bench-') {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  lib.initBench(dir, { withExampleApps: true })
  const copy = join(dir, 'apps', 'tenant_ops_nohook')
  cpSync(join(dir, 'apps', 'tenant_ops'), copy, { recursive: true })
  const manifest = JSON.parse(readFileSync(join(copy, 'app.json'), 'utf8'))
  writeFileSync(join(copy, 'app.json'), JSON.stringify({ ...manifest, name: 'tenant_ops_nohook', hooks: {} }))
  return dir
}
