import { spawn } from 'node:child_process'
import { delimiter, dirname } from 'node:path'

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

/** The process groups of children still running, stopped if tenancy exits first (`| head` closing stdout, a crash). */
const running = new Set<number>()
let stopOnExit = false

function track(pgid: number): void {
  running.add(pgid)
  if (stopOnExit) return
  stopOnExit = true
  // A child in a group of its own would outlive tenancy; 'exit' handlers must be synchronous.
  process.once('exit', () => {
    for (const group of running) signalGroup(group, 'SIGTERM')
  })
}

/**
 * How a child in its own process group ended: it exited (or a signal it did not get from us
 * killed it), it outlived its timeout, the run was aborted, or it could not start.
 */
export type GroupOutcome =
  | { kind: 'exited'; code: number | null; signal: NodeJS.Signals | null }
  | { kind: 'timeout' }
  | { kind: 'abort' }
  | { kind: 'error'; error: Error }

/** How a command that did not succeed ended, for messages: `exited with code 3`, `was killed by SIGKILL`. */
export function exitText(exit: { code: number | null; signal: NodeJS.Signals | null }): string {
  return exit.code === 127
    ? 'could not find its program (exit 127)'
    : exit.code !== null
      ? `exited with code ${exit.code}`
      : `was killed by ${exit.signal ?? 'a signal'}`
}

export interface GroupOptions {
  cwd: string
  env: Record<string, string>
  /** Seconds until the group is stopped and the child counts as timed out; none: no deadline. */
  timeoutSeconds?: number
  /** Aborting stops the group (SIGTERM, then SIGKILL after 2 s). */
  signal?: AbortSignal
  /** What the child reads on stdin; none: /dev/null, so a question it asks gets end-of-file at once. */
  input?: string
  onStdout: (chunk: Buffer) => void
  onStderr: (chunk: Buffer) => void
  /**
   * A child that had already exited 0 when the abort came (its output still held by a process
   * it left) ends as `exited`, not `abort`: `run` then records its site as done, and a worker
   * stopped just then does not hand the site to the next one to run again.
   */
  finishedBeatsAbort?: boolean
}

/**
 * Runs `file` with `args` (no shell) in a process group of its own, so that a timeout or an
 * abort stops it with everything it started; `node` is this Node (its directory leads PATH).
 * It is done when its output closes. At the timeout or an abort tenancy stops waiting on the
 * pipes too, even when a descendant that left the group (`setsid`, a daemon) still holds them.
 * Never throws: how it ended is the outcome.
 */
export async function runInGroup(
  file: string,
  args: readonly string[],
  options: GroupOptions,
): Promise<{ outcome: GroupOutcome; durationMs: number }> {
  const started = performance.now()
  const path = [dirname(process.execPath), options.env.PATH ?? ''].filter(Boolean).join(delimiter)
  const child = spawn(file, args, {
    cwd: options.cwd,
    env: { ...options.env, PATH: path },
    detached: true,
    stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  })
  if (child.pid !== undefined) track(child.pid)
  if (child.stdin) {
    // A command that does not read its input (and exits first) must not fail the write.
    child.stdin.on('error', () => {})
    child.stdin.end(options.input)
  }
  // Both are pipes (stdio above), whatever stdin is.
  const stdout = child.stdout!
  const stderr = child.stderr!
  stdout.on('data', options.onStdout)
  stderr.on('data', options.onStderr)
  // 'close': the child has exited and every process holding its stdout and stderr closed them.
  const closed = new Promise<GroupOutcome>((resolve) => {
    child.once('close', (code: number | null, signal: NodeJS.Signals | null) =>
      resolve({ kind: 'exited', code, signal }),
    )
    child.once('error', (error) => resolve({ kind: 'error', error }))
  })
  let halt!: (outcome: GroupOutcome) => void
  const halted = new Promise<GroupOutcome>((resolve) => (halt = resolve))
  const timer =
    options.timeoutSeconds === undefined
      ? undefined
      : setTimeout(() => halt({ kind: 'timeout' }), options.timeoutSeconds * 1000)
  let doneBeforeAbort = false
  const onAbort = () => {
    doneBeforeAbort = options.finishedBeatsAbort === true && child.exitCode === 0
    halt({ kind: 'abort' })
  }
  if (options.signal?.aborted) onAbort()
  options.signal?.addEventListener('abort', onAbort, { once: true })
  let outcome: GroupOutcome
  try {
    outcome = await Promise.race([closed, halted])
    if ((outcome.kind === 'timeout' || outcome.kind === 'abort') && child.pid !== undefined) {
      await stopGroup(child.pid)
      await Promise.race([closed, delay(PIPE_GRACE_MS)])
      if (outcome.kind === 'abort' && doneBeforeAbort) outcome = { kind: 'exited', code: 0, signal: null }
    }
  } finally {
    clearTimeout(timer)
    if (child.pid !== undefined) running.delete(child.pid)
    options.signal?.removeEventListener('abort', onAbort)
    stdout.destroy()
    stderr.destroy()
  }
  return { outcome, durationMs: performance.now() - started }
}
