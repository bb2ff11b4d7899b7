import type { Worker } from 'node:worker_threads'
import { lazyBuiltin } from './lazy-builtin.js'

/**
 * A watchdog for in-process code that blocks the thread: a module hook stuck in a synchronous
 * loop never yields, so neither its timeout's timer nor a signal handler can run, and the
 * command would hang for ever. The CLI turns it on (`stopWhenBlocked`); a library caller's
 * process is its own, so there it stays off.
 *
 * One worker thread, started with the first watch, keeps a timer per watch. A watch that ends
 * in time is cancelled by a message. One that does not means the main thread has run nothing
 * for `graceSeconds` past the code's own timeout: the worker then asks V8, through the
 * inspector's session on the main thread, to evaluate `stop` there. The inspector's messages
 * interrupt running JavaScript (that is how a debugger pauses a loop), so `stop` runs inside
 * the loop and ends the process at once: the same state a `kill -9` leaves, which every command
 * is built to be finished from (leases expire, site transactions roll back), with a message
 * and exit code 1 instead of a hang. Nothing else runs first: V8's `terminateExecution`
 * would unwind the loop, but it drops every pending promise continuation with it.
 */

/** Seconds past its timeout before blocked code is taken to be stuck. */
const GRACE_SECONDS = 5
/** The global the inspector evaluates in the main thread. */
const STOP = '__tenancyStopBlocked'

const workerThreads = lazyBuiltin<typeof import('node:worker_threads')>('node:worker_threads')

let onBlocked: ((message: string) => never) | undefined
let watchdog: Worker | undefined
let watches = 0
const messages = new Map<number, string>()

// The worker's whole code (CommonJS, evaluated): timers, then the inspector's evaluate; if
// that cannot be done (no inspector in this Node), or the process is still alive two seconds
// later, SIGKILL.
const WORKER = `
const { parentPort } = require('node:worker_threads')
const timers = new Map()
parentPort.on('message', ({ id, ms }) => {
  if (ms === undefined) { clearTimeout(timers.get(id)); timers.delete(id); return }
  timers.set(id, setTimeout(() => {
    try {
      const { Session } = require('node:inspector')
      const session = new Session()
      session.connectToMainThread()
      session.post('Runtime.evaluate', { expression: 'globalThis.${STOP}(' + id + ')' })
    } catch {}
    setTimeout(() => process.kill(process.pid, 'SIGKILL'), 2000)
  }, ms))
})
`

/**
 * Turns the watchdog on for this process: blocked code is handed to `stop(message)`, called
 * inside the blocked code, which must report it synchronously and end the process.
 */
export function stopWhenBlocked(stop: (message: string) => never): void {
  onBlocked = stop
}

/**
 * Watches code that should settle within `timeoutSeconds` (it has its own timer for that):
 * if the thread is still blocked `GRACE_SECONDS` after, the process is stopped with `message`.
 * Returns the function that ends the watch. Does nothing unless `stopWhenBlocked` was called.
 */
export function watchForBlocking(timeoutSeconds: number, message: string): () => void {
  if (!startWatchdog()) return () => {}
  const id = ++watches
  messages.set(id, message)
  watchdog!.postMessage({ id, ms: (timeoutSeconds + GRACE_SECONDS) * 1000 })
  return () => {
    messages.delete(id)
    watchdog?.postMessage({ id })
  }
}

/**
 * Starts the watchdog's thread (when it is on) ahead of the module hooks a command is about
 * to run: its start then overlaps the work before them, not the end of the process (a thread
 * still starting when the process exits holds the exit up). Returns whether it is on.
 */
export function startWatchdog(): boolean {
  const report = onBlocked
  if (!report) return false
  if (!watchdog) {
    watchdog = new (workerThreads().Worker)(WORKER, {
      eval: true,
      env: workerThreads().SHARE_ENV,
      stdout: false,
      stderr: false,
    })
    // The watchdog never keeps the process alive, and a worker that failed to start is no reason to fail.
    watchdog.unref()
    watchdog.on('error', () => {})
    ;(globalThis as Record<string, unknown>)[STOP] = (id: number) =>
      report(messages.get(id) ?? 'tenancy was blocked past a timeout')
  }
  return true
}
