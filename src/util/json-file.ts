import { closeSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { usageError } from '../errors.js'

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
          for (let k = 1; k <= 4; k++) if (!/[0-9a-fA-F]/.test(text[i + k] ?? '')) (i += k, fail())
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
        : `unexpected ${JSON.stringify(text[offset])}${/^(Expected|Unexpected|Bad)/.test(message) && !message.includes('is not valid JSON') ? ` (${message.replace(/ in JSON at position \d+.*$/, '')})` : ''}`
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

/**
 * Writes a file atomically: a temporary file beside it, fsync, rename over the target,
 * fsync the directory. Readers see the old or the new content, never a torn one.
 */
export function writeFileAtomic(file: string, content: string, mode = 0o644): void {
  const dir = dirname(file)
  const temp = join(dir, `.${basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`)
  const fd = openSync(temp, 'wx', mode)
  try {
    writeSync(fd, content)
    fsyncSync(fd)
  } catch (error) {
    closeSync(fd)
    rmSync(temp, { force: true })
    throw error
  }
  closeSync(fd)
  try {
    renameSync(temp, file)
  } catch (error) {
    rmSync(temp, { force: true })
    throw error
  }
  fsyncDirectory(dir)
}

/** Writes a JSON document atomically, pretty-printed with a trailing newline. */
export function writeJsonAtomic(file: string, value: unknown, mode = 0o644): void {
  writeFileAtomic(file, `${JSON.stringify(value, null, 2)}\n`, mode)
}
