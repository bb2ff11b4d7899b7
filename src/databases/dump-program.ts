import { spawn } from 'node:child_process'
import { pipeline } from 'node:stream/promises'
import type { Transform, Writable } from 'node:stream'
import { NODE, codeOf } from '../error-codes.js'
import { InterruptedError, TenancyError, messageOf } from '../errors.js'
import { OutputTail } from '../util/output-tail.js'

/** A database's dump program and the Debian package that brings it. */
export interface DumpProgram {
  /** `pg_dump`, `mariadb-dump`. */
  command: string
  /** `postgresql-client`, `mariadb-client`. */
  debianPackage: string
}

/** How much of a failed dump's stderr its error message quotes. */
const EXCERPT_BYTES = 2000

/**
 * Runs a dump program (no shell) and streams its stdout, through `through` when given
 * (gzip), into `sink`, which it ends. `env` must already hold no secret (`childEnvironment`);
 * the password reaches the program through a file named in its arguments or environment.
 * A missing program is one line naming its Debian package; a failure quotes its stderr.
 */
export async function runDumpProgram(
  program: DumpProgram,
  args: string[],
  options: { env: Record<string, string>; sink: Writable; through?: Transform; what: string; signal?: AbortSignal },
): Promise<void> {
  const child = spawn(program.command, args, { env: options.env, stdio: ['ignore', 'pipe', 'pipe'] })
  const stderr = new OutputTail(EXCERPT_BYTES)
  child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk))
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null } | Error>((resolve) => {
    child.once('close', (code: number | null, signal: NodeJS.Signals | null) => resolve({ code, signal }))
    child.once('error', resolve)
  })
  const onAbort = () => child.kill('SIGTERM')
  if (options.signal?.aborted) onAbort()
  options.signal?.addEventListener('abort', onAbort, { once: true })
  try {
    const piped = (
      options.through ? pipeline(child.stdout, options.through, options.sink) : pipeline(child.stdout, options.sink)
    ).then(
      () => undefined,
      (error: unknown) => error as Error,
    )
    const outcome = await exited
    if (outcome instanceof Error) {
      child.stdout.destroy()
      await piped
      if (codeOf(outcome) === NODE.ENOENT)
        throw new TenancyError(
          `${program.command} was not found on PATH; install the Debian package ${program.debianPackage} ` +
            `(apt-get install -y ${program.debianPackage})`,
        )
      throw new TenancyError(`${options.what}: ${program.command} could not start: ${messageOf(outcome)}`)
    }
    const pipeError = await piped
    if (options.signal?.aborted) throw new InterruptedError(options.what)
    if (outcome.code !== 0) {
      const why = outcome.code !== null ? `exited with code ${outcome.code}` : `was killed by ${outcome.signal}`
      const said = stderr.text().trim()
      throw new TenancyError(`${options.what}: ${program.command} ${why}${said ? `: ${said}` : ''}`)
    }
    if (pipeError) throw pipeError
  } finally {
    options.signal?.removeEventListener('abort', onAbort)
  }
}
