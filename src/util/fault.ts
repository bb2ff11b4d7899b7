/**
 * Crash-test hook: when `TENANCY_FAULT` names this point, the process kills itself with
 * SIGKILL here, exactly as a crash would. Used by the test suite to prove that the next
 * command finishes or undoes the interrupted work; a no-op otherwise.
 */
export function faultPoint(name: string): void {
  if (process.env.TENANCY_FAULT === name) process.kill(process.pid, 'SIGKILL')
}

/**
 * Whether `TENANCY_FAULT` names this point, for faults that change behaviour instead of
 * killing: `short-write` makes file writes short (as a nearly full disk does), `disk-full`
 * makes the first write short and the next one fail with ENOSPC.
 */
export function faultActive(name: string): boolean {
  return process.env.TENANCY_FAULT === name
}
