import { hostname } from 'node:os'

/** Who we are, for intent rows and leases: `pid@hostname`. */
export const PROCESS_OWNER = `${process.pid}@${hostname()}`

/**
 * Whether the process named by an owner string (`pid@hostname`, optionally `#tag`) is alive:
 * `true`/`false` on this host, `undefined` for another host (only its lease expiry tells).
 */
export function ownerAlive(owner: string): boolean | undefined {
  const match = /^(\d+)@([^#]+)/.exec(owner)
  if (!match || match[2] !== hostname()) return undefined
  try {
    process.kill(Number(match[1]), 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}
