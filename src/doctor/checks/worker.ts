import { ensureWorker, workerAlive } from '../../provisioning/worker.js'
import type { Diagnosis } from '../finding.js'
import type { DoctorInputs } from '../inputs.js'

/**
 * Jobs of this machine's tenants that wait with no worker running (`no_worker`): one is
 * started. A job placed on another machine (`jobs.host`) waits for that machine's workers.
 */
export async function* checkWorker(inputs: DoctorInputs): AsyncGenerator<Diagnosis> {
  const { bench, registry, remote } = inputs
  const remoteTenants = new Set(inputs.tenants.filter((t) => t.site && remote.has(t.site)).map((t) => t.id))
  const shared = registry.kind === 'postgres'
  // Read again: the repairs before this one queue, requeue and delete jobs.
  const waiting = (
    await registry.db
      .selectFrom('jobs')
      .select(['tenant_id', 'host'])
      .where('status', 'in', ['queued', 'retry', 'running'])
      .execute()
  ).filter((j) => !remoteTenants.has(j.tenant_id) && !(shared && j.host !== null && j.host !== bench.host))
  if (waiting.length === 0 || (await workerAlive(bench))) return
  yield {
    finding: {
      kind: 'no_worker',
      subject: 'worker',
      problem: `${waiting.length} job(s) wait and no worker is running`,
      fix: 'start "tenancy worker --once" in the background',
    },
    repair: () => ensureWorker(bench),
  }
}
