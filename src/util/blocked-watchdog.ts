import { pathToFileURL } from 'node:url'
import type { Worker } from 'node:worker_threads'
import { lazyBuiltin } from './lazy-builtin.js'

/**
 * A watchdog for in-process code that blocks the thread: a module hook stuck in a synchronous
 * loop never yields, so neither its timeout's timer nor a signal handler can run, and the
 * command would hang for ever. The CLI turns it on (`stopWhenBlocked`); a library caller's
 * process is its own, so there it stays off.
 *
 * One worker thread keeps a timer per watch. A watch that ends in time is cancelled by a
 * message. One that does not means the main thread has run nothing for `GRACE_SECONDS` past
 * the code's own timeout: the worker then asks V8, through the inspector's session on the
 * main thread, to evaluate the stop there. The inspector's messages interrupt running
 * JavaScript (that is how a debugger pauses a loop), so the stop runs inside the loop and ends
 * the process at once: the state a `kill -9` leaves, which every command is built to be
 * finished from (leases expire, site transactions roll back), with a message and exit code 1
 * instead of a hang. Nothing else runs first: V8's `terminateExecution` would unwind the loop,
 * but it drops every pending promise continuation with it. Code blocked in a system call (an
 * `execSync`) runs no JavaScript to interrupt: two seconds later the worker writes the message
 * itself, kills the process's children and then the process (exit 137).
 *
 * Code a hook left running past its timeout (it ignored its signal) may block later, when no
 * watch covers it: while any is left, the main thread sends a heartbeat each second, and a
 * heartbeat missing for longer than that hook's timeout plus the grace stops the process too.
 */

/** Seconds past its timeout before blocked code is taken to be stuck. */
const GRACE_SECONDS = 5
/** The global the inspector evaluates in the main thread. */
const STOP = '__tenancyStopBlocked'

const workerThreads = lazyBuiltin<typeof import('node:worker_threads')>('node:worker_threads')

/** What the CLI does with blocked code. */
export interface BlockedHandling {
  /** Called inside the blocked code: reports `message` synchronously and ends the process. */
  stop(message: string): never
  /** What to write, from the watchdog's thread, when the code cannot be interrupted. */
  render(message: string): { stdout: string; stderr: string }
}

/**
 * What a stopped watch records before the process ends: `{[key]: {sha256, site, at}}` added to
 * the JSON file `path`, `sha256` of `file` (apps/blocked-hooks.ts reads and writes it). `write`
 * does it from the main thread; the watchdog's thread does it from `entry` when the code is
 * blocked in a system call and no JavaScript of the main thread can run.
 */
export interface BlockedRecord {
  entry: { path: string; key: string; file: string; site: string }
  write(): void
}

let handling: BlockedHandling | undefined
let watchdog: Worker | undefined
let ids = 0
const watches = new Map<number, { message: string; record?: BlockedRecord }>()
const leftovers = new Map<number, { what: string; message: string; file?: string }>()
let heartbeat: NodeJS.Timeout | undefined

// The worker's whole code (CommonJS, evaluated).
const WORKER = `
const { parentPort } = require('node:worker_threads')
const { readFileSync, readdirSync, renameSync, writeFileSync, writeSync } = require('node:fs')
const { createHash } = require('node:crypto')
const timers = new Map()
const leftovers = new Map()
let lastBeat = Date.now()
let stopping = false
/** The process's descendants, children first (Linux /proc; elsewhere none). */
function descendants(pid) {
  const found = []
  let tasks = []
  try { tasks = readdirSync('/proc/' + pid + '/task') } catch { return found }
  for (const task of tasks) {
    let children = ''
    try { children = readFileSync('/proc/' + pid + '/task/' + task + '/children', 'utf8') } catch {}
    for (const child of children.split(' ').filter(Boolean).map(Number)) found.push(child, ...descendants(child))
  }
  return found
}
/** Adds { [key]: { sha256 of file, site, at } } to the JSON file at path (best effort). */
function record(entry) {
  try {
    let all = {}
    try { all = JSON.parse(readFileSync(entry.path, 'utf8')) } catch {}
    if (!all || typeof all !== 'object' || Array.isArray(all)) all = {}
    let sha256 = ''
    try { sha256 = createHash('sha256').update(readFileSync(entry.file)).digest('hex') } catch {}
    all[entry.key] = { sha256, site: entry.site, at: new Date().toISOString() }
    const tmp = entry.path + '.' + process.pid + '.tmp'
    writeFileSync(tmp, JSON.stringify(all, null, 2) + '\\n', { mode: 0o600 })
    renameSync(tmp, entry.path)
  } catch {}
}
function stop(id, text, entry) {
  if (stopping) return
  stopping = true
  try {
    const { Session } = require('node:inspector')
    const session = new Session()
    session.connectToMainThread()
    session.post('Runtime.evaluate', { expression: 'globalThis.${STOP}(' + id + ')' })
  } catch {}
  // Still here: blocked in a system call. Record and say it from this thread, then end it all.
  setTimeout(() => {
    if (entry) record(entry)
    try { if (text.stdout) writeSync(1, text.stdout) } catch {}
    try { writeSync(2, text.stderr) } catch {}
    for (const pid of descendants(process.pid)) try { process.kill(pid, 'SIGKILL') } catch {}
    process.kill(process.pid, 'SIGKILL')
  }, 2000)
}
parentPort.on('message', (m) => {
  if (m.beat) lastBeat = Date.now()
  else if (m.arm) timers.set(m.id, setTimeout(() => stop(m.id, m.text, m.record), m.ms))
  else if (m.disarm) { clearTimeout(timers.get(m.id)); timers.delete(m.id) }
  else if (m.leftover) { lastBeat = Date.now(); leftovers.set(m.id, m) }
  else if (m.settled) leftovers.delete(m.id)
})
setInterval(() => {
  for (const left of leftovers.values()) if (Date.now() - lastBeat > left.ms) return stop(left.id, left.text)
}, 1000)
`

