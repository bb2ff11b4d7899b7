import { existsSync } from 'node:fs'
import type { Kysely } from 'kysely'
import type { Bench, SiteJobCommand } from '../bench.js'
import { liveWorkerHosts } from '../registry/hosts.js'
import { runOnMachines } from '../sites/remote-sites.js'
import { TenancyError, messageOf, usageError } from '../errors.js'
import { isUniqueViolation, now } from '../registry/registry.js'
import { ownerAlive } from '../util/process-owner.js'
import type { RegistrySchema } from '../registry/schema.js'
import { notHomedElsewhere } from '../sites/site-home.js'
import { readSiteConfig } from '../sites/site.js'
import { startWatchdog } from '../util/blocked-watchdog.js'
import { faultPoint } from '../util/fault.js'
import { PROCESS_OWNER } from '../util/process-owner.js'
import { LEASE_MS, inFuture, keepAlive, newOwner, renewLease } from '../registry/leases.js'
import { deliverNow } from '../provisioning/runner.js'
import { requireTenant } from '../provisioning/tenant-record.js'
import { parseData, tenantJson, type TenantJson, type TenantRow } from '../registry/tenants.js'
import { assertFree, assertUserTenantName, createTenant, siteFor } from '../provisioning/tenants.js'
import { moveSiteFiles } from '../provisioning/rename-site.js'
import type { SiteResult } from '../migrate/site-migrator.js'
import { finishPull, pullPlan, type PullPlan } from './finish-pull.js'

export interface PullAttributes {
  /** The tenant's name; default: the pending tenant's placeholder name. */
  name?: string
  site?: string
  siteUrl?: string
  /** Attributes merged over the pending tenant's own. */
  data?: Record<string, unknown>
}

export interface PullResult extends TenantJson {
  pulled_from: string
  /** Migrations applied to the pulled site to bring it up to date. */
  migrated?: string[]
  /** Something that went wrong after the pull itself succeeded (migration, notification). */
  warning?: string
}

export interface Claimed {
  /** The tenant as the pull made it (`pull_from` set, leased to the puller). */
  tenant: TenantRow
  /** The row as it was in the pool, to put it back if the pull cannot finish. */
  original: TenantRow
  /** What finishing it migrates and whose hooks it runs; undefined for a site on another machine (it plans there). */
  plan?: PullPlan
  /** The machine the site lives on when it is not this one: its worker finishes the pull. */
  home?: string
}

/**
 * The ready pending tenants a pull may take, oldest first: on an SQLite registry (`where`
 * undefined) every one; on a shared registry those whose site is homed on this machine
 * (`where.here`), or else those of the other machines with a live worker (`where.on`), whose
 * worker then finishes the pull there (SPEC §10: own machine first, then any machine's; the site
 * stays where it lives).
 */
function readyInPool(trx: Kysely<RegistrySchema>, where: { here: string } | { on: string[] } | undefined) {
  return trx
    .selectFrom('tenants')
    .selectAll()
    .where('pending_since', 'is not', null)
    .where('provisioning_status', '=', 'completed')
    .$if(where !== undefined && 'here' in where, (q) => q.where(notHomedElsewhere((where as { here: string }).here)))
    .$if(where !== undefined && 'on' in where, (q) =>
      q.where((eb) =>
        eb.exists(
          eb
            .selectFrom('sites')
            .select('sites.name')
            .whereRef('sites.name', '=', 'tenants.site')
            .where('sites.host', 'in', (where as { on: string[] }).on),
        ),
      ),
    )
    .orderBy('pending_since')
    .orderBy('id')
}

/**
 * Claims the oldest ready pending tenant for `attrs` in one transaction; undefined when none
 * is ready. Everything the rest of the pull needs (its apps, the site's config) is checked
 * inside that transaction, so a pull that could not finish never commits its claim.
 */
async function claim(bench: Bench, attrs: PullAttributes, owner: string): Promise<Claimed | undefined> {
  const registry = await bench.registry()
  if (registry.kind === 'sqlite') return claimFrom(bench, attrs, owner, undefined)
  const here = await claimFrom(bench, attrs, owner, { here: bench.host })
  if (here) return here
  // None of this machine's: another machine's, if its worker is there to finish the pull.
  const live = [...(await liveWorkerHosts(registry.db))].filter((h) => h !== bench.host)
  return live.length > 0 ? claimFrom(bench, attrs, owner, { on: live }) : undefined
}

