import type { Reporter } from 'vitest/reporters'

type Task = { type: string; mode?: string; result?: { state?: string }; tasks?: Task[] }

/** Prints the plain closing line CI reads: "tests: N passed, N failed, N skipped". */
export default class SummaryReporter implements Reporter {
  onFinished(files: Task[] = []): void {
    let passed = 0
    let failed = 0
    let skipped = 0
    const walk = (task: Task) => {
      if (task.type === 'test') {
        if (task.mode === 'skip' || task.mode === 'todo' || task.result?.state === 'skip') skipped++
        else if (task.result?.state === 'pass') passed++
        else failed++
      }
      for (const child of task.tasks ?? []) walk(child)
    }
    for (const file of files) walk(file)
    process.stdout.write(`\ntests: ${passed} passed, ${failed} failed, ${skipped} skipped\n`)
  }
}