/**
 * Turns the watchdog on for this process (the CLI): blocked code is handed to `handling`.
 */
export function stopWhenBlocked(given: BlockedHandling): void {
  handling = given
}

/**
 * What blocked, found from inside it (the stop runs on top of the blocked code's stack): the
 * watch or leftover whose module is on the stack, else the one whose time ran out (`id`), with
 * any code left running named as a suspect.
 */
function blame(id: number): { message: string; record?: BlockedRecord } {
  const limit = Error.stackTraceLimit
  Error.stackTraceLimit = 200
  const stack = new Error().stack ?? ''
  Error.stackTraceLimit = limit
  const onStack = (file: string | undefined) =>
    file !== undefined && (stack.includes(pathToFileURL(file).href) || stack.includes(file))
  type Suspect = { id: number; message: string; record?: BlockedRecord; file?: string; label: string }
  const suspects: Suspect[] = [
    ...[...watches].map(([key, w]) => ({
      id: key,
      ...w,
      file: w.record?.entry.file,
      label: `the same hook on site "${w.record?.entry.site}"`,
    })),
    ...[...leftovers].map(([key, l]) => ({
      id: key,
      message: l.message,
      file: l.file,
      label: `code left running by ${l.what}`,
    })),
  ]
  // On the stack: the code that loops (two calls of one module cannot be told apart by it).
  let found = suspects.filter((x) => onStack(x.file))
  if (found.length === 0) found = suspects.filter((x) => x.id === id || leftovers.has(x.id))
  // Of calls the stack cannot tell apart, code that already ignored its timeout is the likelier.
  const chosen = found.find((x) => leftovers.has(x.id)) ?? found.find((x) => x.id === id) ?? found[0]
  if (!chosen) return { message: 'tenancy was blocked past a timeout' }
  const others = found.filter((x) => x !== chosen).map((x) => x.label)
  const message = others.length === 0 ? chosen.message : `${chosen.message} (or ${others.join(', ')} did)`
  return { message, record: chosen.record }
}

/**
 * Starts the watchdog's thread (when it is on) ahead of the module hooks a command is about
 * to run: its start then overlaps the work before them, not the end of the process (a thread
 * still starting when the process exits holds the exit up). Returns whether it is on.
 */
export function startWatchdog(): boolean {
  const handle = handling
  if (!handle) return false
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
    ;(globalThis as Record<string, unknown>)[STOP] = (id: number) => {
      const blamed = blame(id)
      blamed.record?.write()
      handle.stop(blamed.message)
    }
  }
  return true
}

/**
 * Watches code that should settle within `timeoutSeconds` (it has its own timer for that):
 * if the thread is still blocked `GRACE_SECONDS` after, the process is stopped with `message`,
 * `record` written first. Returns the function that
 * ends the watch. Does nothing unless `stopWhenBlocked` was called.
 */
export function watchForBlocking(timeoutSeconds: number, message: string, record?: BlockedRecord): () => void {
  if (!startWatchdog()) return () => {}
  const id = ++ids
  watches.set(id, { message, record })
  const ms = (timeoutSeconds + GRACE_SECONDS) * 1000
  watchdog!.postMessage({ arm: true, id, ms, text: handling!.render(message), record: record?.entry })
  return () => {
    watches.delete(id)
    watchdog?.postMessage({ disarm: true, id })
  }
}

/**
 * Watches code left running after its timeout (`what`: the hook that left it) until `running`
 * settles: should it block the thread for longer than `timeoutSeconds` plus the grace, the
 * process is stopped, naming it.
 */
export function watchLeftover(what: string, timeoutSeconds: number, running: Promise<unknown>, file?: string): void {
  if (!startWatchdog()) return
  const id = ++ids
  const message =
    `code that ${what} left running after its timeout (it ignored its signal) blocked the process for over ` +
    `${timeoutSeconds + GRACE_SECONDS} s, so tenancy stopped where it was; make the hook await its work and ` +
    'return, or declare it as a command, then run the command again to go on'
  leftovers.set(id, { what, message, file })
  const ms = (timeoutSeconds + GRACE_SECONDS) * 1000
  watchdog!.postMessage({ leftover: true, id, ms, text: handling!.render(message) })
  heartbeat ??= setInterval(() => watchdog?.postMessage({ beat: true }), 1000).unref()
  const settled = () => {
    leftovers.delete(id)
    watchdog?.postMessage({ settled: true, id })
    if (leftovers.size === 0 && heartbeat) {
      clearInterval(heartbeat)
      heartbeat = undefined
    }
  }
  running.then(settled, settled)
}