async function claimFrom(
  bench: Bench,
  attrs: PullAttributes,
  owner: string,
  where: { here: string } | { on: string[] } | undefined,
): Promise<Claimed | undefined> {
  const registry = await bench.registry()
  const remote = where !== undefined && 'on' in where
  return registry.claimTransaction(async (trx: Kysely<RegistrySchema>) => {
    const at = now()
    const ready = readyInPool(trx, where)
    // One row at a time: with SKIP LOCKED, locking every candidate would make concurrent
    // sign-ups find the pool "empty" while one claimer holds rows it does not take.
    let tenant: TenantRow | undefined = await registry
      .lockCandidates(
        ready.where((eb) => eb.or([eb('lease_owner', 'is', null), eb('lease_expires_at', '<', at)])).limit(1),
        'tenants',
      )
      .executeTakeFirst()
    if (!tenant) {
      // A lease whose holder died on this machine before it expired: free to take as well.
      const leased = await ready.where('lease_owner', 'is not', null).limit(20).execute()
      for (const candidate of leased.filter((t) => ownerAlive(t.lease_owner!) === false)) {
        tenant = await registry.lockCandidates(ready.where('id', '=', candidate.id), 'tenants').executeTakeFirst()
        if (tenant && tenant.lease_owner === candidate.lease_owner) break
        tenant = undefined
      }
    }
    if (!tenant) return undefined
    const name = attrs.name ?? tenant.name
    const site = attrs.name || attrs.site || attrs.siteUrl ? siteFor(bench, name, attrs) : tenant.site!
    if (name !== tenant.name || site !== tenant.site) {
      await assertFree(trx, name, site)
      if (!remote && site !== tenant.site && existsSync(bench.sitePath(site))) {
        throw usageError(
          `directory ${bench.sitePath(site)} exists but no site is registered under that name; ` +
            `move it away or give another --site`,
        )
      }
    }
    const data = { ...parseData(tenant.data), ...(attrs.data ?? {}) }
    let plan: PullPlan | undefined
    try {
      // Another machine's site is planned and checked there.
      if (!remote) {
        plan = await pullPlan(trx, bench, tenant.site!)
        readSiteConfig(bench.sitePath(tenant.site!))
      }
    } catch (error) {
      const exitCode = error instanceof TenancyError ? error.exitCode : undefined
      throw new TenancyError(`cannot pull a tenant from the pool: ${messageOf(error)}; the pool is unchanged`, {
        cause: error,
        exitCode,
      })
    }
    // What the claim changes: in the row, and in the copy the rest of the pull works from.
    const pulled = {
      name,
      site,
      data: JSON.stringify(data),
      pending_since: null,
      pull_from: tenant.site,
      lease_owner: owner,
    }
    // assertFree read the names without a lock another machine respects (claims do not take the
    // registry's write lock): a name taken meanwhile surfaces as the unique index's violation.
    try {
      const claimed = await trx
        .updateTable('tenants')
        // created_at becomes the sign-up time: the pool time is kept in the steps' timings.
        .set({ ...pulled, lease_expires_at: inFuture(LEASE_MS), created_at: at, updated_at: at })
        .where('id', '=', tenant.id)
        .where('pending_since', 'is not', null)
        .where((eb) =>
          tenant.lease_owner === null ? eb('lease_owner', 'is', null) : eb('lease_owner', '=', tenant.lease_owner),
        )
        .executeTakeFirst()
      if (Number(claimed.numUpdatedRows) !== 1) return undefined
      // A pull is a rename (even to the same site: the API user follows the tenant's name): its
      // intent is the site's row, recorded in the claim's own transaction.
      await trx
        .updateTable('sites')
        // Another machine's site has no owner process there: the tenant's lease says whether the
        // pull is still being finished (its machine finishes it once the lease runs out).
        .set({
          name: site,
          state: 'renaming',
          rename_from: tenant.site,
          owner: remote ? null : PROCESS_OWNER,
          updated_at: at,
        })
        .where('name', '=', tenant.site!)
        .execute()
    } catch (error) {
      if (isUniqueViolation(error))
        throw usageError(`tenant "${name}" or site "${site}" was taken by another process just now; pick another name`)
      throw error
    }
    const home = remote
      ? ((await trx.selectFrom('sites').select('host').where('name', '=', site).executeTakeFirst())?.host ?? undefined)
      : undefined
    return { tenant: { ...tenant, ...pulled }, original: tenant, plan, ...(home ? { home } : {}) }
  })
}

/**
 * Undoes a committed claim whose pull could not finish before it changed the site's
 * database: the site's files (the rename's `moveSiteFiles` in reverse) and the registry rows go
 * back to the placeholder, and the tenant back to the pool. A crash in here leaves `pull_from`
 * set, which recovery finishes forward.
 */
