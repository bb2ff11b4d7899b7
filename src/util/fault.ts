/**
 * Crash-test hook: when `TENANCY_FAULT` names this point, the process kills itself with
 * SIGKILL here, exactly as a crash would. Used by the test suite to prove that the next
 * command finishes or undoes the interrupted work; a no-op otherwise.
 */
export function faultPoint(name: string): void {
  if (process.env.TENANCY_FAULT === name) process.kill(process.pid, 'SIGKILL')
}
