import { finishInterruptedRestore, readRestoreIntent } from '../../backups/restore.js'
import { ownerAlive } from '../../util/process-owner.js'
import type { Diagnosis } from '../finding.js'
import type { DoctorInputs } from '../inputs.js'

/**
 * Restores a kill interrupted (a site directory still holding `.restore.json` whose process is
 * gone): `interrupted_restore`. The repair finishes it the way the registry row says it got:
 * switched, the old database is dropped; not switched, the half-restored one is.
 */
export async function* checkRestores(inputs: DoctorInputs): AsyncGenerator<Diagnosis> {
  const { bench } = inputs
  for (const site of inputs.sites) {
    const intent = readRestoreIntent(bench.sitePath(site.name))
    if (!intent || ownerAlive(intent.owner) !== false) continue
    const switched = site.db_name === intent.new.db_name
    yield {
      finding: {
        kind: 'interrupted_restore',
        subject: site.name,
        problem:
          `a restore of site "${site.name}" from ${intent.from} was interrupted (its process ${intent.owner} is gone) ` +
          (switched ? 'after the switch' : 'before the switch'),
        fix: intent.rehome_from
          ? switched
            ? `finish it: the site lives here now (its old database on ${intent.rehome_from} is left)`
            : `drop the half-restored database ${intent.new.db_name} and this directory; the site stays on ${intent.rehome_from}`
          : switched
            ? `finish it: drop the old database ${intent.old.db_name}`
            : `drop the half-restored database ${intent.new.db_name}; the site stays on ${intent.old.db_name}`,
      },
      repair: () => finishInterruptedRestore(bench, site.name, intent),
    }
  }
}
