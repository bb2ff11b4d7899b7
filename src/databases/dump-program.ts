import { spawn } from 'node:child_process'
import { pipeline } from 'node:stream/promises'
import type { Readable, Transform, Writable } from 'node:stream'
import { NODE, codeOf } from '../error-codes.js'
import { InterruptedError, TenancyError, messageOf } from '../errors.js'
import { OutputTail } from '../util/output-tail.js'

/** A database's dump or restore program and the Debian package that brings it. */
export interface DumpProgram {
  /** `pg_dump`, `pg_restore`, `mariadb-dump`, `mariadb`. */
  command: string
  /** `postgresql-client`, `mariadb-client`. */
  debianPackage: string
}

/** How much of a failed program's stderr its error message quotes. */
const EXCERPT_BYTES = 2000

/** What a dump or restore program reads and writes, and how it is reported. */
export interface ProgramStreams {
  /** Must already hold no secret (`childEnvironment`); the password reaches the program through a file. */
  env: Record<string, string>
  /** Streams the program's stdout, through `through` when given (gzip), into `sink`, which it ends. */
  sink?: Writable
  through?: Transform
  /** Feeds the program's stdin from these streams, piped in order (the dump, then its gunzip). */
  input?: [Readable, ...Transform[]]
  /** What the program is doing, for messages: `dumping the database "x" on 127.0.0.1:5432`. */
  what: string
  signal?: AbortSignal
}

/**
 * Runs a dump or restore program (no shell) with `streams` as its stdin and stdout. A missing
 * program is one line naming its Debian package; a failure quotes its stderr. A failing input
 * stream (an altered dump, a wrong key) stops the program and is the error.
 */
export async function runDumpProgram(program: DumpProgram, args: string[], streams: ProgramStreams): Promise<void> {
  const child = spawn(program.command, args, {
    env: streams.env,
    stdio: [streams.input ? 'pipe' : 'ignore', streams.sink ? 'pipe' : 'ignore', 'pipe'],
  })
  const stderr = new OutputTail(EXCERPT_BYTES)
  child.stderr!.on('data', (chunk: Buffer) => stderr.push(chunk))
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null } | Error>((resolve) => {
    child.once('close', (code: number | null, signal: NodeJS.Signals | null) => resolve({ code, signal }))
    child.once('error', resolve)
  })
  const onAbort = () => child.kill('SIGTERM')
  if (streams.signal?.aborted) onAbort()
  streams.signal?.addEventListener('abort', onAbort, { once: true })
  const settle = (p: Promise<void>) =>
    p.then(
      () => undefined,
      (error: unknown) => error as Error,
    )
  try {
    const { sink, through, input } = streams
    const piped = settle(
      !sink ? Promise.resolve() : through ? pipeline(child.stdout!, through, sink) : pipeline(child.stdout!, sink),
    )
    let inputError: Error | undefined
    const fed = settle(
      input ? pipeline([...input, child.stdin!] as unknown as [Readable, Writable]) : Promise.resolve(),
    )
    void fed.then((error) => {
      // A program that exits early makes its stdin a broken pipe: that is its failure, not the input's.
      if (error && codeOf(error) !== NODE.EPIPE && codeOf(error) !== NODE.ERR_STREAM_PREMATURE_CLOSE) {
        inputError = error
        child.kill('SIGTERM')
      }
    })
    const outcome = await exited
    if (outcome instanceof Error) {
      child.stdout?.destroy()
      await piped
      if (codeOf(outcome) === NODE.ENOENT)
        throw new TenancyError(
          `${program.command} was not found on PATH; install the Debian package ${program.debianPackage} ` +
            `(apt-get install -y ${program.debianPackage})`,
        )
      throw new TenancyError(`${streams.what}: ${program.command} could not start: ${messageOf(outcome)}`)
    }
    const pipeError = await piped
    await fed
    if (streams.signal?.aborted) throw new InterruptedError(streams.what)
    if (inputError) throw inputError
    if (outcome.code !== 0) {
      const why = outcome.code !== null ? `exited with code ${outcome.code}` : `was killed by ${outcome.signal}`
      // One line, as every error is: the program's own lines (pg_restore's indented hints) joined.
      const said = stderr
        .text()
        .trim()
        .replace(/\s*\n\s*/g, '; ')
      throw new TenancyError(`${streams.what}: ${program.command} ${why}${said ? `: ${said}` : ''}`)
    }
    if (pipeError) throw pipeError
  } finally {
    streams.signal?.removeEventListener('abort', onAbort)
  }
}
