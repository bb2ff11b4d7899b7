import type { ChalkInstance } from 'chalk'
import { Chalk } from 'chalk'
import { CancelledError, EXIT_FAILED, InterruptedError, TenancyError, knownErrorOf, messageOf } from '../errors.js'

/** How a command's messages and result reach the user. */
export interface OutputOptions {
  json?: boolean
  verbose?: boolean
  stdout?: NodeJS.WriteStream
  stderr?: NodeJS.WriteStream
  env?: NodeJS.ProcessEnv
}

export interface TaskHandle {
  succeed(text?: string): void
  fail(text?: string): void
  skip(text?: string): void
  update(text: string): void
}

function colorLevel(stream: NodeJS.WriteStream, env: NodeJS.ProcessEnv): 0 | 1 | 2 | 3 {
  if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== '') {
    if (env.FORCE_COLOR === '0' || env.FORCE_COLOR === 'false') return 0
    const level = Number(env.FORCE_COLOR)
    return level >= 1 && level <= 3 ? (level as 1 | 2 | 3) : 1
  }
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return 0
  if (!stream.isTTY || env.TERM === 'dumb') return 0
  const depth = stream.getColorDepth?.() ?? 4
  return depth >= 24 ? 3 : depth >= 8 ? 2 : 1
}

/**
 * The streams a JSON document went to: one a process (SPEC §3), whichever `Output` printed it,
 * so that the error of a listing that failed mid-document is not printed as a second one.
 */
const documented = new WeakSet<NodeJS.WriteStream>()

/** An error as `--json` shows it: `{"message", "exit_code"}`. */
function errorJson(thrown: unknown): { message: string; exit_code: number } {
  const error = knownErrorOf(thrown) ?? thrown
  return { message: messageOf(error), exit_code: error instanceof TenancyError ? error.exitCode : EXIT_FAILED }
}

/**
 * The only place that writes to the console. With `json`, stdout carries exactly one JSON
 * document (printed by `result`) and every message goes to stderr. Without it, humans get
 * colour and spinners on a TTY and plain lines otherwise.
 */
export class Output {
  readonly json: boolean
  readonly verbose: boolean
  readonly stdout: NodeJS.WriteStream
  readonly stderr: NodeJS.WriteStream
  readonly color: ChalkInstance
  readonly interactive: boolean
  readonly #env: NodeJS.ProcessEnv

