import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Bench } from '../bench.js'
import { writeFileAtomic } from '../util/json-file.js'
import { moveDirectoryOnce } from '../util/move-directory.js'
import { MANIFEST } from './backup-set.js'
import { backupsRoot } from './backup.js'
import { completeSets } from './list-backups.js'
import { manifestIntact, manifestText } from './manifest.js'

/** Where a site's backup sets are: `<backups.path>/<site>/`. */
export function siteBackupsPath(bench: Bench, site: string): string {
  return join(backupsRoot(bench), site)
}

/**
 * Follows a site's rename from `from` to `to` in `backups.path`: its folder is renamed, then each
 * whole set in it that was the site's under `from` gets a manifest naming `to` (and, in
 * `backed_up_as`, the name its data was taken under), so `list-backups --site TO` lists it and
 * `restore TO` takes it as the site's own. A manifest that does not check out is left as it is
 * (restore refuses it either way: a rewrite must never make an altered set look whole). Each
 * manifest is written atomically and only while it still names `from`, so running this again
 * after a crash finishes what is left.
 */
export function moveSiteBackups(bench: Bench, from: string, to: string): void {
  const dir = siteBackupsPath(bench, to)
  moveDirectoryOnce(siteBackupsPath(bench, from), dir)
  for (const { path, manifest } of completeSets(dir)) {
    if (manifest.site !== from) continue
    const file = join(path, MANIFEST)
    const text = readFileSync(file, 'utf8')
    if (!manifestIntact(text, manifest)) continue
    const { checksum: _checksum, backed_up_as: earlier, ...rest } = manifest
    const takenAs = earlier ?? from
    writeFileAtomic(file, manifestText({ ...rest, site: to, ...(takenAs !== to && { backed_up_as: takenAs }) }))
  }
}
