import { finishPull } from '../../pool/finish-pull.js'
import { RESERVATION_GRACE_MS } from '../../pool/reserve.js'
import { enqueueJob } from '../../registry/jobs.js'
import { leaseHolderGone } from '../../registry/leases.js'
import type { TenantRow } from '../../registry/tenants.js'
import type { Diagnosis } from '../finding.js'
import type { DoctorInputs, QueueInputs } from '../inputs.js'
import { provisionAgain, resume } from '../repairs.js'

/**
 * Tenants of this machine that nobody will finish: a pull whose holder is gone
 * (`stuck_pull`), an active tenant whose site is not registered (`tenant_without_site`),
 * and provisioning that is in progress, failed or queued with nobody on it (`stuck_tenant`,
 * `failed_tenant`, `queued_without_job`).
 */
export async function* checkTenants(inputs: DoctorInputs, queue: QueueInputs): AsyncGenerator<Diagnosis> {
  const { remote } = inputs
  for (const tenant of inputs.tenants) {
    // Another machine's tenant: its site is out of sight here (or will be made there), so nothing is repaired.
    if ((tenant.site && remote.has(tenant.site)) || (tenant.pull_from && remote.has(tenant.pull_from))) continue
    if (inputs.placedElsewhere.has(tenant.id)) continue
    const diagnosis = tenant.pull_from
      ? stuckPull(inputs, queue, tenant, tenant.pull_from)
      : (tenantWithoutSite(inputs, tenant) ?? unfinishedProvisioning(inputs, queue, tenant))
    if (diagnosis) yield diagnosis
  }
}

/** A pull from the pool whose holder is gone: finished. */
function stuckPull(inputs: DoctorInputs, queue: QueueInputs, tenant: TenantRow, from: string): Diagnosis | undefined {
  if (!leaseHolderGone(tenant, queue.at)) return undefined
  return {
    finding: {
      kind: 'stuck_pull',
      subject: tenant.name,
      problem: `the pull of tenant "${tenant.name}" from "${from}" did not finish`,
      fix: 'finish moving its site and keys',
    },
    repair: async () => {
      await finishPull(inputs.bench, tenant)
    },
  }
}

/** An active tenant whose site has no row: provisioned again. */
function tenantWithoutSite(inputs: DoctorInputs, tenant: TenantRow): Diagnosis | undefined {
  if (tenant.provisioning_status !== 'completed' || !tenant.site || inputs.known.has(tenant.site)) return undefined
  return {
    finding: {
      kind: 'tenant_without_site',
      subject: tenant.name,
      problem: `tenant "${tenant.name}" is active but its site "${tenant.site}" is not registered`,
      fix: 'provision its site again',
    },
    repair: () => provisionAgain(inputs.bench, inputs.registry, tenant),
  }
}

/** Provisioning in progress with its lease holder gone, failed, or queued, and no job to carry it on. */
function unfinishedProvisioning(inputs: DoctorInputs, queue: QueueInputs, tenant: TenantRow): Diagnosis | undefined {
  const { bench, registry } = inputs
  if (queue.jobTenants.has(tenant.id)) return undefined
  if (tenant.provisioning_status === 'in_progress' && leaseHolderGone(tenant, queue.at)) {
    return {
      finding: {
        kind: 'stuck_tenant',
        subject: tenant.name,
        problem: `tenant "${tenant.name}" is in_progress but nobody is provisioning it`,
        fix: 'resume its provisioning',
      },
      repair: () => resume(bench, tenant.name),
    }
  }
  if (tenant.provisioning_status === 'failed') {
    return {
      finding: {
        kind: 'failed_tenant',
        subject: tenant.name,
        problem: `tenant "${tenant.name}" failed to provision: ${tenant.error ?? 'unknown error'}`,
        fix: 'resume its provisioning',
      },
      repair: () => resume(bench, tenant.name),
    }
  }
  if (tenant.provisioning_status !== 'queued') return undefined
  // Pool reservations on an SQLite registry have no job: pending-create provisions them itself.
  // Only one left for ten minutes means the run that made it is gone.
  const pendingReservation = tenant.pending_since !== null
  if (pendingReservation && Date.parse(tenant.updated_at) > Date.now() - RESERVATION_GRACE_MS) return undefined
  return {
    finding: {
      kind: 'queued_without_job',
      subject: tenant.name,
      problem: `tenant "${tenant.name}" is queued but nobody will provision it`,
      fix: pendingReservation ? 'provision it (a pool reservation left by a run that stopped)' : 'queue a job for it',
    },
    repair: () =>
      pendingReservation ? resume(bench, tenant.name) : registry.writeTransaction((trx) => enqueueJob(trx, tenant.id)),
  }
}
