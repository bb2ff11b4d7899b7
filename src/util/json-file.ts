import {
  closeSync,
  fchmodSync,
  fsyncSync,
  linkSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { TenancyError, messageOf, storageError, usageError } from '../errors.js'
import { faultActive } from './fault.js'

/** Line and column (1-based) of a character offset in a text. */
function lineAndColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1
  let lineStart = 0
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text.charCodeAt(i) === 10) {
      line++
      lineStart = i + 1
    }
  }
  return { line, column: offset - lineStart + 1 }
}

/**
 * The offset of the first syntax error in `text` (V8 names the position for some errors
 * only). A small recursive scanner over the JSON grammar; it never builds values.
 */
export function jsonErrorOffset(text: string): number {
  let i = 0
  const ws = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i]!)) i++
  }
  const fail = (): never => {
    throw i
  }
  const literal = (word: string) => {
    for (const ch of word) if (text[i++] !== ch) (i--, fail())
  }
  const string = () => {
    i++
    while (i < text.length && text[i] !== '"') {
      const code = text.charCodeAt(i)
      if (code < 0x20) fail()
      if (text[i] === '\\') {
        i++
        if (text[i] === 'u') {
          for (let k = 1; k <= 4; k++) if (!/[0-9a-fA-F]/.test(text[i + k] ?? '')) ((i += k), fail())
          i += 4
        } else if (!'"\\/bfnrt'.includes(text[i] ?? 'x')) fail()
      }
      i++
    }
    if (i >= text.length) fail()
    i++
  }
  const number = () => {
    const match = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i))
    if (!match || match[0] === '-' || match[0] === '') fail()
    i += match![0].length
  }
  const value = (): void => {
    ws()
    const ch = text[i]
    if (ch === '{') {
      i++
      ws()
      if (text[i] === '}') return void i++
      for (;;) {
        ws()
        if (text[i] !== '"') fail()
        string()
        ws()
        if (text[i] !== ':') fail()
        i++
        value()
        ws()
        if (text[i] === ',') i++
        else if (text[i] === '}') return void i++
        else fail()
      }
    }
    if (ch === '[') {
      i++
      ws()
      if (text[i] === ']') return void i++
      for (;;) {
        value()
        ws()
        if (text[i] === ',') i++
        else if (text[i] === ']') return void i++
        else fail()
      }
    }
    if (ch === '"') return string()
    if (ch === 't') return literal('true')
    if (ch === 'f') return literal('false')
    if (ch === 'n') return literal('null')
    if (ch === '-' || (ch !== undefined && ch >= '0' && ch <= '9')) return number()
    fail()
  }
  try {
    value()
    ws()
    return i < text.length ? i : -1
  } catch (offset) {
    return offset as number
  }
}

/**
 * Parses JSON text; a syntax error becomes a usage error naming the file, line and column.
 */
export function parseJson(text: string, file: string, fix = 'fix the file and run the command again'): unknown {
  try {
    return JSON.parse(text)
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error)
    const found = jsonErrorOffset(text)
    const offset = found >= 0 ? found : text.length
    const { line, column } = lineAndColumn(text, offset)
    const reason =
      offset >= text.length
        ? 'the text ends before the JSON is complete'
        : `unexpected ${JSON.stringify(text[offset])}` +
          `${
            /^(Expected|Unexpected|Bad)/.test(message) && !message.includes('is not valid JSON')
              ? ` (${message.replace(/ in JSON at position \d+.*$/, '')})`
              : ''
          }`
    throw usageError(`malformed JSON in ${file} at line ${line}, column ${column}: ${reason}; ${fix}`)
  }
}

