import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'

// The benchmarks' one table (bench/report.mjs, plain JavaScript): what `record` keeps and how
// `npm run bench` prints it.
interface Figure {
  figure: string
  tenancy: number | null
  raw: number | null
  ratio: number | null
  target: string
  met: boolean | null
  unit: string
  [extra: string]: unknown
}
interface Report {
  meets(target: string, figure: { ratio?: number | null; tenancy?: number | null; unit: string }): boolean | null
  record(figure: Partial<Figure> & { figure: string; tenancy: number }): Figure
  formatTable(figures: Figure[]): string
}
const ROOT = join(import.meta.dirname, '..')
const report = (await import(pathToFileURL(join(ROOT, 'bench', 'report.mjs')).href)) as Report

describe('bench report', () => {
  const saved = process.env.TENANCY_BENCH_RESULTS
  afterEach(() => {
    if (saved === undefined) delete process.env.TENANCY_BENCH_RESULTS
    else process.env.TENANCY_BENCH_RESULTS = saved
  })

  it('judges ratio targets, absolute targets in the figure’s unit, and no target', () => {
    const { meets } = report
    expect(meets('<= 1.5x', { ratio: 1.5, unit: 'ms' })).toBe(true)
    expect(meets('<= 1.5x', { ratio: 1.51, unit: 'ms' })).toBe(false)
    expect(meets('< 1x', { ratio: 1, unit: 'ms' })).toBe(false)
    expect(meets('>= 1.6x', { ratio: 1.6, unit: 'ms' })).toBe(true)
    expect(meets('<= 500 ms', { ratio: 9, tenancy: 480, unit: 'ms' })).toBe(true)
    expect(meets('<= 150 MB', { ratio: 0.5, tenancy: 166, unit: 'MB' })).toBe(false)
    expect(meets('info', { ratio: 3, unit: 'ms' })).toBeNull()
    // A figure that could not be measured (no CPU time off Linux) does not meet its target.
    expect(meets('<= 3x', { ratio: Number.NaN, unit: 'ms' })).toBe(false)
    expect(() => meets('<= 150 MB', { tenancy: 100, unit: 'ms' })).toThrow(/in MB, the figure in ms/)
  })

  it('records figures into the driver’s file, one JSON line each, with the ratio and verdict', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tenancy-bench-report-'))
    try {
      const file = join(dir, 'figures.jsonl')
      process.env.TENANCY_BENCH_RESULTS = file
      const pull = report.record({
        figure: 'a pull (process) vs node -e 0',
        tenancy: 121.04,
        raw: 60,
        target: '<= 1.8x',
      })
      expect(pull).toMatchObject({ tenancy: 121, raw: 60, ratio: 2.02, met: false, unit: 'ms' })
      report.record({ figure: '  its CPU time', tenancy: 90, raw: 45, cpu_rounds: 9 })
      report.record({ figure: 'peak RSS', tenancy: 140, unit: 'MB', target: '<= 150 MB' })
      const lines = readFileSync(file, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Figure)
      expect(lines).toHaveLength(3)
      expect(lines[0]).toEqual(pull)
      expect(lines[1]).toMatchObject({ figure: '  its CPU time', ratio: 2, target: 'info', met: null, cpu_rounds: 9 })
      expect(lines[2]).toMatchObject({ raw: null, ratio: null, met: true, unit: 'MB' })
      expect(() => report.record({ figure: ' ', tenancy: 1 })).toThrow(/needs its name/)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('prints one table: figure, tenancy, raw, ratio, target, met', () => {
    delete process.env.TENANCY_BENCH_RESULTS
    const table = report.formatTable([
      report.record({ figure: 'migrate, 1000 sites', tenancy: 480, raw: 155.2, target: '<= 500 ms' }),
      report.record({ figure: '  one site', tenancy: 61.25, raw: 59 }),
      report.record({ figure: 'peak RSS', tenancy: 166.1, unit: 'MB', target: '<= 150 MB' }),
    ])
    const [head, rule, ...rows] = table.split('\n')
    expect(head!.split(/\s{2,}/)).toEqual(['figure', 'tenancy', 'raw', 'ratio', 'target', 'met'])
    expect(rule).toMatch(/^-+( {2}-+){5}$/)
    expect(rows[0]!.split(/\s{2,}/)).toEqual(['migrate, 1000 sites', '480 ms', '155 ms', '3.09x', '<= 500 ms', 'met'])
    // A detail row keeps its indent; a figure without a target has no verdict.
    expect(rows[1]).toMatch(/^ {2}one site\s+61\.3 ms\s+59\.0 ms\s+1\.04x\s+info$/)
    expect(rows[2]!.split(/\s{2,}/)).toEqual(['peak RSS', '166 MB', '<= 150 MB', 'MISSED'])
  })

  it('the driver refuses an unknown script with one line naming the known ones (exit 2)', () => {
    const r = spawnSync(process.execPath, [join(ROOT, 'bench', 'all.mjs'), '--only', 'nope'], { encoding: 'utf8' })
    expect(r.status).toBe(2)
    expect(r.stderr.trim().split('\n')).toHaveLength(1)
    expect(r.stderr).toMatch(
      /^--only: bench\/nope\.mjs does not exist; the scripts are startup, run, hooks, pool, .*machines\n$/,
    )
  })
})
