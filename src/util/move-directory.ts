import { cpSync, existsSync, renameSync, rmSync } from 'node:fs'
import { dirname } from 'node:path'
import { NODE, codeOf } from '../error-codes.js'
import { fsyncDirectory } from './json-file.js'

/**
 * Renames the directory `from` to `to` (one `rename(2)`, atomic on one filesystem) when `from`
 * is there and `to` is not, and makes the rename durable; otherwise changes nothing. So a move
 * a crash interrupted is finished by calling it again, and one that was done is left alone.
 * Returns whether it moved anything.
 */
export function moveDirectoryOnce(from: string, to: string): boolean {
  if (from === to || !existsSync(from) || existsSync(to)) return false
  renameSync(from, to)
  fsyncDirectory(dirname(to))
  return true
}

/**
 * Moves the directory `from` to `to`, which may be on another filesystem (`sites_path` on its
 * own disk, the archive in the bench): one `rename(2)` where it can, else a copy under a
 * temporary name beside `to`, renamed into place and made durable, and only then `from` removed.
 * A crash leaves `from` whole (and at worst a `.moving-*` copy beside `to`), never neither.
 */
export function moveDirectoryAcross(from: string, to: string): void {
  try {
    renameSync(from, to)
    return
  } catch (error) {
    if (codeOf(error) !== NODE.EXDEV) throw error
  }
  const partial = `${to}.moving-${process.pid}`
  rmSync(partial, { recursive: true, force: true })
  cpSync(from, partial, { recursive: true, preserveTimestamps: true, verbatimSymlinks: true })
  renameSync(partial, to)
  fsyncDirectory(dirname(to))
  rmSync(from, { recursive: true, force: true })
}
