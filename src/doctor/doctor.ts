import type { Bench } from '../bench.js'
import { messageOf } from '../errors.js'
import { homeName } from '../sites/site-home.js'
import { checkBackups } from './checks/backups.js'
import { checkEvents } from './checks/events.js'
import { checkJobs } from './checks/jobs.js'
import { checkRegisteredSites } from './checks/registered-sites.js'
import { checkRenames } from './checks/renames.js'
import { checkRestores } from './checks/restores.js'
import { checkSiteDirectories } from './checks/site-directories.js'
import { checkSuspensions } from './checks/suspensions.js'
import { checkTenants } from './checks/tenants.js'
import { checkWorker } from './checks/worker.js'
import type { Diagnosis, Finding } from './finding.js'
import { gatherInputs, readQueue } from './inputs.js'

export type { Finding } from './finding.js'

export interface DoctorResult {
  findings: Finding[]
  fixed: number
  remaining: number
  /** Sites that live on other machines (a shared registry): listed, never judged or touched here. */
  elsewhere: { site: string; host: string }[]
  /** Directories left alone this time because they are too young to judge (a site may be on its way in). */
  too_young: { directory: string; age_s: number }[]
}

export interface DoctorOptions {
  /** Repair or remove what is found. */
  fix?: boolean
  /** Register every intact site directory that has no row (also when the registry is missing or empty). */
  adopt?: boolean
  onFinding?: (f: Finding) => void
}

/**
 * `tenancy doctor`: compares the registry with what is on disk and in the queue: site
 * directories without rows, rows without directories or databases, half-made sites whose
 * creator died, tenants stuck in provisioning, jobs that will never run. With `fix`, each
 * is repaired (resumed) or removed. A site directory without a row is adopted (with `fix`
 * or `adopt`), never moved; only a directory that is no site at all is moved to
 * `archived/sites/`, never deleted. Sites homed on another machine are left alone.
 */
export async function doctor(bench: Bench, options: DoctorOptions = {}): Promise<DoctorResult> {
  const registry = await bench.registry({ adopt: options.adopt })
  // Repairs resume provisioning, which writes secrets: a wrong key is exit 2 before any.
  if (options.fix) await bench.secretBox()
  const findings: Finding[] = []
  const tooYoung: DoctorResult['too_young'] = []
  // Each finding is repaired before the check looks for the next: later ones see its effect.
  const settle = async (diagnoses: AsyncIterable<Diagnosis>) => {
    for await (const { finding, repair, adopt } of diagnoses) {
      findings.push(finding)
      if (repair && (options.fix || (adopt && options.adopt))) {
        try {
          await repair()
          finding.fixed = true
        } catch (error) {
          finding.fixed = false
          finding.fix_error = messageOf(error)
        }
      }
      // Every finding has the README's whole shape: a script reads `fixed` without guessing.
      finding.fixed ??= false
      finding.fix_error ??= null
      options.onFinding?.(finding)
    }
  }

  const inputs = await gatherInputs(bench, registry, options)
  // First: a site a restore left between two databases is whole again before it is judged.
  await settle(checkRestores(inputs))
  // And one a rename left between two names.
  await settle(checkRenames(inputs))
  await settle(checkSiteDirectories(inputs, tooYoung))
  await settle(checkRegisteredSites(inputs))
  const queue = await readQueue(registry)
  await settle(checkTenants(inputs, queue))
  await settle(checkSuspensions(inputs))
  await settle(checkJobs(inputs, queue))
  await settle(checkWorker(inputs))
  await settle(checkBackups(bench))
  // Last, so events written by the repairs above (a finished pull, say) are sent too.
  await settle(checkEvents(bench))

  const fixed = findings.filter((f) => f.fixed).length
  return {
    findings,
    fixed,
    remaining: findings.length - fixed,
    elsewhere: inputs.elsewhere.map((s) => ({ site: s.name, host: homeName(s) })),
    too_young: tooYoung,
  }
}
