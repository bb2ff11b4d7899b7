import { existsSync } from 'node:fs'
import { fileURLToPath, pathToFileURL } from 'node:url'

/**
 * The absolute path of tenancy's built library (`dist/index.js`), handed to hooks and `run`
 * steps as `TENANCY_LIB`. The code calling this may sit in `dist/`, `dist/chunks/` or, under
 * the test runner, `src/…`.
 */
export function libraryPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.TENANCY_LIB) return env.TENANCY_LIB
  for (const candidate of ['./index.js', '../index.js', '../../dist/index.js', '../dist/index.js']) {
    const path = fileURLToPath(new URL(candidate, import.meta.url))
    if (existsSync(path) && /dist[\\/]index\.js$/.test(path)) return path
  }
  return fileURLToPath(new URL('../../dist/index.js', import.meta.url))
}

/** The root of the tenancy package (where `apps/` with the example apps lives). */
export function packageRoot(env: NodeJS.ProcessEnv = process.env): string {
  return fileURLToPath(new URL('../', pathToFileURL(libraryPath(env))))
}
