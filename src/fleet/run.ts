import type { Bench } from '../bench.js'
import { NODE, codeOf } from '../error-codes.js'
import { messageOf, usageError } from '../errors.js'
import type { SiteRecord } from '../registry/registry.js'
import { overSites, type FleetOptions } from '../sites/site-selection.js'
import { libraryPath } from '../util/library-path.js'
import { LineSplitter } from '../util/line-splitter.js'
import { OutputTail } from '../util/output-tail.js'
import { exitText, runInGroup, type GroupOutcome } from '../util/process-group.js'
import { childEnvironment } from '../util/run-command.js'

/** Which of a child's streams a line came from. */
export type OutputStream = 'stdout' | 'stderr'

export interface RunOptions extends FleetOptions<SiteRunResult> {
  /** The program and its arguments, run without a shell. Give this or `shell`. */
  command?: readonly string[]
  /** A command line for `/bin/sh -c`. Give this or `command`. */
  shell?: string
  /** Seconds each site's command may take; default `run.timeout` (3600). */
  timeoutSeconds?: number
  /** Keep each site's output (its last 64 KiB) in the result; default true. */
  keepOutput?: boolean
  /** Called with each whole line a site's command prints, as it prints it (without the newline). */
  onLine?: (site: string, stream: OutputStream, line: string) => void
}

/** One site's line of `tenancy run --json`. */
export interface SiteRunResult {
  site: string
  status: 'succeeded' | 'failed' | 'skipped' | 'interrupted' | 'unreachable'
  /** The command's exit code; null when it did not exit by itself (timed out, killed, never started). */
  exit_code: number | null
  /** The last 64 KiB of its stdout, after a line `[… N bytes cut]` when more was printed. */
  stdout: string
  stderr: string
  duration_ms: number
  error: string | null
}

/** `tenancy run --json` (SPEC §8). */
export interface RunResult {
  sites: SiteRunResult[]
  succeeded: number
  failed: number
  skipped: number
  /** Sites on a machine with no live worker (SPEC §10): not touched. */
  unreachable: number
  interrupted: boolean
  duration_ms: number
}

/** A site's output as it streams: its tail for the result, its lines for `onLine`. */
class SiteOutput {
  readonly #tail: OutputTail | undefined
  readonly #lines: LineSplitter | undefined

  constructor(keep: boolean, onLine: ((line: string) => void) | undefined) {
    this.#tail = keep ? new OutputTail() : undefined
    this.#lines = onLine ? new LineSplitter(onLine) : undefined
  }

  readonly push = (chunk: Buffer): void => {
    this.#tail?.push(chunk)
    this.#lines?.push(chunk)
  }

  /** Ends the last line and gives the kept tail. */
  end(): string {
    this.#lines?.end()
    return this.#tail?.text() ?? ''
  }
}

/**
 * `tenancy run`: runs one command once per selected site, `concurrency` at a time, in the bench
 * directory, with stdin closed (a question gets end-of-file, never a hang) and the site in its
 * environment (`TENANCY_SITE`, `TENANCY_SITE_PATH`, `TENANCY_DB_TYPE`, `TENANCY_BENCH_PATH`,
 * `TENANCY_LIB`) but no secret (`childEnvironment`). Each command runs in a process group of its
 * own, stopped whole at the timeout or on Ctrl-C. A site fails when its command exits non-zero,
 * is killed or times out; without `skipFailing` the first failure stops new sites from starting.
 *
 * @example
 * await runOnSites(bench, { sites: ['all'], command: ['node', 'report.mjs'], concurrency: 4 })
 */
