import { leaseHolderGone } from '../../registry/leases.js'
import { now } from '../../registry/registry.js'
import type { Diagnosis } from '../finding.js'
import type { DoctorInputs, QueueInputs } from '../inputs.js'

/** Jobs whose tenant no longer exists (`orphan_job`), and running jobs whose worker is gone (`lost_job`). */
export async function* checkJobs(inputs: DoctorInputs, queue: QueueInputs): AsyncGenerator<Diagnosis> {
  const { registry, tenantById } = inputs
  for (const job of queue.jobs) {
    const tenant = tenantById.get(job.tenant_id)
    if (!tenant) {
      yield {
        finding: {
          kind: 'orphan_job',
          subject: `job ${job.id}`,
          problem: `job ${job.id} belongs to a tenant that no longer exists`,
          fix: 'delete it',
        },
        repair: () => registry.db.deleteFrom('jobs').where('id', '=', job.id).execute(),
      }
      continue
    }
    // Another machine's job (its tenant placed there, or the job for its host) is that machine's
    // doctor's to judge (SPEC §10): its worker may only be restarting.
    if (job.status !== 'running' || inputs.placedElsewhere.has(tenant.id)) continue
    if (job.host !== null && job.host !== inputs.bench.host) continue
    // A running job with no owner is judged by its lease's expiry alone.
    const workerGone = job.lease_owner
      ? leaseHolderGone(job, queue.at)
      : job.lease_expires_at !== null && job.lease_expires_at < queue.at
    if (!workerGone) continue
    yield {
      finding: {
        kind: 'lost_job',
        subject: `job ${job.id}`,
        problem: `job ${job.id} (tenant "${tenant.name}") is running in a worker that is gone`,
        fix: 'queue it again',
      },
      repair: () =>
        registry.db
          .updateTable('jobs')
          .set({ status: 'queued', lease_owner: null, lease_expires_at: null, run_at: now(), updated_at: now() })
          .where('id', '=', job.id)
          .execute(),
    }
  }
}
