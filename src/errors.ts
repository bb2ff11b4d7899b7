import { NODE, SQLITE, codeOf } from './error-codes.js'

/** Exit codes of the `tenancy` command line, as the SPEC lists them. */
export const EXIT_OK = 0
export const EXIT_FAILED = 1
export const EXIT_USAGE = 2
export const EXIT_INTERRUPTED = 130

/**
 * The one error a user should see: a sentence naming the thing and what to do next,
 * plus the exit code. Anything else that escapes a command is a bug and is reported as one.
 *
 * @example
 * throw new TenancyError(`site "acme.localhost" does not exist; run "tenancy list-sites"`, { exitCode: EXIT_USAGE })
 */
export class TenancyError extends Error {
  readonly exitCode: number
  /** The app whose failure this message already reports (its fixtures, its hook), so callers do not wrap it again. */
  namedApp: string | undefined

  constructor(message: string, options: { exitCode?: number; cause?: unknown; namedApp?: string } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'TenancyError'
    this.exitCode = options.exitCode ?? EXIT_FAILED
    this.namedApp = options.namedApp
  }
}

/** Whether an error is a usage or configuration error (exit 2): bad input that retrying cannot fix. */
export function isUsageError(error: unknown): boolean {
  return error instanceof TenancyError && error.exitCode === EXIT_USAGE
}

/** No tenant has that name (never had one, or it was deleted, or pulled under a new name meanwhile). Exit 2. */
export class TenantNotFoundError extends TenancyError {
  /** Its name, when the lookup was by name. */
  readonly tenant: string | undefined

  constructor(tenant: string | undefined, message: string) {
    super(message, { exitCode: EXIT_USAGE })
    this.name = 'TenantNotFoundError'
    this.tenant = tenant
  }
}

/** A usage or configuration error (exit 2): bad flag, bad name, unknown site or app, malformed config. */
export function usageError(message: string, cause?: unknown): TenancyError {
  return new TenancyError(message, { exitCode: EXIT_USAGE, cause })
}

/** The operation was interrupted (SIGINT/SIGTERM); exit 130. */
export class InterruptedError extends TenancyError {
  /** `what` was interrupted; `after` says what was done about it ("rolled back"). */
  constructor(what = 'operation', after?: string) {
    super(`${what} was interrupted${after ? `; ${after}` : ''}`, { exitCode: EXIT_INTERRUPTED })
    this.name = 'InterruptedError'
  }
}

/** The user answered "no" to a confirmation: nothing was changed (exit 1, not shown as an error). */
export class CancelledError extends TenancyError {
  constructor() {
    super('Cancelled; nothing changed.', { exitCode: EXIT_FAILED })
    this.name = 'CancelledError'
  }
}

/** The message of any thrown value, without a stack. */
export function messageOf(error: unknown): string {
  if (error instanceof Error) return error.message
  return String(error)
}

/** Why a file or database could not be used: its filesystem is full, its content is damaged, or the device failed. */
export type StorageProblem = 'disk_full' | 'corrupt' | 'io'

/** The storage problem an error code names, if any. Decided by code, never by message text. */
export function storageProblemOf(error: unknown): StorageProblem | undefined {
  const code = codeOf(error)
  if (code === undefined) return undefined
  if (code === NODE.ENOSPC || code === NODE.EDQUOT || code === SQLITE.FULL || code === SQLITE.IOERR_SHMSIZE) {
    return 'disk_full'
  }
  if (code === SQLITE.NOTADB || code.startsWith(SQLITE.CORRUPT)) return 'corrupt'
  if (code === NODE.EIO || code.startsWith(SQLITE.IOERR)) return 'io'
  return undefined
}

/**
 * A file or database a command needs could not be written or read: the disk is full (exit
 * 1; free space and run again), or the file is damaged. A damaged registry is exit 2, like
 * a malformed config file: the bench itself is unusable until the operator restores it.
 */
export class StorageError extends TenancyError {
  readonly file: string
  readonly problem: StorageProblem

  constructor(message: string, options: { file: string; problem: StorageProblem; exitCode?: number; cause?: unknown }) {
    super(message, { exitCode: options.exitCode, cause: options.cause })
    this.name = 'StorageError'
    this.file = options.file
    this.problem = options.problem
  }
}

/**
 * The one-line error for a storage failure of `file` (`what` names it for humans: "the
 * registry", "the site database"), or undefined when `error` is not one.
 */
export function storageError(
  error: unknown,
  file: string,
  what: string,
  options: { corruptExitCode?: number } = {},
): StorageError | undefined {
  if (error instanceof StorageError) return error
  const problem = storageProblemOf(error)
  if (!problem) return undefined
  if (problem === 'disk_full') {
    return new StorageError(
      `disk full: cannot write ${what} ${file}; free some space on its filesystem and run the command again`,
      { file, problem, cause: error },
    )
  }
  if (problem === 'io') {
    return new StorageError(
      `cannot read or write ${what} ${file}: ${messageOf(error)}; ` +
        `check that its filesystem is writable, healthy and not full, then run the command again`,
      {
        file,
        problem,
        cause: error,
      },
    )
  }
  return new StorageError(`${what} ${file} is corrupt (${messageOf(error)}); restore it from a backup`, {
    file,
    problem,
    exitCode: options.corruptExitCode,
    cause: error,
  })
}

/**
 * A storage failure that reached the top without being named where it happened: the one
 * line to print instead of "a bug". A Node errno error names its path; a bare SQLite error
 * (the registry and site databases name theirs) does not.
 */
export function knownErrorOf(error: unknown): TenancyError | undefined {
  if (error instanceof TenancyError) return error
  const path = (error as { path?: unknown } | null)?.path
  if (typeof path === 'string') return storageError(error, path, 'the file')
  const problem = storageProblemOf(error)
  if (problem === 'disk_full') {
    return new StorageError(
      'disk full: a database tenancy writes has no space left; free some space and run the command again',
      { file: '', problem, cause: error },
    )
  }
  if (problem === 'io') {
    return new StorageError(
      `a database tenancy uses failed: ${messageOf(error)}; ` +
        `check that its filesystem is writable, healthy and not full`,
      { file: '', problem, cause: error },
    )
  }
  if (problem === 'corrupt') {
    return new StorageError(
      `a database tenancy reads is corrupt (${messageOf(error)}); ` +
        `run "tenancy doctor" to find which, and restore it from a backup`,
      { file: '', problem, cause: error },
    )
  }
  return undefined
}
