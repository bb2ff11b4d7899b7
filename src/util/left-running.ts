/**
 * Work a command stopped waiting for that may still be running in this process: a module
 * hook past its timeout (code in-process cannot be killed as a child can). The CLI ends the
 * process when a command leaves any, so a hook's forgotten timer cannot keep it alive.
 */
let count = 0

/** Records one piece of work left running. */
export function leaveRunning(): void {
  count++
}

/** How many pieces of work this process left running. */
export function leftRunning(): number {
  return count
}
