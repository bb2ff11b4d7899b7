import { Option, type Command } from 'commander'
import { EXIT_FAILED, EXIT_INTERRUPTED, usageError } from '../errors.js'
import { inIntegerRange, integerRangeError, type IntegerRange } from '../util/integer-range.js'
import { LIMIT_RANGE, OFFSET_RANGE, type PageOptions } from '../util/listing.js'
import type { Output } from '../output/output.js'

/** A commander argument parser for a repeatable flag: `--data a=1 --data b=2` gives both, in order. */
export const collect = (value: string, previous: string[] = []): string[] => [...previous, value]

/**
 * Parses the text given to a numeric flag: digits only, within the range. Anything else
 * (empty, blank, negative, fractional, `1e3`, not a number, too large) is exit 2 quoting
 * what was typed, so an unset shell variable never becomes 0 ("everything").
 *
 * @example
 * parseIntegerFlag('--older-than-days', '', { min: 0, max: 36500, unit: 'days' })
 * // throws: invalid --older-than-days "": give a whole number of days from 0 to 36500
 */
export function parseIntegerFlag(flag: string, text: string, range: IntegerRange): number {
  const value = /^[0-9]+$/.test(text) ? Number(text) : Number.NaN
  if (!inIntegerRange(value, range)) throw integerRangeError(flag, text, range)
  return value
}

/** A commander argument parser for a numeric flag (see `parseIntegerFlag`). */
export function integerFlag(flag: string, range: IntegerRange): (text: string) => number {
  return (text) => parseIntegerFlag(flag, text, range)
}

/** A commander argument parser for a path flag: an empty or blank value (an unset shell variable) is exit 2, not "here". */
export function pathFlag(flag: string): (text: string) => string {
  return (text) => {
    if (text.trim() === '') throw usageError(`invalid ${flag} "${text}": give a directory (is a shell variable unset?)`)
    return text
  }
}

/** The pending-tenant flags as commander gives them: `--with-pending` alone is `true`. */
export interface PendingFlags {
  withPending?: string | true
  onlyPending?: boolean
  withoutPending?: boolean
}

/**
 * `--with-pending [bool]`, the one declaration of it; `what` names what it adds:
 * "sites of pending tenants". Read it with `parsePendingFlag` (or `pendingChoice`).
 */
export function withPendingOption(what: string): Option {
  return new Option('--with-pending [bool]', `include ${what} (true/1/false/0)`)
}

/** Declares a listing's pending filters: `--with-pending [bool]`, `--only-pending`, `--without-pending`. */
export function addPendingFilters(command: Command, what: string): Command {
  return command
    .addOption(withPendingOption(what))
    .option('--only-pending', `only ${what}`)
    .option('--without-pending', `leave ${what} out`)
}

/** `--with-pending[=bool]`: true, 1, false, 0; bare flag means true. */
export function parsePendingFlag(value: unknown): boolean | undefined {
  if (value === undefined) return undefined
  if (value === true || value === 'true' || value === '1') return true
  if (value === 'false' || value === '0') return false
  throw usageError(`invalid --with-pending value "${String(value)}": use true, 1, false or 0`)
}

/** The pending filter of a listing from its flags; undefined means `pending.include_in_queries`. */
export function pendingChoice(flags: PendingFlags): 'with' | 'only' | 'without' | undefined {
  const chosen = [flags.withPending !== undefined, flags.onlyPending, flags.withoutPending].filter(Boolean).length
  if (chosen > 1) throw usageError('give only one of --with-pending, --only-pending and --without-pending')
  const withPending = parsePendingFlag(flags.withPending)
  return flags.onlyPending
    ? 'only'
    : flags.withoutPending
      ? 'without'
      : withPending === undefined
        ? undefined
        : withPending
          ? 'with'
          : 'without'
}

/** The flags of a fleet command's site selection (SPEC §8) as commander gives them (`--site` is global). */
export interface FleetFlags extends Pick<PendingFlags, 'withPending'> {
  skipSite?: string[]
  concurrency?: number
  skipFailing?: boolean
  local?: boolean
}

/**
 * Declares how a fleet command picks and goes over its sites, once for all of them:
 * `--skip-site S` (repeatable), `--with-pending [bool]`, `--concurrency N` (`concurrency`
 * says its default) and `--skip-failing`.
 */
export function addFleetFlags(command: Command, concurrency: string): Command {
  return command
    .option('--skip-site <site>', 'leave this site out (repeatable)', collect)
    .addOption(withPendingOption('sites of pending tenants'))
    .option(
      '--concurrency <n>',
      `sites at once (default: ${concurrency})`,
      integerFlag('--concurrency', { min: 1, max: 1024, unit: 'sites' }),
    )
    .option('--skip-failing', 'try every site even after one fails')
    .option('--local', "only this machine's sites (with a shared registry, others' go to their machines' workers)")
}

/** The selection and run options of a fleet command's core function, from its flags. */
export function fleetOptions(
  sites: string[] | undefined,
  flags: FleetFlags,
  signal: AbortSignal,
): {
  sites: string[] | undefined
  skipSites: string[] | undefined
  withPending: boolean | undefined
  concurrency: number | undefined
  skipFailing: boolean
  local: boolean
  signal: AbortSignal
} {
  return {
    sites: sites?.length ? sites : undefined,
    skipSites: flags.skipSite,
    withPending: parsePendingFlag(flags.withPending),
    concurrency: flags.concurrency,
    skipFailing: Boolean(flags.skipFailing),
    local: Boolean(flags.local),
    signal,
  }
}

/**
 * A fleet command's exit code (SPEC §8, §10): 130 when Ctrl-C stopped it, 1 when a site failed
 * or was on a machine with no live worker.
 */
export function setFleetExitCode(result: { interrupted: boolean; failed: number; unreachable: number }): void {
  if (result.interrupted) process.exitCode = EXIT_INTERRUPTED
  else if (result.failed > 0 || result.unreachable > 0) process.exitCode = EXIT_FAILED
}

/** `--limit` and `--offset` as commander gives them. */
export interface PageFlags {
  limit?: number
  offset?: number
}

/** A listing's page on a terminal when `--limit` is not given (SPEC §11); piped or with --json, all of it. */
export const TERMINAL_PAGE = 100

/**
 * Declares a listing's `--limit N` and `--offset N` (SPEC §11), once for all of them; `what`
 * names its rows ("tenants"). Read them with `pageOptions`.
 */
export function addPageFlags(command: Command, what: string): Command {
  return command
    .option(
      '--limit <n>',
      `at most N ${what} (1 or more; default: ${TERMINAL_PAGE} on a terminal, all when piped or with --json)`,
      integerFlag('--limit', { ...LIMIT_RANGE, unit: what }),
    )
    .option(
      '--offset <n>',
      `skip the first N ${what} (default: 0)`,
      integerFlag('--offset', { ...OFFSET_RANGE, unit: what }),
    )
}

/** The page a listing shows: the flags, else a terminal's page, else (piped, --json) everything. */
export function pageOptions(flags: PageFlags, out: Output): PageOptions {
  const terminal = !out.json && out.stdout.isTTY === true
  return { limit: flags.limit ?? (terminal ? TERMINAL_PAGE : undefined), offset: flags.offset }
}
