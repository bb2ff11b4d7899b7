import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    allowOnly: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // The end-to-end suites spawn many real processes; two cores are shared with them.
    maxWorkers: 2,
    minWorkers: 1,
  },
})
