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
    // The end-to-end suites spawn many real processes, and a file's worker waits about half the
    // time: on its one `tenancy` child at a time, fsyncs, a database server, a hook's or step's
    // timeout (one worker used 45 s of CPU in 87 s). On two cores a third file at once keeps both
    // busy: six files took 169 s with two workers, 96 s with three, 98 s with four. Files share
    // the servers safely: every test makes randomly named databases, users and registries.
    maxWorkers: 3,
    minWorkers: 1,
  },
})
