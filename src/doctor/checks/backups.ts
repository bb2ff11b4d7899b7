import { readdirSync, rmdirSync, rmSync, statSync } from 'node:fs'
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

/** The half-written sets in `dir` whose writer is a dead process of this machine, with that writer. */
function abandonedSetsIn(dir: string): { path: string; writer: string }[] {
  return namesIn(dir)
    .sort()
    .flatMap((name) => {
      const writer = writerOfTempSet(name)
      if (!name.startsWith(TEMP_PREFIX) || writer === undefined || ownerAlive(writer) !== false) return []
      return [{ path: join(dir, name), writer }]
    })
}

/** How old an empty archive directory must be before doctor takes it for a killed drop's. */
const EMPTY_ARCHIVE_AGE_MS = 60_000

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory()
  } catch {
    return false
  }
}

/**
 * Backup sets a killed `backup` left half-written (`<backups.path>/<site>/.tmp-<writer>-…`,
 * never listed), and those a killed `drop-site` or `tenant delete` left in the archive it was
 * preparing (`archived/sites/<site>-<stamp>/.tmp-…`): `abandoned_backup` when their writer is a
 * dead process of this machine; a live writer's, or another machine's, are left alone. The
 * repair removes the directory (and an archive that holds nothing else).
 */
export async function* checkBackups(bench: Bench): AsyncGenerator<Diagnosis> {
  const root = bench.path(bench.config.backups.path)
  for (const site of namesIn(root).sort()) {
    for (const { path, writer } of abandonedSetsIn(join(root, site))) {
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
  for (const archive of namesIn(bench.archivePath).sort()) {
    const dir = join(bench.archivePath, archive)
    // A drop killed right after making its archive: nothing in it. A young one may be a live drop's.
    if (namesIn(dir).length === 0 && isDirectory(dir) && Date.now() - statSync(dir).mtimeMs > EMPTY_ARCHIVE_AGE_MS) {
      yield {
        finding: {
          kind: 'empty_archive',
          subject: dir,
          problem: `the archive directory ${dir} is empty (a drop was stopped before it wrote anything)`,
          fix: 'remove it',
        },
        repair: async () => rmdirSync(dir),
      }
      continue
    }
    for (const { path, writer } of abandonedSetsIn(dir)) {
      yield {
        finding: {
          kind: 'abandoned_backup',
          subject: path,
          problem: `the backup a drop was taking into ${dir} was not finished (its process ${writer} is gone)`,
          fix: 'remove the half-written set, and the archive directory if nothing else is in it',
        },
        repair: async () => {
          rmSync(path, { recursive: true, force: true })
          try {
            rmdirSync(dir)
          } catch (error) {
            if (codeOf(error) !== NODE.ENOTEMPTY && codeOf(error) !== NODE.EEXIST) throw error
          }
        },
      }
    }
  }
}