export async function runOnSites(bench: Bench, options: RunOptions): Promise<RunResult> {
  const [file, ...args] = commandLine(options)
  const timeoutSeconds = options.timeoutSeconds ?? bench.config.run.timeout
  const baseEnv = childEnvironment(bench.env, {
    TENANCY_BENCH_PATH: bench.root,
    TENANCY_CONFIG: bench.configFile,
    TENANCY_LIB: libraryPath(bench.env),
  })
  const keep = options.keepOutput ?? true
  const onLine = options.onLine

  const runSite = async ({ name: site, db_type }: SiteRecord): Promise<SiteRunResult> => {
    const sitePath = bench.sitePath(site)
    const stdout = new SiteOutput(keep, onLine && ((line) => onLine(site, 'stdout', line)))
    const stderr = new SiteOutput(keep, onLine && ((line) => onLine(site, 'stderr', line)))
    const { outcome, durationMs } = await runInGroup(file!, args, {
      cwd: bench.root,
      env: { ...baseEnv, TENANCY_SITE: site, TENANCY_SITE_PATH: sitePath, TENANCY_DB_TYPE: db_type },
      timeoutSeconds,
      signal: options.signal,
      onStdout: stdout.push,
      onStderr: stderr.push,
      finishedBeatsAbort: true,
    })
    const { status, exit_code, error } = statusOf(outcome, { file: file!, timeoutSeconds })
    return {
      site,
      status,
      exit_code,
      stdout: stdout.end(),
      stderr: stderr.end(),
      duration_ms: Math.round(durationMs),
      error,
    }
  }

  return overSites<SiteRunResult, 'succeeded' | 'failed' | 'skipped' | 'unreachable'>(
    bench,
    options,
    {
      name: 'run',
      run: runSite,
      // Another machine runs the same command line there, its output kept in the result.
      remote: {
        command: 'run',
        payload: {
          command: options.command,
          shell: options.shell,
          timeoutSeconds: options.timeoutSeconds,
          skipFailing: options.skipFailing,
        },
      },
      blank: (site, status, error, duration_ms) => ({
        site,
        status,
        exit_code: null,
        stdout: '',
        stderr: '',
        duration_ms,
        error,
      }),
    },
    ['succeeded', 'failed', 'skipped', 'unreachable'],
  )
}

/** The program and arguments to run: the command as given, or `/bin/sh -c` with the shell line. */
function commandLine(options: RunOptions): string[] {
  const given = Boolean(options.command?.length)
  if (given && options.shell !== undefined)
    throw usageError('give the command after "--" or as --shell "cmd", not both')
  if (!given && options.shell === undefined)
    throw usageError('no command given: tenancy run --site S -- <command> [args…], or --shell "cmd" for /bin/sh')
  if (options.shell !== undefined) {
    if (options.shell.trim() === '') throw usageError('--shell "" is empty: give the command line for /bin/sh to run')
    return ['/bin/sh', '-c', options.shell]
  }
  if (options.command![0] === '') throw usageError('the command after "--" is empty: give a program to run')
  return [...options.command!]
}

/** A site's status, exit code and error from how its command ended. */
function statusOf(
  outcome: GroupOutcome,
  command: { file: string; timeoutSeconds: number },
): Pick<SiteRunResult, 'status' | 'exit_code' | 'error'> {
  switch (outcome.kind) {
    case 'exited':
      return outcome.code === 0
        ? { status: 'succeeded', exit_code: 0, error: null }
        : { status: 'failed', exit_code: outcome.code, error: `the command ${exitText(outcome)}` }
    case 'timeout':
      return {
        status: 'failed',
        exit_code: null,
        error: `timed out after ${command.timeoutSeconds} s; it was stopped with everything it started`,
      }
    case 'abort':
      return {
        status: 'interrupted',
        exit_code: null,
        error: 'interrupted while running; it was stopped with everything it started',
      }
    case 'error':
      return { status: 'failed', exit_code: null, error: startError(command.file, outcome.error) }
    default:
      return outcome satisfies never
  }
}

/** Why a program could not start, for a site's error: not found, not executable, or the system's reason. */
function startError(file: string, error: Error): string {
  const code = codeOf(error)
  if (code === NODE.ENOENT) return `could not start "${file}": no such program (not found in PATH)`
  if (code === NODE.EACCES) return `could not start "${file}": permission denied (is it executable?)`
  return `could not start "${file}": ${messageOf(error)}`
}
