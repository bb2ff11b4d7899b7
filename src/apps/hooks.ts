import { delimiter, dirname } from 'node:path'
import type { Bench } from '../bench.js'
import { InterruptedError, TenancyError } from '../errors.js'
import { libraryPath } from '../util/library-path.js'
import type { AppManifest } from './manifest.js'

/** Names of environment variables that hold secrets (case-insensitive): never passed on to hooks, steps or notify commands. */
const SECRET_NAME = /(pass|pwd|secret|token|credential|private|_key$|^key$|auth|cookie|session)/i
/** Harmless names that the pattern above would catch. */
const NOT_SECRET = new Set(['PWD', 'OLDPWD', 'SSH_AUTH_SOCK', 'XAUTHORITY'])
/** Values that carry credentials whatever their name: `scheme://user:password@host`. */
const CREDENTIAL_URL = /\/\/[^/\s:@]+:[^@\s]+@/

/** The parent's environment minus anything that looks like a secret, plus `extra`. */
export function childEnvironment(env: NodeJS.ProcessEnv, extra: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined || k === 'TENANCY_REGISTRY_URL' || CREDENTIAL_URL.test(v)) continue
    if (SECRET_NAME.test(k) && !NOT_SECRET.has(k)) continue
    out[k] = v
  }
  return { ...out, ...extra }
}

export interface CommandResult {
  output: string
  durationMs: number
}

/**
 * Runs a configured command (a hook, a `run` step, a notify command) with execa through
 * `/bin/sh`, as cron or CI would, so quotes, pipes and `$TENANCY_SITE` work; `node` is this
 * Node (its directory leads PATH). Names travel in the environment, never secrets in argv.
 * Output is captured; a failure or timeout throws an error carrying the output's tail.
 */
export async function runCommand(
  command: string,
  options: { cwd: string; env: Record<string, string>; timeoutSeconds: number; what: string; signal?: AbortSignal; input?: string },
): Promise<CommandResult> {
  const { execa } = await import('execa')
  if (command.trim() === '') throw new TenancyError(`${options.what}: the command is empty`)
  const started = performance.now()
  const path = [dirname(process.execPath), options.env.PATH ?? ''].filter(Boolean).join(delimiter)
  // Its own process group, so a timeout or Ctrl-C stops the shell and everything it started.
  const child = execa(command, {
    shell: true,
    detached: true,
    cwd: options.cwd,
    env: { ...options.env, PATH: path },
    extendEnv: false,
    all: true,
    reject: false,
    ...(options.input !== undefined ? { input: options.input } : { stdin: 'ignore' as const }),
  })
  let timedOut = false
  let canceled = false
  const stop = () => {
    const signal = (name: NodeJS.Signals) => {
      try {
        if (child.pid) process.kill(-child.pid, name)
      } catch {
        // Already gone.
      }
    }
    signal('SIGTERM')
    setTimeout(() => signal('SIGKILL'), 2000).unref()
  }
  const timer = setTimeout(() => {
    timedOut = true
    stop()
  }, options.timeoutSeconds * 1000)
  const onAbort = () => {
    canceled = true
    stop()
  }
  if (options.signal?.aborted) onAbort()
  options.signal?.addEventListener('abort', onAbort, { once: true })
  let result
  try {
    result = await child
  } finally {
    clearTimeout(timer)
    options.signal?.removeEventListener('abort', onAbort)
  }
  const output = (result.all ?? '').toString().trim()
  const tail = output.length > 2000 ? `…${output.slice(-2000)}` : output
  if (canceled) throw new InterruptedError(options.what)
  if (timedOut) throw new TenancyError(`${options.what} timed out after ${options.timeoutSeconds} s${tail ? `; output:\n${tail}` : ''}`)
  if (result.failed) {
    const why =
      result.exitCode === 127
        ? `could not find its program (exit 127)`
        : result.exitCode !== undefined
          ? `exited with code ${result.exitCode}`
          : result.signal
            ? `was killed by ${result.signal}`
            : result.shortMessage
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
