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

  constructor(message: string, options: { exitCode?: number; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'TenancyError'
    this.exitCode = options.exitCode ?? EXIT_FAILED
  }
}

/** A usage or configuration error (exit 2): bad flag, bad name, unknown site or app, malformed config. */
export function usageError(message: string, cause?: unknown): TenancyError {
  return new TenancyError(message, { exitCode: EXIT_USAGE, cause })
}

/** The operation was interrupted (SIGINT/SIGTERM); exit 130. */
export class InterruptedError extends TenancyError {
  constructor(what = 'operation') {
    super(`${what} interrupted`, { exitCode: EXIT_INTERRUPTED })
    this.name = 'InterruptedError'
  }
}

/** The message of any thrown value, without a stack. */
export function messageOf(error: unknown): string {
  if (error instanceof Error) return error.message
  return String(error)
}
