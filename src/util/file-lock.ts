import { readFileSync, rmSync } from 'node:fs'
import { StorageError, TenancyError } from '../errors.js'
import { PROCESS_OWNER, ownerAlive } from './process-owner.js'
import { createFileOnce } from './json-file.js'

/** How long a command waits for another one's lock on a config file before it gives up. */
const LOCK_WAIT_MS = 10_000

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** The holder named in a lock file (`pid@host`), or undefined once it is gone. */
function holderOf(lock: string): string | undefined {
  try {
    return readFileSync(lock, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw error
  }
}

/**
 * Creates `lock` holding `PROCESS_OWNER` (whole, never seen empty), or returns false when it
 * exists. A lock guards live processes only, so its name is not made durable (one left by a
 * power cut names a dead holder and is taken over).
 */
const tryCreate = (lock: string): boolean => createFileOnce(lock, PROCESS_OWNER, 0o600, { durable: false })

/**
 * Removes `lock` if it still names `holder`, a process found dead on this host. Two takers
 * could otherwise both see the dead holder and the second remove the first one's new lock;
 * `<lock>.break`, itself taken the same way, lets only one of them look and remove at a time.
 */
function removeStale(lock: string, holder: string): boolean {
  const breaker = `${lock}.break`
  if (!tryCreate(breaker)) {
    const breakerHolder = holderOf(breaker)
    if (breakerHolder !== undefined && ownerAlive(breakerHolder) === false) rmSync(breaker, { force: true })
    return false
  }
  try {
    if (holderOf(lock) === holder) rmSync(lock, { force: true })
    return true
  } finally {
    rmSync(breaker, { force: true })
  }
}

/**
 * Runs `fn` holding `<file>.lock`, so read-modify-writes of `file` by concurrent commands do
 * not lose each other's changes: `fn` must read the file itself, after the lock is taken. A
 * lock left by a process that died on this host is taken over; one held longer than 10 s by
 * a live (or another host's) process is an error naming it.
 */
export async function withFileLock<T>(file: string, fn: () => Promise<T> | T): Promise<T> {
  const lock = `${file}.lock`
  const deadline = Date.now() + LOCK_WAIT_MS
  let wait = 5
  for (;;) {
    let created: boolean
    try {
      created = tryCreate(lock)
    } catch (error) {
      // No room even for the lock: say so of the file the command wanted to write.
      if (error instanceof StorageError && error.problem === 'disk_full') {
        throw new StorageError(
          `disk full: cannot write the file ${file}; free some space on its filesystem and run the command again`,
          { file, problem: 'disk_full', cause: error },
        )
      }
      throw error
    }
    if (created) break
    const holder = holderOf(lock)
    if (holder === undefined) continue
    if (ownerAlive(holder) === false && removeStale(lock, holder)) continue
    if (Date.now() >= deadline) {
      throw new TenancyError(
        `${lock} is held by ${holder} for more than ${LOCK_WAIT_MS / 1000} s; ` +
          `wait for that command to finish, or remove the lock file if that process is gone`,
      )
    }
    await delay(wait + Math.random() * wait)
    wait = Math.min(wait * 2, 100)
  }
  try {
    return await fn()
  } finally {
    // Only our own lock: never one another process took over meanwhile.
    if (holderOf(lock) === PROCESS_OWNER) rmSync(lock, { force: true })
  }
}
