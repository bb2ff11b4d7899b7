import { delimiter, dirname } from 'node:path'
import { InterruptedError, TenancyError, messageOf } from '../errors.js'
import { OutputTail } from './output-tail.js'

/**
 * Names of environment variables that hold secrets (case-insensitive): never passed on to hooks, steps
 * or notify commands.
 */
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

/** How much of a failed command's output its error message quotes (the whole tail is `CommandError.output`). */
const EXCERPT_BYTES = 2000

/** A command that failed or timed out: the message quotes the end of its output, `output` keeps its capped tail. */
export class CommandError extends TenancyError {
  readonly output: string

  constructor(message: string, output: string) {
    super(message)
    this.name = 'CommandError'
    this.output = output
  }
}

/** The output of the failed command behind `error` (itself or a cause of it), if one is. */
export function failedCommandOutput(error: unknown): string | undefined {
  for (let e = error; e instanceof Error; e = e.cause) if (e instanceof CommandError) return e.output
  return undefined
}

export interface CommandResult {
  output: string
  durationMs: number
}

/** After SIGTERM, how long a command's process group has before SIGKILL. */
const KILL_GRACE_MS = 2000
/** After the group is gone, how long a descendant that left it may keep the pipes open. */
const PIPE_GRACE_MS = 200

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** Whether any process of process group `pgid` is still there. */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal)
  } catch {
    // Already gone.
  }
}

/** SIGTERM to the group, SIGKILL to whatever is left of it after `KILL_GRACE_MS`. */
async function stopGroup(pgid: number): Promise<void> {
  signalGroup(pgid, 'SIGTERM')
  const deadline = Date.now() + KILL_GRACE_MS
  while (groupAlive(pgid) && Date.now() < deadline) await delay(50)
  if (groupAlive(pgid)) signalGroup(pgid, 'SIGKILL')
}

/**
 * Runs a configured command (a hook, a `run` step, a notify command) through `/bin/sh`, as
 * cron or CI would, so quotes, pipes and `$TENANCY_SITE` work; `node` is this Node (its
 * directory leads PATH). Names travel in the environment, never secrets in argv. It is done
 * when its output closes; the last 64 KiB of stdout and stderr are kept (`OutputTail`). At
 * the timeout or an abort its process group is stopped and tenancy stops waiting on the
 * pipes, even when a descendant that left the group (`setsid`, a daemon) still holds them.
 * A failure or timeout throws an error carrying the output's tail.
 */
export async function runCommand(
  command: string,
  options: {
    cwd: string
    env: Record<string, string>
    timeoutSeconds: number
    what: string
    signal?: AbortSignal
    input?: string
  },
): Promise<CommandResult> {
  if (command.trim() === '') throw new TenancyError(`${options.what}: the command is empty`)
  const { spawn } = await import('node:child_process')
  const started = performance.now()
  const path = [dirname(process.execPath), options.env.PATH ?? ''].filter(Boolean).join(delimiter)
  // Its own process group (detached), so a timeout or Ctrl-C stops the shell and everything it started.
  const child = spawn('/bin/sh', ['-c', command], {
    cwd: options.cwd,
    env: { ...options.env, PATH: path },
    detached: true,
    stdio: ['pipe', 'pipe', 'pipe'],
  })
  // stdin: the input when given, else at once the end of it. A command that does not read it
  // (and exits first) must not fail the write.
  child.stdin.on('error', () => {})
  child.stdin.end(options.input ?? '')
  const tail = new OutputTail()
  child.stdout.on('data', (chunk: Buffer) => tail.push(chunk))
  child.stderr.on('data', (chunk: Buffer) => tail.push(chunk))
  // 'close': the shell has exited and every process holding its stdout and stderr closed them.
  const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null } | Error>((resolve) => {
    child.once('close', (code: number | null, signal: NodeJS.Signals | null) => resolve({ code, signal }))
    child.once('error', resolve)
  })
  let halt!: (why: 'timeout' | 'abort') => void
  const halted = new Promise<'timeout' | 'abort'>((resolve) => (halt = resolve))
  const timer = setTimeout(() => halt('timeout'), options.timeoutSeconds * 1000)
  const onAbort = () => halt('abort')
  if (options.signal?.aborted) onAbort()
  options.signal?.addEventListener('abort', onAbort, { once: true })
  let outcome
  try {
    outcome = await Promise.race([closed, halted])
    if (typeof outcome === 'string' && child.pid !== undefined) {
      await stopGroup(child.pid)
      await Promise.race([closed, delay(PIPE_GRACE_MS)])
    }
  } finally {
    clearTimeout(timer)
    options.signal?.removeEventListener('abort', onAbort)
    child.stdout.destroy()
    child.stderr.destroy()
  }
  const output = tail.text().trim()
  const excerpt = tail.text(EXCERPT_BYTES).trim()
  const withOutput = (message: string) =>
    new CommandError(`${message}${excerpt ? `; output:\n${excerpt}` : ''}`, output)
  if (outcome === 'abort') throw new InterruptedError(options.what)
  if (outcome === 'timeout') throw withOutput(`${options.what} timed out after ${options.timeoutSeconds} s`)
  if (outcome instanceof Error) throw withOutput(`${options.what} could not start: ${messageOf(outcome)}`)
  if (outcome.code !== 0) {
    const why =
      outcome.code === 127
        ? 'could not find its program (exit 127)'
        : outcome.code !== null
          ? `exited with code ${outcome.code}`
          : `was killed by ${outcome.signal ?? 'a signal'}`
    throw withOutput(`${options.what} ${why}`)
  }
  return { output, durationMs: performance.now() - started }
}
