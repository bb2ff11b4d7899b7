import type { Output, TaskHandle } from './output.js'

/**
 * What one progress event shows: a new task starts, the current one ends (succeeds, fails or
 * is skipped), or a line of its own that belongs to no task.
 */
export type TaskView =
  | { show: 'start'; label: string }
  | { show: 'succeed' | 'fail' | 'skip'; text: string }
  | { show: 'line'; line: string }

/** Events shown one after another as tasks; `settle` waits until all are on the screen. */
export interface TaskProgress<E> {
  /** Shows an event; a plain function, to pass as a callback (`onStep: progress.on`). */
  on: (event: E) => void
  settle: () => Promise<void>
}

/**
 * Shows a run's events as tasks (a spinner on a TTY, one line each otherwise), in the order
 * they came: each event waits for the one before, since starting a task takes a tick (ora
 * loads lazily). `view` says what an event shows; undefined shows nothing.
 *
 * @example
 * const progress = taskProgress(out, (e: StepEvent) => (e.phase === 'start' ? { show: 'start', label: e.step } : …))
 * await provisionTenant(bench, name, { onStep: progress.on }).finally(progress.settle)
 */
export function taskProgress<E>(out: Output, view: (event: E) => TaskView | undefined): TaskProgress<E> {
  let current: Promise<TaskHandle> | undefined
  let chain = Promise.resolve()
  return {
    on: (event) => {
      chain = chain.then(async () => {
        const shown = view(event)
        if (shown === undefined) return
        if (shown.show === 'start') current = out.task(shown.label)
        else if (shown.show === 'line') out.info(shown.line)
        else (await current)?.[shown.show](shown.text)
      })
    },
    settle: () => chain,
  }
}

/**
 * One line on a terminal that each update rewrites in place, such as migrate's
 * "12/40 sites" counter, with lines of their own printed above it. Only for a TTY.
 */
export interface StatusLine {
  /** Replaces the status line with `text`. */
  update(text: string): void
  /** Prints `line` in place of the status line, which the next `update` redraws below it. */
  print(line: string): void
  /** Removes the status line, leaving the cursor at the start of the empty line. */
  clear(): void
}

/** Carriage return, then ANSI "erase the whole line". */
const CLEAR_LINE = '\r\u001b[2K'

/** A status line on stderr when it is a terminal and the output is not --json; else undefined. */
export function statusLine(out: Output): StatusLine | undefined {
  if (!out.stderr.isTTY || out.json) return undefined
  return {
    update: (text) => out.stderr.write(`${CLEAR_LINE}${text}`),
    print: (line) => out.stderr.write(`${CLEAR_LINE}${line}\n`),
    clear: () => out.stderr.write(CLEAR_LINE),
  }
}
