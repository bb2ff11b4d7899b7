import { existsSync, renameSync } from 'node:fs'
import { dirname } from 'node:path'
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
