/** `2026-01-31T12:00:00.123Z` as a directory name that sorts by time: `20260131T120000123Z`. */
export function stampOf(date: Date): string {
  return date.toISOString().replace(/[-:.]/g, '')
}