async function returnToPool(bench: Bench, claimed: Claimed): Promise<void> {
  const { tenant, original } = claimed
  const registry = await bench.registry()
  moveSiteFiles(bench, tenant.site!, original.site!)
  await registry.writeTransaction(async (trx) => {
    const at = now()
    const back = await trx
      .updateTable('tenants')
      .set({
        name: original.name,
        site: original.site,
        data: original.data,
        pending_since: original.pending_since,
        created_at: original.created_at,
        pull_from: null,
        lease_owner: null,
        lease_expires_at: null,
        updated_at: at,
      })
      .where('id', '=', tenant.id)
      .where('lease_owner', '=', tenant.lease_owner)
      .where('pull_from', 'is not', null)
      .executeTakeFirst()
    if (Number(back.numUpdatedRows) === 1)
      await trx
        .updateTable('sites')
        .set({ name: original.site!, state: 'ready', rename_from: null, updated_at: at })
        .where('name', '=', tenant.site!)
        .execute()
  })
}

/**
 * `pullPendingFromPool(firstOrCreate, attrs)`: takes the oldest ready pending tenant for
 * `attrs`, atomically; two concurrent pulls never get the same tenant, and a pull that fails
 * before its claim commits leaves the tenant in the pool. Returns null when the pool has no
 * ready tenant, unless `firstOrCreate`, which provisions a new tenant then.
 */
export async function pullPendingFromPool(
  bench: Bench,
  firstOrCreate = false,
  attrs: PullAttributes = {},
): Promise<PullResult | null> {
  if (attrs.name !== undefined) assertUserTenantName(attrs.name)
  // The apps' after_rename hooks run near the pull's end: the watchdog's thread starts now.
  startWatchdog()
  // A pull stores a new secret: a wrong key must fail here, while the tenant is still in the pool.
  await bench.secretBox()
  const owner = newOwner()
  const taken = await claim(bench, attrs, owner)
  if (!taken) {
    if (!firstOrCreate) return null
    if (!attrs.name) throw usageError('the pool is empty and a new tenant needs a name; pass attrs.name')
    const created = await createTenant(bench, {
      name: attrs.name,
      site: attrs.site,
      siteUrl: attrs.siteUrl,
      data: attrs.data,
    })
    if (created.provisioning && created.provisioning.status !== 'completed') {
      throw new TenancyError(
        `the pool is empty and provisioning tenant "${attrs.name}" failed: ${created.provisioning.error}`,
      )
    }
    const { mode: _mode, steps: _steps, provisioning: _p, worker_started: _w, host: _h, ...tenant } = created
    return { ...tenant, pulled_from: '' }
  }
  faultPoint('pull-after-claim')
  return taken.home ? finishOnHome(bench, taken, taken.home) : finishClaimedPull(bench, taken)
}

/**
 * Finishes a committed claim on this machine, where the site lives: the rename's files, API user,
 * migration and hooks (`finishPull`), or the claim undone when that fails before the site
 * changed. Another machine's worker runs this for the pulls of its sites (`pull` site jobs).
 */
export async function finishClaimedPull(bench: Bench, taken: Claimed): Promise<PullResult> {
  const claimed = taken.tenant
  const plan = taken.plan ?? (await pullPlan((await bench.registry()).db, bench, claimed.site!))
  let migration: SiteResult | undefined
  let hookError: TenancyError | undefined
  let finished: TenantRow | undefined
  const progress = { siteChanged: false }
  try {
    ;({ migration, hookError, tenant: finished } = await finishPull(bench, claimed, { plan, progress }))
  } catch (error) {
    if (!progress.siteChanged) {
      const undone = await returnToPool(bench, taken).then(
        () => true,
        () => false,
      )
      if (undone)
        throw new TenancyError(
          `pulling a tenant from the pool failed: ${messageOf(error)}; the tenant stays in the pool`,
          { cause: error },
        )
    }
    throw new TenancyError(
      `pulled tenant "${claimed.name}" but could not finish moving its site from "${claimed.pull_from}": ` +
        `${messageOf(error)}; run "tenancy doctor --fix"`,
      { cause: error },
    )
  }
  const registry = await bench.registry()
  let warning: string | undefined
  if (migration?.status === 'failed') {
    warning =
      `tenant "${claimed.name}" was pulled but its site could not be brought up to date: ${migration.error}; ` +
      `run "tenancy migrate --site ${claimed.site}"`
    await registry.logError({ tenant: claimed.name, site: claimed.site, step: 'pull', message: warning })
  }
  // Logged by the rename already; the sign-up stands, the hooks can be run again.
  const hookWarning = hookError
    ? `tenant "${claimed.name}" was pulled, but ${messageOf(hookError)}; its data may still name ` +
      `"${claimed.pull_from}": fix the app, then run "tenancy rename-site ${claimed.pull_from} ${claimed.site}" ` +
      `to run the after_rename hooks again`
    : undefined
  // The row the pull's last transaction read, unless another process finished it meanwhile.
  const row = finished ?? (await requireTenant(bench, claimed.name))
  const notifyError = (await deliverNow(bench, row.id)).notify_error
  return {
    ...tenantJson(row),
    pulled_from: claimed.pull_from!,
    migrated: migration?.applied ?? [],
    ...(warning || hookWarning || notifyError
      ? { warning: [warning, hookWarning, notifyError].filter(Boolean).join('; ') }
      : {}),
  }
}

