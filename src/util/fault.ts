/** How long `TENANCY_FAULT=pause:NAME` holds the process at NAME. */
const PAUSE_MS = 1500

/**
 * Crash-test hook: when `TENANCY_FAULT` names this point, the process kills itself with
 * SIGKILL here, exactly as a crash would; with `pause:NAME` it stops here for 1.5 s, frozen
 * like a stalled process, so a test can take a database server away at this very point.
 * Used by the test suite to prove that the next command finishes or undoes the interrupted
 * work; a no-op otherwise.
 */
export function faultPoint(name: string): void {
  const fault = process.env.TENANCY_FAULT
  if (fault === name) process.kill(process.pid, 'SIGKILL')
  if (fault === `pause:${name}`) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, PAUSE_MS)
}

/**
 * Whether `TENANCY_FAULT` names this point, for faults that change behaviour instead of
 * killing: `short-write` makes file writes short (as a nearly full disk does), `disk-full`
 * makes the first write short and the next one fail with ENOSPC.
 */
export function faultActive(name: string): boolean {
  return process.env.TENANCY_FAULT === name
}
