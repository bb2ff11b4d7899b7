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

/** Carriage return, then ANSI "erase the whole line". */
const CLEAR_LINE = '\r\u001b[2K'

/**
 * The progress of a command over many sites or tenants: lines of their own (each site's
 * result, a child's output) and, on a terminal, one progress line below them that each change
 * redraws in place. Off a terminal (or with --json, or TERM=dumb) only the lines, plain.
 */
export interface FleetProgress {
  /** Prints `line` on `stream` (stderr by default) as a line of its own, above the progress line. */
  print(line: string, stream?: NodeJS.WriteStream): void
  /** Sets the count and redraws the progress line. */
  update(done: number, total: number): void
  /** Redraws the progress line with the same count (what `text` shows besides it changed). */
  redraw(): void
  /**
   * A fleet command's `onSite`: each site's line, `<site>: <describe(r)>`, above the progress
   * line, and the count; with --json nothing (the document says it all).
   */
  siteLines<R extends { site: string }>(describe: (r: R) => string): (r: R, done: number, total: number) => void
  /** Removes the progress line for good, leaving the cursor at the start of an empty line; idempotent. */
  clear(): void
}

/** What the progress line says: the count, and the seconds since the progress began (for rate and ETA). */
export type ProgressText = (done: number, total: number, seconds: number) => string

/** `text` cut to `width` characters, the last one an ellipsis when it was longer. */
function fit(text: string, width: number): string {
  const chars = [...text]
  return chars.length <= width ? text : `${chars.slice(0, Math.max(0, width - 1)).join('')}…`
}

/** How often the line is redrawn while nothing changes, so rate and ETA keep up with a slow site. */
const REDRAW_MS = 1000

/**
 * The progress of a run on `out`; `text` says what the progress line shows. The line is drawn
 * on stderr only when it is a terminal that can redraw (not TERM=dumb) and the output is not
 * --json; it is cut to the terminal's width (COLUMNS when the terminal reports none), so it
 * never wraps, and is removed by `clear` or, at the latest, when the process exits.
 *
 * @example
 * const result = await usingProgress(ctx.out, sitesCounter, (progress) =>
 *   migrate(bench, { onSite: progress.siteLines(describeSiteMigration) }),
 * )
 */
export function fleetProgress(out: Output, text: ProgressText, env: NodeJS.ProcessEnv = process.env): FleetProgress {
  const stderr = out.stderr
  let live = Boolean(stderr.isTTY) && !out.json && env.TERM !== 'dumb'
  const started = performance.now()
  let count: { done: number; total: number } | undefined
  let shown = false
  let timer: NodeJS.Timeout | undefined
  const width = () => (stderr.columns || Number(env.COLUMNS) || 80) - 1
  const drawn = () =>
    count ? out.color.dim(fit(text(count.done, count.total, (performance.now() - started) / 1000), width())) : ''
  const onExit = () => {
    if (shown) stderr.write(CLEAR_LINE)
  }
  const draw = (before = '') => {
    const line = drawn()
    if (line && !shown) {
      shown = true
      process.once('exit', onExit)
      timer = setInterval(() => draw(), REDRAW_MS).unref()
    }
    stderr.write(`${CLEAR_LINE}${before}${line}`)
  }
  const progress: FleetProgress = {
    print(line, stream = stderr) {
      if (!shown) stream.write(`${line}\n`)
      else if (stream === stderr) draw(`${line}\n`)
      else if (!stream.isTTY) stream.write(`${line}\n`)
      else {
        // Another stream on the same terminal (stdout): the progress line goes, the line comes, it comes back.
        stderr.write(CLEAR_LINE)
        stream.write(`${line}\n`)
        draw()
      }
    },
    update(done, total) {
      count = { done, total }
      if (live) draw()
    },
    redraw() {
      if (live && count) draw()
    },
    siteLines: (describe) => (r, done, total) => {
      if (out.json) return
      // The new count first, so the line and the redrawn progress line are one write.
      count = { done, total }
      progress.print(`${r.site}: ${describe(r)}`)
      if (!shown) progress.redraw()
    },
    clear() {
      live = false
      if (timer) clearInterval(timer)
      if (shown) stderr.write(CLEAR_LINE)
      shown = false
      process.off('exit', onExit)
    },
  }
  return progress
}

/**
 * Runs `fn` with a `fleetProgress`, the line removed whatever happens (before a summary or an
 * error is printed).
 */
export async function usingProgress<T>(
  out: Output,
  text: ProgressText,
  fn: (progress: FleetProgress) => Promise<T>,
): Promise<T> {
  const progress = fleetProgress(out, text)
  try {
    return await fn(progress)
  } finally {
    progress.clear()
  }
}
