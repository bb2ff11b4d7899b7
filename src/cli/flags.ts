import { usageError } from '../errors.js'

/** The whole numbers a flag accepts, and what they count ("days"), for its message. */
export interface IntegerRange {
  min: number
  max: number
  /** What the number counts, plural: `days`, `sites`; omitted for a plain number. */
  unit?: string
}

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
  if (!Number.isSafeInteger(value) || value < range.min || value > range.max) {
    throw usageError(
      `invalid ${flag} ${JSON.stringify(text)}: give a whole number${range.unit ? ` of ${range.unit}` : ''} from ${range.min} to ${range.max}`,
    )
  }
  return value
}

/** A commander argument parser for a numeric flag (see `parseIntegerFlag`). */
export function integerFlag(flag: string, range: IntegerRange): (text: string) => number {
  return (text) => parseIntegerFlag(flag, text, range)
}
