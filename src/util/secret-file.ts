import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/**
 * Writes `content` (a password file for a child program) to a new 0600 file in a private
 * 0700 directory, runs `fn` with its path, and always removes both, so a secret reaches a
 * child through a file only its owner can read, never through argv or the environment. A
 * `parent` other than the system temp directory is one whose owner removes it after a crash
 * (a backup's or a restore's work directory), so a kill -9 does not leave the secret behind.
 *
 * @example
 * await withSecretFile('pgpass', `*:*:*:${user}:${password}\n`, (file) => run({ PGPASSFILE: file }))
 */
export async function withSecretFile<T>(
  name: string,
  content: string,
  fn: (file: string) => Promise<T>,
  parent: string = tmpdir(),
): Promise<T> {
  const dir = mkdtempSync(join(parent, parent === tmpdir() ? 'tenancy-secret-' : '.secret-'))
  try {
    const file = join(dir, name)
    writeFileSync(file, content, { mode: 0o600, flag: 'wx' })
    return await fn(file)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
