import type { Bench } from '../bench.js'
import { TenancyError, usageError } from '../errors.js'
import { recordEvent, type EventType } from '../events/outbox.js'
import { leaseHolderGone, usingTenantLease } from '../registry/leases.js'
import { now } from '../registry/registry.js'
import { tenantJson, type TenantJson, type TenantRow, type TenantStatus } from '../registry/tenants.js'
import { assertHomedHere, isHomedHere } from '../sites/site-home.js'
import { readSiteConfig, requireSite, siteConfigPath, writeSiteConfig } from '../sites/site.js'
import { faultPoint } from '../util/fault.js'
import { withFileLock } from '../util/file-lock.js'
import { deliverNow } from './runner.js'
import { renamedMeanwhile, requireTenant } from './tenant-record.js'

/** The status changes an operator makes: where each starts, where it leads, and what it announces. */
const CHANGES = {
  suspend: { from: 'active', to: 'suspended', event: 'tenant.suspended', done: 'suspended' },
  resume: { from: 'suspended', to: 'active', event: 'tenant.resumed', done: 'resumed' },
} as const satisfies Record<string, { from: TenantStatus; to: TenantStatus; event: EventType; done: string }>

export type StatusChange = keyof typeof CHANGES

/** The longest `--reason` kept: a sentence for the record, not a document. */
const MAX_REASON = 500

export interface StatusChangeResult extends TenantJson {
  /** false when the tenant had that status already (its site config was still made to match). */
  changed: boolean
  /** The event could not be delivered now; the outbox sends it again later. */
  notify_error?: string
}

/**
 * Refuses a change the tenant is not in a state for: a pool tenant belongs to nobody (exit 2);
 * one being pulled or not yet provisioned cannot be suspended or resumed yet (exit 1).
 */
function assertChangeable(tenant: TenantRow, change: StatusChange): void {
  const { name } = tenant
  const { from, to, done } = CHANGES[change]
  if (tenant.pull_from !== null)
    throw new TenancyError(`tenant "${name}" is being pulled from the pool right now; try again in a moment`)
  if (tenant.pending_since !== null)
    throw usageError(
      `tenant "${name}" is a pending tenant in the pool and belongs to nobody yet, so it cannot be ${done}; ` +
        `remove it with "tenancy pending-clear" instead`,
    )
  if (tenant.provisioning_status !== 'completed')
    throw new TenancyError(
      `tenant "${name}" is not provisioned (provisioning_status ${tenant.provisioning_status}), ` +
        `so it cannot be ${done}; finish it with "tenancy provision ${name}" first`,
    )
  if (tenant.status !== from && tenant.status !== to)
    throw new TenancyError(`tenant "${name}" is ${tenant.status}, so it cannot be ${done}`)
}

/** A `--reason`: one line of at most 500 characters (it goes into events and listings). */
function checkReason(reason: string | undefined): string | null {
  if (reason === undefined) return null
  const text = reason.trim()
  if (text === '' || text.length > MAX_REASON || /[\0\r\n]/.test(text))
    throw usageError(`invalid --reason ${JSON.stringify(reason)}: give one line of 1 to ${MAX_REASON} characters`)
  return text
}

/**
 * Whether a site's config disagrees with its tenant's status: a suspended tenant's site must
 * have `maintenance_mode: 1`; an active one's must have none once a resume wrote it (an
 * operator's own `maintenance_mode` on an active site is theirs, so only a half-done change
 * counts, see `config_sync`).
 */
export function maintenanceOutOfLine(config: Record<string, unknown>, status: string): boolean {
  return status === 'suspended' ? config.maintenance_mode !== 1 : Object.hasOwn(config, 'maintenance_mode')
}

/**
 * Brings a tenant's `site_config.json` in line with its registry status: `maintenance_mode: 1`
 * while suspended, no `maintenance_mode` otherwise (an atomic write, only when it differs),
 * then clears the tenant's `config_sync` marker. The status is read under the file's lock,
 * so of two writers the last one writes the status committed last. Safe to run any time.
 */
