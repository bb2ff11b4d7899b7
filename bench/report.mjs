// The run's one table (issue 19): `record` hands a benchmark's figure to it, `formatTable`
// prints it. Plain Node and nothing else, so the driver (bench/all.mjs) and tests load it alone;
// bench/common.mjs re-exports it for the scripts.
import { appendFileSync } from 'node:fs'
import { basename } from 'node:path'

/**
 * Whether a figure meets its target: `<= 1.5x`, `< 1x`, `>= 1.6x` (on the ratio) or `<= 500 ms`,
 * `<= 150 MB` (on tenancy's figure, in its unit); null for a figure without one (`info`).
 */
export function meets(target, { ratio, tenancy, unit }) {
  const limit = /^(<=|<|>=|>) ?([\d.]+) ?(x|ms|s|MB)$/.exec(String(target).trim())
  if (!limit) return null
  const [, op, bound, what] = limit
  if (what !== 'x' && what !== unit) throw new Error(`target "${target}" is in ${what}, the figure in ${unit}`)
  const value = what === 'x' ? ratio : tenancy
  if (typeof value !== 'number' || !Number.isFinite(value)) return false
  const n = Number(bound)
  return op === '<=' ? value <= n : op === '<' ? value < n : op === '>=' ? value >= n : value > n
}

const round = (x, digits) => (typeof x === 'number' && Number.isFinite(x) ? +x.toFixed(digits) : null)

/**
 * Records one figure for the run's table: `npm run bench` (bench/all.mjs) runs every script and
 * prints all their figures as one table (figure, tenancy, raw, ratio, target, met), also written
 * to bench/results/latest.json. Each script calls this for every figure it prints; run alone
 * (`node bench/x.mjs`), a script prints its own lines and this only returns the figure.
 *
 * - `tenancy`, `raw`: the two sides, in `unit` (default `ms`); `raw` null when a figure has an
 *   absolute target only.
 * - `ratio`: tenancy / raw unless given (a speed-up, `>= 1.6x`, passes its own).
 * - `target`: `<= 1.5x`, `< 1x`, `>= 1.6x` (the ratio), `<= 500 ms`, `<= 150 MB` (tenancy's
 *   figure), or `info` (no target; `met` is null). `met` follows from it.
 * - anything else given (CPU times, counts) is kept in the JSON beside them.
 *
 * @example
 * record({ figure: 'migrate, 1000 sites, nothing pending (process)', tenancy: 480, raw: 155, target: '<= 500 ms' })
 */
export function record({ figure, tenancy, raw = null, ratio, target = 'info', unit = 'ms', ...extra }) {
  if (typeof figure !== 'string' || !figure.trim()) throw new Error('record: a figure needs its name')
  const r = ratio ?? (typeof raw === 'number' && raw !== 0 ? tenancy / raw : null)
  const entry = {
    // A leading indent is kept: it marks a figure that details the one above it.
    figure: figure.trimEnd(),
    tenancy: round(tenancy, 1),
    raw: round(raw, 1),
    ratio: round(r, 2),
    target,
    met: meets(target, { ratio: r, tenancy, unit }),
    unit,
    script: basename(process.argv[1] ?? 'bench', '.mjs'),
    ...extra,
  }
  // The driver's results file (bench/all.mjs sets it): one JSON line a figure.
  const file = process.env.TENANCY_BENCH_RESULTS
  if (file) appendFileSync(file, `${JSON.stringify(entry)}\n`)
  return entry
}

/** A figure's value as the table shows it: its unit, whole numbers from 100 up. */
const shown = (value, unit) =>
  value === null || value === undefined ? '' : `${value >= 100 ? value.toFixed(0) : value.toFixed(1)} ${unit}`

/** The figures as one text table: figure, tenancy, raw, ratio, target, met. */
export function formatTable(figures) {
  const rows = figures.map((f) => [
    f.figure,
    shown(f.tenancy, f.unit),
    shown(f.raw, f.unit),
    f.ratio === null ? '' : `${f.ratio.toFixed(2)}x`,
    f.target,
    f.met === null ? '' : f.met ? 'met' : 'MISSED',
  ])
  const head = ['figure', 'tenancy', 'raw', 'ratio', 'target', 'met']
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)))
  // The figure's name left-aligned, the numbers right-aligned.
  const line = (r) =>
    r
      .map((cell, i) => (i === 0 || i >= 4 ? cell.padEnd(widths[i]) : cell.padStart(widths[i])))
      .join('  ')
      .trimEnd()
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n')
}