/** One site's result of a `pull` site job: the pull as the site's machine finished it. */
interface RemotePull {
  site: string
  status: 'pulled' | 'failed' | 'unreachable' | 'interrupted'
  error: string | null
  pull?: PullResult
}

/**
 * Has machine `home`'s worker finish a pull claimed here of a site that lives there, and waits for
 * it. If that machine cannot be reached after all, the claim stands (its row names the rename),
 * and that machine finishes it when it next opens the registry.
 */
async function finishOnHome(bench: Bench, taken: Claimed, home: string): Promise<PullResult> {
  const registry = await bench.registry()
  const site = (await registry.getSite(taken.tenant.site!))!
  let outcome: RemotePull | undefined
  // The tenant's lease stays this pull's while the other machine finishes it.
  const lease = keepAlive(() => renewLease(registry, 'tenants', taken.tenant.id, taken.tenant.lease_owner!))
  try {
    await runOnMachines<RemotePull>(
      bench,
      [site],
      // The tenant by id (its machine reads the row, encrypted secrets and all, from the registry)
      // and what the pool row was, to put it back if the pull cannot finish there.
      // The claim is committed: that machine finishes it even if this command is killed meanwhile.
      {
        command: 'pull',
        payload: { tenantId: taken.tenant.id, original: poolFields(taken.original) },
        outlivesSender: true,
      },
      { onResult: (r) => (outcome = r), blank: (s, status, error) => ({ site: s, status, error }) },
    )
  } finally {
    lease.stop()
  }
  if (outcome?.status === 'pulled' && outcome.pull) return outcome.pull
  const why = outcome?.error ?? `machine ${home} did not answer`
  throw new TenancyError(
    outcome?.status === 'failed'
      ? `pulling a tenant from the pool of machine ${home} failed there: ${why}`
      : `pulled tenant "${taken.tenant.name}" from the pool of machine ${home}, which has not finished moving its site: ${why}; ` +
          `it finishes when tenancy next runs there (or "tenancy doctor --fix" on ${home})`,
  )
}

/** What `returnToPool` puts back: the pool row's own fields (no secret). */
function poolFields(row: TenantRow): Pick<TenantRow, 'name' | 'site' | 'data' | 'pending_since' | 'created_at'> {
  return {
    name: row.name,
    site: row.site,
    data: row.data,
    pending_since: row.pending_since,
    created_at: row.created_at,
  }
}

/** The pool's site-job commands: `pull`, a pull claimed on another machine of a site that lives here. */
export const POOL_SITE_JOB_COMMANDS: Record<string, SiteJobCommand> = {
  pull: async (bench, payload, over) => {
    const { tenantId, original } = payload as { tenantId: number; original: ReturnType<typeof poolFields> }
    const site = over.sites[0]!
    try {
      const tenant = await (
        await bench.registry()
      ).db
        .selectFrom('tenants')
        .selectAll()
        .where('id', '=', tenantId)
        .where('pull_from', 'is not', null)
        .executeTakeFirst()
      if (!tenant) throw new TenancyError('the pull was finished or undone meanwhile')
      const pull = await finishClaimedPull(bench, { tenant, original: { ...tenant, ...original } })
      over.onSite({ site, status: 'pulled', error: null, pull } as RemotePull)
    } catch (error) {
      over.onSite({ site, status: 'failed', error: messageOf(error) })
    }
  },
}

/** `pullPending(attrs)`: a tenant from the pool, or a newly provisioned one when the pool is empty. */
export async function pullPending(bench: Bench, attrs: PullAttributes & { name: string }): Promise<PullResult> {
  return (await pullPendingFromPool(bench, true, attrs))!
}