/** Reads and parses a JSON file; a missing file is `undefined` when `optional` is set. */
export function readJsonFile(file: string, options: { optional?: boolean } = {}): unknown {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (error) {
    if (options.optional && (error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw usageError(`cannot read ${file}: ${(error as Error).message}`, error)
  }
  return parseJson(text, file)
}

/** fsync a directory so a rename or create inside it survives a power cut. */
export function fsyncDirectory(dir: string): void {
  let fd: number | undefined
  try {
    fd = openSync(dir, 'r')
    fsyncSync(fd)
  } catch {
    // Some filesystems refuse fsync on directories; the rename is still atomic.
  } finally {
    if (fd !== undefined) closeSync(fd)
  }
}

/** At most this many bytes per write under the `short-write` fault. */
const SHORT_WRITE_BYTES = 1000

/** One `write(2)`, shortened or failed as the `short-write` / `disk-full` faults say. */
function writeSome(fd: number, data: Buffer, offset: number, calls: number): number {
  const length = data.length - offset
  if (faultActive('short-write')) return writeSync(fd, data, offset, Math.min(length, SHORT_WRITE_BYTES))
  if (faultActive('disk-full')) {
    if (calls > 0)
      throw Object.assign(new Error('ENOSPC: no space left on device, write'), {
        code: 'ENOSPC',
        errno: -28,
        syscall: 'write',
      })
    return writeSync(fd, data, offset, Math.ceil(length / 2))
  }
  return writeSync(fd, data, offset, length)
}

/**
 * Writes `data` to a new temporary file beside `file` with `mode` (exactly, whatever the
 * umask): every byte (a short write is not success), then fsync. Returns its path. On any
 * error the temporary file is removed and the error names `file` ("disk full" for ENOSPC).
 */
function writeTempFile(file: string, data: Buffer, mode: number): string {
  const temp = join(dirname(file), `.${basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`)
  let fd: number | undefined
  try {
    fd = openSync(temp, 'wx', mode)
    fchmodSync(fd, mode)
    for (let offset = 0, calls = 0; offset < data.length; calls++) {
      const written = writeSome(fd, data, offset, calls)
      if (written <= 0) throw Object.assign(new Error('write made no progress'), { code: 'EIO' })
      offset += written
    }
    fsyncSync(fd)
    closeSync(fd)
    fd = undefined
    return temp
  } catch (error) {
    if (fd !== undefined) closeSync(fd)
    rmSync(temp, { force: true })
    throw writeError(file, error)
  }
}

/** The error for a failed write of `file`: one line naming it, the old file kept. */
function writeError(file: string, error: unknown): TenancyError {
  return (
    storageError(error, file, 'the file') ??
    new TenancyError(`cannot write ${file}: ${messageOf(error)}; the old file is unchanged`, { cause: error })
  )
}

/** The mode a rewrite of `file` gets: `mode` when given, else the existing file's, else 0644. */
function modeFor(file: string, mode: number | undefined): number {
  if (mode !== undefined) return mode
  try {
    return statSync(file).mode & 0o7777
  } catch {
    return 0o644
  }
}

/**
 * Writes a file atomically: a temporary file beside it holding every byte, fsync, rename
 * over the target, fsync the directory. Readers see the old or the new content, never a
 * torn one; on any failure (a full disk included) the old file is left as it was and the
 * error, a `TenancyError`, names the file. `mode` (for files holding secrets: 0600) is set
 * exactly; without it a rewrite keeps the existing file's mode.
 */
export function writeFileAtomic(file: string, content: string | Buffer, mode?: number): void {
  const temp = writeTempFile(file, Buffer.from(content), modeFor(file, mode))
  try {
    renameSync(temp, file)
  } catch (error) {
    rmSync(temp, { force: true })
    throw writeError(file, error)
  }
  fsyncDirectory(dirname(file))
}

/**
 * Creates `file` with `content` only if it does not exist yet, whole or not at all (a
 * hard link of a complete temporary file). Returns false when another writer was first;
 * its file is then complete too. With `durable: false` the new name need not survive a power
 * cut (a lock file: its holder does not either), so the directory is not fsynced; if the name
 * does survive, so does its content.
 */
export function createFileOnce(file: string, content: string, mode: number, { durable = true } = {}): boolean {
  const temp = writeTempFile(file, Buffer.from(content), mode)
  try {
    linkSync(temp, file)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false
    throw writeError(file, error)
  } finally {
    rmSync(temp, { force: true })
  }
  if (durable) fsyncDirectory(dirname(file))
  return true
}

/** Writes a JSON document atomically, pretty-printed with a trailing newline (`mode` as writeFileAtomic). */
export function writeJsonAtomic(file: string, value: unknown, mode?: number): void {
  writeFileAtomic(file, `${JSON.stringify(value, null, 2)}\n`, mode)
}
