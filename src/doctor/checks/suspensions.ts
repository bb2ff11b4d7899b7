import { leaseHolderGone } from '../../registry/leases.js'
import { maintenanceOutOfLine, syncMaintenanceMode } from '../../provisioning/tenant-status.js'
import { readSiteConfig } from '../../sites/site.js'
import type { Diagnosis } from '../finding.js'
import type { DoctorInputs } from '../inputs.js'

/**
 * Tenants whose site config disagrees with their status (`maintenance_mismatch`): a suspended
 * tenant's site without `maintenance_mode: 1`, or a suspend or resume that stopped between its
 * registry commit and the config write. Repaired by writing the config the registry calls for.
 */
export async function* checkSuspensions(inputs: DoctorInputs): AsyncGenerator<Diagnosis> {
  const { bench } = inputs
  const ready = new Set(inputs.sites.filter((s) => s.state === 'ready').map((s) => s.name))
  for (const tenant of inputs.tenants) {
    if (!tenant.site || !ready.has(tenant.site) || tenant.pull_from !== null || !leaseHolderGone(tenant)) continue
    if (tenant.status !== 'suspended' && tenant.config_sync === null) continue
    let config: Record<string, unknown>
    try {
      config = readSiteConfig(bench.sitePath(tenant.site))
    } catch {
      // A site whose config cannot be read is reported by the site checks.
      continue
    }
    if (!maintenanceOutOfLine(config, tenant.status)) continue
    const problem =
      tenant.status === 'suspended'
        ? `tenant "${tenant.name}" is suspended but site_config.json of "${tenant.site}" has no maintenance_mode: 1`
        : `tenant "${tenant.name}" is ${tenant.status} but site_config.json of "${tenant.site}" still has maintenance_mode`
    yield {
      finding: {
        kind: 'maintenance_mismatch',
        subject: tenant.name,
        problem,
        fix: 'write maintenance_mode as the tenant status says',
      },
      repair: () => syncMaintenanceMode(bench, tenant.id),
    }
  }
}