export async function syncMaintenanceMode(bench: Bench, tenantId: number): Promise<void> {
  const registry = await bench.registry()
  const read = () =>
    registry.db.selectFrom('tenants').select(['site', 'status']).where('id', '=', tenantId).executeTakeFirst()
  const site = (await read())?.site
  if (!site) return
  const path = bench.sitePath(site)
  await withFileLock(siteConfigPath(path), async () => {
    const row = await read()
    // Deleted or moved to another site meanwhile: whoever did that owns the site's config now.
    if (!row || row.site !== site) return
    const config = readSiteConfig(path)
    if (maintenanceOutOfLine(config, row.status)) {
      if (row.status === 'suspended') config.maintenance_mode = 1
      else delete config.maintenance_mode
      writeSiteConfig(path, config)
    }
    await registry.db
      .updateTable('tenants')
      .set({ config_sync: null })
      .where('id', '=', tenantId)
      .where('status', '=', row.status)
      .execute()
  })
}

/**
 * `tenancy tenant suspend` / `tenant resume`: sets `status` (`suspended` / `active`), records
 * `tenant.suspended` / `tenant.resumed` and a `config_sync` marker in one registry
 * transaction, then writes `maintenance_mode` in the site's config. The registry is the
 * commit point: from it on, `verify-key` refuses (or accepts) the site's keys; a crash before
 * the config is written is finished by the next command (`finishStatusChanges`), and running
 * the command again finishes it too (a tenant already in that status is only re-synced, with
 * no second event).
 */
export async function changeTenantStatus(
  bench: Bench,
  name: string,
  change: StatusChange,
  options: { reason?: string } = {},
): Promise<StatusChangeResult> {
  const reason = change === 'suspend' ? checkReason(options.reason) : null
  const registry = await bench.registry()
  const tenant = await requireTenant(bench, name)
  assertChangeable(tenant, change)
  if (!tenant.site) throw new TenancyError(`tenant "${name}" has no site to ${change}`)
  assertHomedHere(bench, registry.kind, await requireSite(bench, tenant.site), `tenant ${change} ${name}`)
  const { to, event } = CHANGES[change]
  const outcome = await usingTenantLease(bench, tenant.id, {}, async () => {
    const changed = await registry.writeTransaction(async (trx) => {
      const row = await trx.selectFrom('tenants').selectAll().where('id', '=', tenant.id).executeTakeFirst()
      if (row?.name !== name) throw renamedMeanwhile(name, row)
      assertChangeable(row, change)
      if (row.status === to) return false
      const at = now()
      await trx
        .updateTable('tenants')
        .set({
          status: to,
          suspended_at: to === 'suspended' ? at : null,
          suspend_reason: reason,
          config_sync: 1,
          updated_at: at,
        })
        .where('id', '=', tenant.id)
        .execute()
      const updated = await trx.selectFrom('tenants').selectAll().where('id', '=', tenant.id).executeTakeFirstOrThrow()
      await recordEvent(bench, trx, event, updated, change === 'suspend' ? { reason } : {})
      return true
    })
    faultPoint('status-after-commit')
    await syncMaintenanceMode(bench, tenant.id)
    return changed
  })
  if (!outcome.taken)
    throw new TenancyError(`tenant "${name}" is busy (held by ${outcome.heldBy}); try again when that is done`)
  const row = await requireTenant(bench, name)
  return { ...tenantJson(row), changed: outcome.value, ...(await deliverNow(bench, row.id)) }
}

/**
 * Finishes the status changes a killed process left half-done (`config_sync` set, its holder
 * gone, its site on this machine): their site configs are written now. Run by every command
 * when it opens the registry; one probe of an index when there is none. A config that cannot
 * be written is left for `doctor`, which reports it with its error.
 */
export async function finishStatusChanges(bench: Bench): Promise<void> {
  const registry = await bench.registry()
  // "> 0", not "IS NOT NULL" (the marker is 1 or null): SQLite, with no statistics, scans the
  // whole table for an IS NOT NULL instead of probing tenants_config_sync (40 ms a command with
  // 100,000 tenants).
  const rows = await registry.db.selectFrom('tenants').selectAll().where('config_sync', '>', 0).execute()
  for (const row of rows) {
    if (!row.site || !leaseHolderGone(row)) continue
    const site = await registry.getSite(row.site)
    if (!site || !isHomedHere(bench, registry.kind, site)) continue
    await syncMaintenanceMode(bench, row.id).catch(() => undefined)
  }
}
