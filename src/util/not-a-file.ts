import { statSync } from 'node:fs'
import { NODE, codeOf } from '../error-codes.js'

/**
 * Why `path` is not a regular file to read, in words for an error (`does not exist`, `is a
 * directory`, …), or undefined when it is one.
 *
 * @example
 * notAFile('/tmp') // 'is a directory, not a file'
 */
export function notAFile(path: string): string | undefined {
  try {
    const stat = statSync(path)
    if (stat.isFile()) return undefined
    return stat.isDirectory() ? 'is a directory, not a file' : 'is not a regular file'
  } catch (error) {
    return codeOf(error) === NODE.EACCES ? 'cannot be read (permission denied)' : 'does not exist'
  }
}
