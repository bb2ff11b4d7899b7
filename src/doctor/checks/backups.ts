import { readdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import type { Bench } from '../../bench.js'
import { TEMP_PREFIX, writerOfTempSet } from '../../backups/backup-set.js'
import { NODE, codeOf } from '../../error-codes.js'
import { ownerAlive } from '../../util/process-owner.js'
import type { Diagnosis } from '../finding.js'

/** Names in a directory, or none when it is not there. */
function namesIn(dir: string): string[] {
  try {
    return readdirSync(dir)
  } catch (error) {
    if (codeOf(error) === NODE.ENOENT || codeOf(error) === NODE.ENOTDIR) return []
    throw error
  }
}

/**
 * Backup sets a killed `backup` left half-written (`<backups.path>/<site>/.tmp-<writer>-…`,
 * never listed): `abandoned_backup` when their writer is a dead process of this machine; a
 * live writer's, or another machine's, are left alone. The repair removes the directory.
 */
export async function* checkBackups(bench: Bench): AsyncGenerator<Diagnosis> {
  const root = bench.path(bench.config.backups.path)
  for (const site of namesIn(root).sort()) {
    for (const name of namesIn(join(root, site)).sort()) {
      const writer = writerOfTempSet(name)
      if (!name.startsWith(TEMP_PREFIX) || writer === undefined || ownerAlive(writer) !== false) continue
      const path = join(root, site, name)
      yield {
        finding: {
          kind: 'abandoned_backup',
          subject: path,
          problem: `a backup of site "${site}" was not finished (its process ${writer} is gone)`,
          fix: 'remove the half-written set',
        },
        repair: async () => rmSync(path, { recursive: true, force: true }),
      }
    }
  }
}
