import { usageError, type TenancyError } from '../errors.js'

/** The whole numbers a flag or option accepts, and what they count ("days"), for its message. */
export interface IntegerRange {
  min: number
  max: number
  /** What the number counts, plural: `days`, `sites`; omitted for a plain number. */
  unit?: string
}

/** Whether `value` is a whole number within the range. */
export function inIntegerRange(value: number, range: IntegerRange): boolean {
  return Number.isSafeInteger(value) && value >= range.min && value <= range.max
}

/**
 * The one message for a number out of range, quoting what was given:
 * `invalid --limit "0": give a whole number from 1 to 10000`.
 */
export function integerRangeError(flag: string, given: string, range: IntegerRange): TenancyError {
  const unit = range.unit ? ` of ${range.unit}` : ''
  return usageError(
    `invalid ${flag} ${JSON.stringify(given)}: give a whole number${unit} from ${range.min} to ${range.max}`,
  )
}

/** Checks a number a library caller passed for a flag (`count: 1.5` is refused like `--count 1.5`). */
export function checkIntegerOption(flag: string, value: number, range: IntegerRange): number {
  if (!inIntegerRange(value, range)) throw integerRangeError(flag, String(value), range)
  return value
}
