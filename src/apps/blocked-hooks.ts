import { createHash } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { TenancyError } from '../errors.js'
import { writeJsonAtomic } from '../util/json-file.js'

/**
 * The module hooks that blocked the process (SPEC §9): util/blocked-watchdog.ts, stopping it,
 * adds `{"app/hook": {sha256, site, at}}` to `.tenancy/blocked-hooks.json` (`sha256`: of the
 * hook's module file). Such a hook is
 * refused at once the next time, with an error, until its module's file changes: otherwise
 * every retry would block and be stopped again, a worker crash-looping on one job, and every
 * command that finishes an interrupted rename running it again. Refused, it fails like a hook
 * that throws: the step fails and counts an attempt, a rename's hooks are reported.
 */
/** The record's name in the bench's `.tenancy/`. */
export const BLOCKED_HOOKS = 'blocked-hooks.json'

interface BlockedHook {
  sha256: string
  site: string
  at: string
}

/** The hook's key in the record and the module file it runs. */
export interface HookIdentity {
  /** `.tenancy/blocked-hooks.json` of the bench. */
  record: string
  /** `app/hook`. */
  key: string
  /** The module's file. */
  file: string
}

const digest = (file: string): string => {
  try {
    return createHash('sha256').update(readFileSync(file)).digest('hex')
  } catch {
    return ''
  }
}

function readRecord(record: string): Record<string, BlockedHook> {
  try {
    const parsed = JSON.parse(readFileSync(record, 'utf8')) as unknown
    return parsed && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as Record<string, BlockedHook>) : {}
  } catch {
    return {}
  }
}

/**
 * Throws when this hook blocked the process before and its module is unchanged since; returns
 * whether the record names it at all (with a changed module: `forgetBlockedHook` once it ran).
 */
export function refuseBlockedHook(hook: HookIdentity, what: string, module: string, app: string): boolean {
  if (!existsSync(hook.record)) return false
  const blocked = readRecord(hook.record)[hook.key]
  if (!blocked) return false
  if (blocked.sha256 !== digest(hook.file)) return true
  throw new TenancyError(
    `${what} is not run: it blocked the process on site "${blocked.site}" at ${blocked.at} (a synchronous ` +
      `loop) and ${module} has not changed since; fix it (await the work, or declare the hook as a command), ` +
      'and it runs again',
    { namedApp: app },
  )
}

/**
 * Records that this hook blocked the process on `site` (called inside the blocked code, just
 * before the process ends; the watchdog's thread writes the same entry when the code is in a
 * system call). Best effort: the process ends anyway, and the hook would be stopped again.
 */
export function recordBlockedHook(hook: HookIdentity, site: string): void {
  const record = readRecord(hook.record)
  record[hook.key] = { sha256: digest(hook.file), site, at: new Date().toISOString() }
  try {
    writeJsonAtomic(hook.record, record, 0o600)
  } catch {
    // As above: nothing to be done while the process ends.
  }
}

/** Forgets a hook that has run to its end: its module was fixed. */
export function forgetBlockedHook(hook: HookIdentity): void {
  const record = readRecord(hook.record)
  if (!(hook.key in record)) return
  delete record[hook.key]
  try {
    writeJsonAtomic(hook.record, record, 0o600)
  } catch {
    // Harmless: a stale entry is ignored once the module's hash differs.
  }
}
