/** A value as show-config prints it: plain when unambiguous, else JSON; a list comma-separated; null as `none`. */
function shownValue(value: unknown): string {
  if (value === null || value === undefined) return 'none'
  if (typeof value === 'string')
    return /^[^\s,"][^,"\n]*$/.test(value) && !/\s$/.test(value) ? value : JSON.stringify(value)
  if (Array.isArray(value)) return value.length === 0 ? '[]' : value.map(shownValue).join(', ')
  if (typeof value === 'object') return JSON.stringify(value)
  return String(value)
}

/**
 * A configuration as `key = value` lines, nested keys dotted (`db.port = 5432`), in the order
 * the config has them: what `show-config` prints without `--json`, on a terminal or piped.
 */
export function renderConfigLines(config: Record<string, unknown>, prefix = ''): string[] {
  return Object.entries(config).flatMap(([key, value]) => {
    const name = `${prefix}${key}`
    const nested = typeof value === 'object' && value !== null && !Array.isArray(value)
    if (nested && Object.keys(value).length > 0) return renderConfigLines(value as Record<string, unknown>, `${name}.`)
    return [`${name} = ${nested ? '{}' : shownValue(value)}`]
  })
}