  constructor(options: OutputOptions = {}) {
    this.json = options.json ?? false
    this.verbose = options.verbose ?? false
    this.stdout = options.stdout ?? process.stdout
    this.stderr = options.stderr ?? process.stderr
    this.#env = options.env ?? process.env
    this.color = new Chalk({ level: colorLevel(this.stderr, this.#env) })
    this.interactive = Boolean(process.stdin.isTTY && this.stderr.isTTY)
  }

  /** A progress or status line on stderr. */
  info(message: string): void {
    this.stderr.write(`${message}\n`)
  }

  success(message: string): void {
    this.stderr.write(`${this.color.green('✔')} ${message}\n`)
  }

  warn(message: string): void {
    this.stderr.write(`${this.color.yellow('warning:')} ${message}\n`)
  }

  debug(message: string): void {
    if (this.verbose) this.stderr.write(`${this.color.dim(message)}\n`)
  }

  /** The command's result: one JSON document with `--json`, else the human rendering on stdout. */
  result(data: unknown, render?: (data: never) => string | undefined): void {
    if (this.json) {
      if (documented.has(this.stdout)) throw new Error('a command printed two JSON results')
      documented.add(this.stdout)
      this.stdout.write(`${JSON.stringify(data, null, 2)}\n`)
      return
    }
    const text = render ? render(data as never) : undefined
    if (text) this.stdout.write(text.endsWith('\n') ? text : `${text}\n`)
  }

  /**
   * The result of a listing with `--json`: the one document `result` would print for
   * `{ [key]: [...rows], ...fields }`, in the same format, written as the rows come (a chunk
   * at a time, waiting while stdout is full), so that 100,000 rows are never held at once.
   * Nothing is written before the first row is read: a registry that fails on it still gets
   * the error document. A failure later ends the array and the document with `"error"`.
   */
  async resultStream(key: string, rows: AsyncIterable<unknown>, fields: Record<string, unknown>): Promise<void> {
    if (!this.json) throw new Error('resultStream is for --json results')
    if (documented.has(this.stdout)) throw new Error('a command printed two JSON results')
    const iterator = rows[Symbol.asyncIterator]()
    let next = await iterator.next()
    documented.add(this.stdout)
    // JSON.stringify(…, null, 2) of the whole document: each row two levels in, each field one.
    const indent = (json: string | undefined, by: string) => (json ?? 'null').replace(/\n/g, `\n${by}`)
    const tail = Object.entries(fields)
      .filter(([, value]) => value !== undefined)
      .map(([name, value]) => `,\n  ${JSON.stringify(name)}: ${indent(JSON.stringify(value, null, 2), '  ')}`)
      .join('')
    let chunk = `{\n  ${JSON.stringify(key)}: [`
    let first = true
    try {
      for (; !next.done; next = await iterator.next()) {
        chunk += `${first ? '' : ','}\n    ${indent(JSON.stringify(next.value, null, 2), '    ')}`
        first = false
        if (chunk.length >= 65_536) {
          await this.#write(chunk)
          chunk = ''
        }
      }
    } catch (error) {
      await this.#write(
        `${chunk}${first ? '' : '\n  '}],\n  "error": ${indent(JSON.stringify(errorJson(error), null, 2), '  ')}\n}\n`,
      )
      throw error
    }
    await this.#write(`${chunk}${first ? '' : '\n  '}]${tail}\n}\n`)
  }

  /** The human result written as it is made, a chunk of lines at a time (see `resultStream`). */
  async textStream(chunks: AsyncIterable<string>): Promise<void> {
    if (this.json) throw new Error('textStream is for human results')
    for await (const chunk of chunks) await this.#write(`${chunk}\n`)
  }

  /** Writes to stdout, waiting for it to drain when its buffer is full (a slow pipe). */
  async #write(text: string): Promise<void> {
    if (this.stdout.write(text)) return
    await new Promise<void>((resolve) => {
      const done = () => {
        this.stdout.off('drain', done)
        this.stdout.off('close', done)
        resolve()
      }
      this.stdout.once('drain', done)
      this.stdout.once('close', done)
    })
  }

  /** Shows a step: a spinner on a TTY (unless --json), else one line when it ends. */
  async task(label: string): Promise<TaskHandle> {
    const started = performance.now()
    const elapsed = () => this.color.dim(`(${Math.round(performance.now() - started)} ms)`)
    // A terminal that reports no width (some pseudo-terminals) would make ora redraw forever.
    if (this.stderr.isTTY && (this.stderr.columns ?? 0) > 0 && !this.json && colorLevel(this.stderr, this.#env) > 0) {
      const { default: ora } = await import('ora')
      // discardStdin off: ora would otherwise take over stdin and swallow Ctrl-C.
      const spinner = ora({ text: label, stream: this.stderr, discardStdin: false }).start()
      return {
        succeed: (text) => spinner.succeed(`${text ?? label} ${elapsed()}`),
        fail: (text) => spinner.fail(text ?? label),
        skip: (text) => spinner.info(`${text ?? label} ${this.color.dim('(skipped)')}`),
        update: (text) => {
          spinner.text = text
        },
      }
    }
    return {
      succeed: (text) => this.stderr.write(`${this.color.green('✔')} ${text ?? label} ${elapsed()}\n`),
      fail: (text) => this.stderr.write(`${this.color.red('✖')} ${text ?? label}\n`),
      skip: (text) => this.stderr.write(`- ${text ?? label} (skipped)\n`),
      update: () => {},
    }
  }

  /**
   * Asks yes/no on a TTY (default no); `undefined` when there is no terminal to ask. A plain
   * question and answer, so "no" is not shown as a green tick; Ctrl-C interrupts (exit 130).
   */
  async confirm(message: string): Promise<boolean | undefined> {
    if (!this.interactive) return undefined
    const { createInterface } = await import('node:readline/promises')
    const rl = createInterface({ input: process.stdin, output: this.stderr, terminal: true })
    const aborted = new AbortController()
    rl.once('SIGINT', () => aborted.abort())
    try {
      const answer = await rl.question(`${message} ${this.color.dim('[y/N]')} `, { signal: aborted.signal })
      return /^y(es)?$/i.test(answer.trim())
    } catch (error) {
      if (aborted.signal.aborted) {
        this.stderr.write('\n')
        throw new InterruptedError('confirmation')
      }
      throw error
    } finally {
      rl.close()
    }
  }

  /**
   * Asks for a secret on a TTY without echo; `undefined` when there is no terminal or the
   * answer is empty (unless `allowEmpty`: then ''). Ctrl-C interrupts the command (exit 130).
   */
  async password(message: string, allowEmpty = false): Promise<string | undefined> {
    if (!this.interactive) return undefined
    const { default: prompts } = await import('prompts')
    let canceled = false
    const answer = await prompts(
      { type: 'password', name: 'value', message, stdout: this.stderr },
      { onCancel: () => ((canceled = true), false) },
    )
    if (canceled) throw new InterruptedError('password prompt')
    if (typeof answer.value !== 'string') return undefined
    return answer.value !== '' || allowEmpty ? answer.value : undefined
  }

  /**
   * Reports an error: one sentence on stderr, a stack only with --verbose or for a bug; with
   * --json also `{"error": {"message", "exit_code"}}` on stdout, so scripts always get a
   * document. Returns the exit code.
   */
  error(thrown: unknown): number {
    // A full disk or a damaged database is the operator's to fix, not a bug: one line naming it.
    const error = knownErrorOf(thrown) ?? thrown
    if (this.json && !documented.has(this.stdout)) {
      documented.add(this.stdout)
      this.stdout.write(`${JSON.stringify({ error: errorJson(error) }, null, 2)}\n`)
    }
    if (error instanceof CancelledError) {
      this.stderr.write(`${error.message}\n`)
      return error.exitCode
    }
    if (error instanceof TenancyError) {
      this.stderr.write(`${this.color.red('error:')} ${error.message}\n`)
      if (this.verbose) {
        if (error.stack) this.stderr.write(`${this.color.dim(error.stack)}\n`)
        if (error.cause)
          this.stderr.write(
            `${this.color.dim(`cause: ${error.cause instanceof Error ? error.cause.stack : String(error.cause)}`)}\n`,
          )
      }
      return error.exitCode
    }
    this.stderr.write(`${this.color.red('error:')} ${messageOf(error)}\n`)
    if (this.verbose && error instanceof Error && error.stack) this.stderr.write(`${this.color.dim(error.stack)}\n`)
    else
      this.stderr.write(
        `${this.color.dim('this looks like a bug in tenancy; run again with --verbose for details and report it')}\n`,
      )
    return EXIT_FAILED
  }
}
