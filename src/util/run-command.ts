import { InterruptedError, TenancyError, messageOf } from '../errors.js'
import { OutputTail } from './output-tail.js'
import { exitText, runInGroup } from './process-group.js'

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
  const tail = new OutputTail()
  const push = (chunk: Buffer) => tail.push(chunk)
  // stdin: the input when given, else at once the end of it.
  const { outcome, durationMs } = await runInGroup('/bin/sh', ['-c', command], {
    cwd: options.cwd,
    env: options.env,
    timeoutSeconds: options.timeoutSeconds,
    signal: options.signal,
    input: options.input ?? '',
    onStdout: push,
    onStderr: push,
  })
  const output = tail.text().trim()
  const excerpt = tail.text(EXCERPT_BYTES).trim()
  const withOutput = (message: string) =>
    new CommandError(`${message}${excerpt ? `; output:\n${excerpt}` : ''}`, output)
  if (outcome.kind === 'abort') throw new InterruptedError(options.what)
  if (outcome.kind === 'timeout') throw withOutput(`${options.what} timed out after ${options.timeoutSeconds} s`)
  if (outcome.kind === 'error') throw withOutput(`${options.what} could not start: ${messageOf(outcome.error)}`)
  if (outcome.code !== 0) throw withOutput(`${options.what} ${exitText(outcome)}`)
  return { output, durationMs }
}
