import { resumeRename } from '../../provisioning/rename-site.js'
import { ownerAlive } from '../../util/process-owner.js'
import type { Diagnosis } from '../finding.js'
import type { DoctorInputs } from '../inputs.js'

/**
 * Renames of this machine's sites that nobody will finish: one whose process is gone
 * (`stuck_rename`; the next command finishes those too, so doctor sees one only when that
 * failed), and a renamed site whose apps' `after_rename` hooks failed (`unfinished_rename`).
 * The repair finishes the rename (for the second, runs the hooks again). Pulls are
 * `stuck_pull`s (checks/tenants.ts).
 */
export async function* checkRenames(inputs: DoctorInputs): AsyncGenerator<Diagnosis> {
  const { bench, tenantById } = inputs
  for (const site of inputs.sites) {
    const from = site.rename_from
    if (!from || (site.tenant_id !== null && tenantById.get(site.tenant_id)?.pull_from)) continue
    const stuck = site.state === 'renaming'
    if (stuck && site.owner !== null && ownerAlive(site.owner) !== false) continue
    yield {
      finding: stuck
        ? {
            kind: 'stuck_rename',
            subject: site.name,
            problem: `the rename of site "${from}" to "${site.name}" did not finish (its process ${site.owner} is gone)`,
            fix: "finish it: move what still bears the old name, then run the apps' after_rename hooks",
          }
        : {
            kind: 'unfinished_rename',
            subject: site.name,
            problem: `site "${site.name}" was renamed from "${from}" but an app's after_rename hook failed (see "tenancy errors")`,
            fix: 'run the after_rename hooks again',
          },
      repair: async () => {
        const { hookError } = await resumeRename(bench, site)
        if (hookError) throw hookError
      },
    }
  }
}
