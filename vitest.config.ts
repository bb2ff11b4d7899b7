import { readFileSync } from 'node:fs'
import { defineConfig } from 'vitest/config'

const { version } = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8')) as { version: string }

export default defineConfig({
  define: { TENANCY_VERSION: JSON.stringify(version) },
  test: {
    include: ['test/**/*.test.ts'],
    allowOnly: false,
    reporters: ['default', './test/summary-reporter.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // The end-to-end suites spawn many real processes; two cores are shared with them.
    maxWorkers: 2,
    minWorkers: 1,
  },
})
