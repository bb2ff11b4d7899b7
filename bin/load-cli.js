// Loads the CLI bundle (dist/cli.cjs) with V8's code cache (dist/cli.cjs.v8cache).
//
// Node 20 has no module compile cache, so every command would compile the bundle anew (some
// 30 ms); V8 can instead start from the bytecode an earlier run produced. The bundle is a
// CommonJS script compiled here as a `vm.Script` with that cache as `cachedData`, and
// after a command the cache is written again when it did not cover that command yet: made
// after the run, it holds every function the run compiled, so each command's code is
// compiled once per build and Node version.
//
// A cache is used only when its header matches this Node, V8 and architecture and the
// bundle's SHA-256, and its bytes match their SHA-256 (V8 itself checks neither the bytes
// nor the source, and a damaged cache can crash it); V8 may still reject one (other V8
// flags). Any mismatch or failure means a plain compile, never an error, and the cache is
// written anew where the directory is writable (a read-only install just compiles).
import { createHash } from 'node:crypto'
import { accessSync, constants, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { SourceMap, createRequire } from 'node:module'
import { dirname } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { Script } from 'node:vm'

const BUNDLE = fileURLToPath(new URL('../dist/cli.cjs', import.meta.url))
const CACHE = `${BUNDLE}.v8cache`
const FORMAT = 1
// A run longer than this does not add itself to a cache that other runs made: V8 may have
// dropped (flushed) the bytecode of functions it left unused that long, and a cache written
// now would lose them. (A long run still writes a cache where there was none.)
const LONG_RUN_SECONDS = 5

const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex')

/** The cache's bytes and the commands they cover, when `CACHE` is one for `source` here; else undefined. */
function readCache(source) {
  let file
  try {
    file = readFileSync(CACHE)
  } catch {
    return undefined
  }
  const end = file.indexOf(10)
  if (end < 0) return undefined
  let header
  try {
    header = JSON.parse(file.toString('utf8', 0, end))
  } catch {
    return undefined
  }
  const data = file.subarray(end + 1)
  const matches =
    header?.format === FORMAT &&
    header.node === process.version &&
    header.v8 === process.versions.v8 &&
    header.arch === process.arch &&
    header.source === source &&
    header.data === sha256(data) &&
    Array.isArray(header.commands)
  return matches ? { data, commands: header.commands } : undefined
}

/** Writes the cache (a temporary file renamed over it, so a reader sees a whole one); failures are ignored. */
function writeCache(script, source, commands) {
  const temporary = `${CACHE}.${process.pid}.tmp`
  try {
    // Serializing costs a few ms: not when nothing could be written.
    accessSync(dirname(CACHE), constants.W_OK)
    const data = script.createCachedData()
    const header = { format: FORMAT, node: process.version, v8: process.versions.v8, arch: process.arch, source }
    const line = JSON.stringify({ ...header, data: sha256(data), commands })
    writeFileSync(temporary, Buffer.concat([Buffer.from(`${line}\n`), data]))
    renameSync(temporary, CACHE)
  } catch {
    rmSync(temporary, { force: true })
  }
}

/**
 * With --verbose: stack frames in the bundle shown at their place in src/. Node maps the
 * modules its loaders load, not a `vm.Script`, so frames are mapped here through the
 * bundle's source map (`column` counts from the wrapper's end on the first line).
 */
function mapStackTraces(wrapperLength) {
  let map
  try {
    map = new SourceMap(JSON.parse(readFileSync(`${BUNDLE}.map`, 'utf8')))
  } catch {
    return
  }
  const mapUrl = pathToFileURL(`${BUNDLE}.map`)
  const place = (frame) => {
    const line = frame.getLineNumber()
    const column = frame.getColumnNumber()
    const at = `${BUNDLE}:${line}:${column}`
    const entry = map.findEntry(line - 1, column - 1 - (line === 1 ? wrapperLength : 0))
    if (!entry?.originalSource) return undefined
    const source = fileURLToPath(new URL(entry.originalSource, mapUrl))
    return [at, `${source}:${entry.originalLine + 1}:${entry.originalColumn + 1}`]
  }
  Error.prepareStackTrace = (error, frames) => {
    const lines = frames.map((frame) => {
      const text = frame.toString()
      const mapped = frame.getFileName() === BUNDLE ? place(frame) : undefined
      return `    at ${mapped ? text.replace(mapped[0], mapped[1]) : text}`
    })
    let head
    try {
      head = Error.prototype.toString.call(error)
    } catch {
      head = '<error>'
    }
    return [head, ...lines].join('\n')
  }
}

/**
 * Compiles and runs the bundle; returns its `main` and `saveCache(command)`, which writes the
 * cache when none was used or it does not cover `command` (what `main` resolved to) yet.
 */
export function loadCli() {
  let bytes
  try {
    bytes = readFileSync(BUNDLE)
  } catch (error) {
    if (error.code !== 'ENOENT') throw error
    process.stderr.write(`error: ${BUNDLE} is missing; build it with "npm run build" in ${dirname(dirname(BUNDLE))}\n`)
    process.exit(1)
  }
  const source = sha256(bytes)
  const cache = readCache(source)
  const wrapper =
    '(function (exports, require, module, __filename, __dirname, __tenancy_import_meta_url, __tenancy_import) {'
  if (process.argv.includes('--verbose') || process.argv.includes('-v')) mapStackTraces(wrapper.length)
  const script = new Script(`${wrapper}${bytes.toString('utf8')}\n})`, { filename: BUNDLE, cachedData: cache?.data })
  const used = cache !== undefined && !script.cachedDataRejected
  const covered = used ? cache.commands : []
  const module = { exports: {} }
  const url = pathToFileURL(BUNDLE).href
  const importModule = (specifier) => import(specifier)
  script.runInThisContext()(module.exports, createRequire(BUNDLE), module, BUNDLE, dirname(BUNDLE), url, importModule)
  return {
    main: module.exports.main,
    saveCache(command) {
      if (used && (command === undefined || covered.includes(command) || process.uptime() > LONG_RUN_SECONDS)) return
      writeCache(script, source, command === undefined ? covered : [...covered, command])
    },
  }
}
