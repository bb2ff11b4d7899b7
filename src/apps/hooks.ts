import type { Bench } from '../bench.js'
import { InterruptedError, TenancyError } from '../errors.js'
import { libraryPath } from '../util/library-path.js'
import type { AppManifest } from './manifest.js'

/** Environment variables that hold secrets: never passed on to hooks or `run` steps. */
const SECRET_ENV = /^(TENANCY_(DB_ROOT_PASSWORD|ADMIN_PASSWORD|ENCRYPTION_KEY)|.*_(PASSWORD|SECRET))$/

/** The parent's environment minus secrets, plus `extra`. */
export function childEnvironment(env: NodeJS.ProcessEnv, extra: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(env)) if (v !== undefined && !SECRET_ENV.test(k)) out[k] = v
  return { ...out, ...extra }
}

export interface CommandResult {
  output: string
  durationMs: number
}

/**
 * Runs a configured command (a hook or a `run` step) with execa, without a shell: the
 * command string is split into words, `node` means this Node. Names travel in the
 * environment, never secrets in argv. Output is captured; a failure or timeout throws an
 * error carrying the output's tail.
 */
export async function runCommand(
  command: string,
  options: { cwd: string; env: Record<string, string>; timeoutSeconds: number; what: string; signal?: AbortSignal },
): Promise<CommandResult> {
  const { execa, parseCommandString } = await import('execa')
  const [file, ...args] = parseCommandString(command)
  if (!file) throw new TenancyError(`${options.what}: the command is empty`)
  const started = performance.now()
  const result = await execa(file === 'node' ? process.execPath : file, args, {
    cwd: options.cwd,
    env: options.env,
    extendEnv: false,
    timeout: options.timeoutSeconds * 1000,
    all: true,
    reject: false,
    stdin: 'ignore',
    cancelSignal: options.signal,
    forceKillAfterDelay: 2000,
  })
  const output = (result.all ?? '').toString().trim()
  const tail = output.length > 2000 ? `…${output.slice(-2000)}` : output
  if (result.isCanceled) throw new InterruptedError(options.what)
  if (result.timedOut) throw new TenancyError(`${options.what} timed out after ${options.timeoutSeconds} s${tail ? `; output:\n${tail}` : ''}`)
  if (result.failed) {
    const why = result.exitCode !== undefined ? `exited with code ${result.exitCode}` : result.code === 'ENOENT' ? `could not start "${file}" (not found)` : (result.signal ? `was killed by ${result.signal}` : result.shortMessage)
    throw new TenancyError(`${options.what} ${why}${tail ? `; output:\n${tail}` : ''}`)
  }
  return { output, durationMs: performance.now() - started }
}

/** Runs an app's `after_install` hook for a site. Returns undefined when the app has none. */
export async function runAfterInstall(
  bench: Bench,
  app: AppManifest,
  site: { name: string; path: string; dbType: string },
  signal?: AbortSignal,
): Promise<CommandResult | undefined> {
  const command = app.hooks.after_install
  if (!command) return undefined
  return runCommand(command, {
    cwd: app.path,
    what: `the after_install hook of app "${app.name}" on site "${site.name}"`,
    timeoutSeconds: bench.config.provision.step_timeout,
    signal,
    env: childEnvironment(bench.env, {
      TENANCY_BENCH_PATH: bench.root,
      TENANCY_SITE: site.name,
      TENANCY_SITE_PATH: site.path,
      TENANCY_APP: app.name,
      TENANCY_APP_PATH: app.path,
      TENANCY_DB_TYPE: site.dbType,
      TENANCY_LIB: libraryPath(bench.env),
    }),
  })
}
