import { createHash } from 'node:crypto'
import { createWriteStream, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs'
import { open } from 'node:fs/promises'
import { join } from 'node:path'
import { PassThrough, Transform, Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { NODE, codeOf } from '../error-codes.js'
import { storageError } from '../errors.js'
import type { SecretBox } from '../secrets/secret-box.js'
import { fsyncDirectory, writeFileAtomic } from '../util/json-file.js'
import { faultPoint } from '../util/fault.js'
import { PROCESS_OWNER } from '../util/process-owner.js'
import { fileChunks } from '../util/stream-chunks.js'
import { manifestText, type BackupManifest, type ManifestFile } from './manifest.js'

/**
 * The prefix of a set still being written: `.tmp-<pid@host>-XXXXXX`. Listing skips such
 * directories; doctor removes one whose writer is dead (`writerOfTempSet`).
 */
export const TEMP_PREFIX = '.tmp-'

/** The process (`pid@host`) writing a temporary set directory, read from its name. */
export function writerOfTempSet(name: string): string | undefined {
  // mkdtemp appends six characters to the prefix `.tmp-<owner>-`.
  if (!name.startsWith(TEMP_PREFIX) || name.length < TEMP_PREFIX.length + 8) return undefined
  return name.slice(TEMP_PREFIX.length, -7)
}
/** The suffix of a file of an encrypted set. */
export const ENCRYPTED_SUFFIX = '.enc'
export const MANIFEST = 'manifest.json'

export { stampOf } from '../util/stamp.js'

/**
 * One backup set being written: a private temporary directory beside where the set will be
 * (`<backups.path>/<site>/.tmp-…`), its files written through `file` (encrypted when a box is
 * given, each hashed as written), then `finish` writes the manifest last and renames the whole
 * directory into place, so a listed set is always complete. `discard` removes it after a failure.
 */
export class BackupSetWriter {
  readonly dir: string
  readonly #siteDir: string
  readonly #box: SecretBox | undefined
  readonly files: ManifestFile[] = []

  constructor(siteDir: string, box: SecretBox | undefined) {
    mkdirSync(siteDir, { recursive: true, mode: 0o700 })
    this.#siteDir = siteDir
    this.#box = box
    this.dir = mkdtempSync(join(siteDir, `${TEMP_PREFIX}${PROCESS_OWNER}-`))
  }

  get encrypted(): boolean {
    return this.#box !== undefined
  }

  /**
   * A stream into the set's file `name` (plus `.enc` when encrypted); `done` resolves once every
   * byte is on disk (fsync) and the file is in the manifest's list with its size and sha256.
   */
  file(name: string): { sink: Writable; done: Promise<void> } {
    const fileName = this.#box ? `${name}${ENCRYPTED_SUFFIX}` : name
    const path = join(this.dir, fileName)
    const hash = createHash('sha256')
    let bytes = 0
    const measure = new Transform({
      ...fileChunks,
      transform(chunk: Buffer, _encoding, next) {
        hash.update(chunk)
        bytes += chunk.length
        next(null, chunk)
      },
    })
    const sink = new PassThrough(fileChunks)
    const out = createWriteStream(path, { ...fileChunks, flags: 'wx', mode: 0o600 })
    const stages = this.#box ? [sink, this.#box.encryptingStream(), measure, out] : [sink, measure, out]
    const done = (async () => {
      await pipeline(stages as [PassThrough, ...Writable[]]).catch((error: unknown) => {
        throw storageError(error, path, 'the backup file') ?? error
      })
      const handle = await open(path, 'r')
      try {
        await handle.sync()
      } finally {
        await handle.close()
      }
      this.files.push({ name: fileName, bytes, sha256: hash.digest('hex') })
    })()
    // The pipeline's failure is reported through `done`; the writer of `sink` sees its own.
    done.catch(() => {})
    return { sink, done }
  }

  /** Writes a whole small file (the site config) through `file`. */
  async writeWhole(name: string, content: Buffer): Promise<void> {
    const { sink, done } = this.file(name)
    sink.end(content)
    await done
  }

  /**
   * Writes the manifest, makes the set durable and renames it to `<site>/<stamp>`; a name taken
   * by another set of the same millisecond gets a suffix. Returns the set's path.
   */
  finish(manifest: Omit<BackupManifest, 'files'>, stamp: string): string {
    const { encrypted, duration_ms, ...head } = manifest
    // In the SPEC's order of fields.
    const full: BackupManifest = { ...head, files: this.files, encrypted, duration_ms }
    // Made durable with the set's directory entries (writeFileAtomic syncs the directory it renames in).
    writeFileAtomic(join(this.dir, MANIFEST), manifestText(full), 0o600)
    faultPoint('backup-before-rename')
    for (let n = 0; ; n++) {
      const target = join(this.#siteDir, n === 0 ? stamp : `${stamp}-${n}`)
      try {
        renameSync(this.dir, target)
        fsyncDirectory(this.#siteDir)
        return target
      } catch (error) {
        const code = codeOf(error)
        if ((code !== NODE.EEXIST && code !== NODE.ENOTEMPTY) || n > 100) throw error
      }
    }
  }

  discard(): void {
    rmSync(this.dir, { recursive: true, force: true })
  }
}
