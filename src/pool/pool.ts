import { randomBytes } from 'node:crypto'
import { existsSync, renameSync } from 'node:fs'
import type { Kysely } from 'kysely'
import type { Bench } from '../bench.js'
import { TenancyError, messageOf, usageError } from '../errors.js'
import { assertSiteName } from '../names.js'
import { isUniqueViolation, now } from '../registry/registry.js'
import { PROCESS_OWNER, ownerAlive } from '../util/process-owner.js'
import type { RegistrySchema } from '../registry/schema.js'
import { generateKeysFor } from '../sites/api-keys.js'
import { adminToDropSite, dropSite } from '../sites/drop-site.js'
import { homeName, isHomedHere, notHomedElsewhere } from '../sites/site-home.js'
import { readSiteConfig, usingSite } from '../sites/site.js'
import { faultPoint } from '../util/fault.js'
import { fsyncDirectory } from '../util/json-file.js'
import { LEASE_MS, inFuture, leaseHolderGone, newOwner, tryTenantLease } from '../registry/leases.js'
import { deliverNow, provisionTenant, type ProvisionResult } from '../provisioning/runner.js'
import { apiUserFor, preflight } from '../provisioning/steps.js'
import { requireTenant, tenantSteps } from '../provisioning/tenant-record.js'
import { parseData, stepJson, tenantJson, type StepJson, type TenantJson, type TenantRow } from '../registry/tenants.js'
import {
  assertFree,
  assertUserTenantName,
  createTenant,
  insertTenant,
  siteFor,
  type CreateTenantOptions,
  type CreateTenantResult,
} from '../provisioning/tenants.js'
import { recordEvent } from '../events/outbox.js'
import { resolveInstallOrder } from '../apps/manifest.js'
import { migrateOpenSite, planApps, type MigrationPlan, type SiteResult } from '../migrate/site-migrator.js'

/** Default attributes for pending tenants: a function in code, or `pending.attributes` in the config. */
export type PendingAttributesHook = () => Record<string, unknown> | Promise<Record<string, unknown>>

export interface PoolOptions {
  getPendingAttributes?: PendingAttributesHook
}

async function defaultAttributes(bench: Bench, options: PoolOptions): Promise<Record<string, unknown>> {
  return { ...(bench.config.pending.attributes ?? {}), ...((await options.getPendingAttributes?.()) ?? {}) }
}

/** The pool size to maintain: `--count`, else TENANCY_PENDING_COUNT / `pending.count` (already merged into the config). */
export function poolTarget(bench: Bench, count?: number): number {
  if (count === undefined) return bench.config.pending.count
  if (!Number.isInteger(count) || count < 0 || count > 100_000)
    throw usageError(`invalid --count "${count}": give a whole number from 0 to 100000`)
  return count
}

/** Counts of the pool: ready to pull, and still being provisioned (or waiting to be). */
export async function poolStatus(bench: Bench): Promise<{ ready: number; provisioning: number; failed: number }> {
  const registry = await bench.registry()
  const rows = await registry.db
    .selectFrom('tenants')
    .select(['provisioning_status', (eb) => eb.fn.countAll<number>().as('n')])
    .where('pending_since', 'is not', null)
    .groupBy('provisioning_status')
    .execute()
  const count = (statuses: string[]) =>
    rows.filter((r) => statuses.includes(r.provisioning_status)).reduce((n, r) => n + Number(r.n), 0)
  return {
    ready: count(['completed']),
    provisioning: count(['not_started', 'queued', 'in_progress']),
    failed: count(['failed']),
  }
}

/** `pendingCount()`: how many pending tenants there are, ready or still being provisioned. */
export async function pendingCount(bench: Bench): Promise<number> {
  const status = await poolStatus(bench)
  return status.ready + status.provisioning + status.failed
}

function placeholder(bench: Bench): { name: string; site: string } {
  const name = `pending-${randomBytes(5).toString('hex')}`
  return { name, site: assertSiteName(`${name}.${bench.config.default_site_domain}`) }
}

/** The placeholder name a pending tenant had, from its placeholder site (`pending-….<domain>`). */
function placeholderName(site: string): string {
  return site.split('.')[0]!
}

/**
 * Reserves the shortfall of the pool in one write transaction: counts pending tenants
 * (ready or not) and inserts only what is missing, so overlapping runs never push the pool
 * over `target`. Returns the names reserved.
 */
export async function reservePending(bench: Bench, target: number, options: PoolOptions = {}): Promise<string[]> {
  const steps = await preflight(bench, { provisionsHere: true })
  const data = await defaultAttributes(bench, options)
  const registry = await bench.registry()
  return registry.writeTransaction(async (trx) => {
    const row = await trx
      .selectFrom('tenants')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('pending_since', 'is not', null)
      .executeTakeFirst()
    const shortfall = Math.max(0, target - Number(row?.n ?? 0))
    const names: string[] = []
    for (let i = 0; i < shortfall; i++) {
      const { name, site } = placeholder(bench)
      await insertTenant(
        trx,
        { name, site, data, provisioningStatus: 'queued', pendingSince: now(), queueJob: false },
        steps,
      )
      names.push(name)
    }
    return names
  })
}

export interface PendingCreateResult {
  target: number
  reserved: string[]
  provisioned: string[]
  failed: { tenant: string; error: string }[]
  pool: { ready: number; provisioning: number; failed: number }
}

/**
 * `tenancy pending-create`: keeps `target` pending tenants. Reserves the shortfall, then
 * provisions what it reserved and any reservation a run that died left behind (skipping
 * tenants another live process is provisioning), `concurrency` at a time.
 */
export async function pendingCreate(
  bench: Bench,
  options: PoolOptions & {
    count?: number
    concurrency?: number
    signal?: AbortSignal
    onProvisioned?: (r: ProvisionResult) => void
  } = {},
): Promise<PendingCreateResult> {
  const target = poolTarget(bench, options.count)
  const reserved = await reservePending(bench, target, options)
  const registry = await bench.registry()
  const unfinished = await registry.db
    .selectFrom('tenants')
    .select('name')
    .where('pending_since', 'is not', null)
    .where('provisioning_status', 'in', ['not_started', 'queued', 'in_progress', 'failed'])
    .orderBy('pending_since')
    .execute()
  const queue = [...new Set([...reserved, ...unfinished.map((t) => t.name)])]
  const provisioned: string[] = []
  const failed: { tenant: string; error: string }[] = []
  const lane = async () => {
    for (let name = queue.shift(); name !== undefined && !options.signal?.aborted; name = queue.shift()) {
      let result: ProvisionResult
      try {
        result = await provisionTenant(bench, name, { signal: options.signal, waitForLease: false })
      } catch (error) {
        // Cleared or pulled meanwhile: nothing to do for it here.
        if (error instanceof TenancyError && error.exitCode === 2) continue
        throw error
      }
      options.onProvisioned?.(result)
      if (result.status === 'completed') provisioned.push(name)
      else if (result.status === 'failed') failed.push({ tenant: name, error: result.error ?? 'unknown error' })
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, options.concurrency ?? 1) }, lane))
  return { target, reserved, provisioned, failed, pool: await poolStatus(bench) }
}

/** `createPending(attrs)`: adds one pending tenant to the pool now, whatever the pool's size. */
export async function createPending(
  bench: Bench,
  attrs: Record<string, unknown> = {},
  options: PoolOptions = {},
): Promise<TenantJson> {
  const steps = await preflight(bench, { provisionsHere: true })
  const data = { ...(await defaultAttributes(bench, options)), ...attrs }
  const { name, site } = placeholder(bench)
  const registry = await bench.registry()
  await registry.writeTransaction((trx) =>
    insertTenant(trx, { name, site, data, provisioningStatus: 'queued', pendingSince: now(), queueJob: false }, steps),
  )
  const result = await provisionTenant(bench, name)
  if (result.status !== 'completed')
    throw new TenancyError(
      `creating a pending tenant failed: ${result.error}; it stays in the pool, run "tenancy pending-create" to finish it`,
    )
  return tenantJson(await requireTenant(bench, name))
}

export interface ClearResult {
  cleared: string[]
  skipped: { tenant: string; reason: string }[]
}

/**
 * `tenancy pending-clear`: deletes pending tenants (all, or older than the bound) with their
 * sites. A tenant is deleted only if it is still pending at the moment of the delete and no
 * one holds it, so a tenant pulled (or being provisioned) meanwhile is never touched.
 */
export async function pendingClear(
  bench: Bench,
  options: { olderThanDays?: number; olderThanHours?: number } = {},
): Promise<ClearResult> {
  if (options.olderThanDays !== undefined && options.olderThanHours !== undefined) {
    throw usageError('give either --older-than-days or --older-than-hours, not both')
  }
  for (const [flag, value] of [
    ['--older-than-days', options.olderThanDays],
    ['--older-than-hours', options.olderThanHours],
  ] as const) {
    if (value !== undefined && (!Number.isFinite(value) || value < 0))
      throw usageError(`invalid ${flag} "${value}": give a number of ${flag.slice(13)} of 0 or more`)
  }
  const hours = options.olderThanDays !== undefined ? options.olderThanDays * 24 : options.olderThanHours
  const registry = await bench.registry()
  let query = registry.db.selectFrom('tenants').selectAll().where('pending_since', 'is not', null)
  if (hours !== undefined)
    query = query.where('pending_since', '<', new Date(Date.now() - hours * 3_600_000).toISOString())
  const candidates = await query.orderBy('pending_since').execute()
  const result: ClearResult = { cleared: [], skipped: [] }
  for (const tenant of candidates) {
    // Another machine's pool tenant: its site is out of reach from here.
    const site = tenant.site ? await registry.getSite(tenant.site) : undefined
    if (site && !isHomedHere(bench, registry.kind, site)) {
      result.skipped.push({ tenant: tenant.name, reason: `its site lives on ${homeName(site)}` })
      continue
    }
    // Before anything changes: a missing admin password must not leave a tenant half-deleted.
    const admin = tenant.site ? await adminToDropSite(bench, tenant.site, 'pending-clear') : undefined
    const lease = await tryTenantLease(bench, tenant.id)
    if (!('owner' in lease)) {
      result.skipped.push({ tenant: tenant.name, reason: `held by ${lease.heldBy}` })
      continue
    }
    let deleted = false
    try {
      deleted = await registry.writeTransaction(async (trx) => {
        const gone = await trx
          .deleteFrom('tenants')
          .where('id', '=', tenant.id)
          .where('pending_since', 'is not', null)
          .where('lease_owner', '=', lease.owner)
          .executeTakeFirst()
        if (Number(gone.numDeletedRows) !== 1) return false
        await trx.deleteFrom('steps').where('tenant_id', '=', tenant.id).execute()
        await trx.deleteFrom('jobs').where('tenant_id', '=', tenant.id).execute()
        // The site is marked first, so a crash before it is dropped leaves a row doctor finishes.
        if (tenant.site)
          await trx
            .updateTable('sites')
            .set({ state: 'dropping', owner: PROCESS_OWNER, updated_at: now() })
            .where('name', '=', tenant.site)
            .where('tenant_id', '=', tenant.id)
            .execute()
        return true
      })
    } finally {
      if (!deleted) await lease.release()
    }
    if (!deleted) {
      result.skipped.push({ tenant: tenant.name, reason: 'pulled meanwhile' })
      continue
    }
    if (tenant.site && (await registry.getSite(tenant.site)))
      await dropSite(bench, { site: tenant.site, archive: false, force: true, admin })
    result.cleared.push(tenant.name)
  }
  return result
}

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

/**
 * What finishing a pull migrates: the apps installed on the pool site (from its registry
 * row), requirements first. Only those: an unrelated app of the bench, even a broken one,
 * has nothing to do with this site, so it cannot stop a sign-up (`migrate` and
 * `install-app` still report it where it matters).
 */
async function pullPlan(trx: Kysely<RegistrySchema>, bench: Bench, site: string): Promise<MigrationPlan> {
  const row = await trx.selectFrom('sites').select('apps').where('name', '=', site).executeTakeFirst()
  let installed: { name: string }[] = []
  try {
    installed = JSON.parse(row?.apps ?? '[]') as { name: string }[]
  } catch {
    installed = []
  }
  // Migrations only: changed fixture files reach the site with the next `migrate`, which
  // includes it now that it is no longer pending. That keeps the pull to one cheap read.
  return planApps(
    resolveInstallOrder(
      bench,
      installed.map((a) => a.name),
    ),
    { checkFixtures: false },
  )
}

interface Claimed {
  /** The tenant as the pull made it (`pull_from` set, leased to the puller). */
  tenant: TenantRow
  /** The row as it was in the pool, to put it back if the pull cannot finish. */
  original: TenantRow
  plan: MigrationPlan
}

/**
 * Claims the oldest ready pending tenant for `attrs` in one transaction; undefined when none
 * is ready. Everything the rest of the pull needs (its apps, the site's config) is checked
 * inside that transaction, so a pull that could not finish never commits its claim.
 */
async function claim(bench: Bench, attrs: PullAttributes, owner: string): Promise<Claimed | undefined> {
  const registry = await bench.registry()
  return registry.claimTransaction(async (trx: Kysely<RegistrySchema>) => {
    const at = now()
    const ready = trx
      .selectFrom('tenants')
      .selectAll()
      .where('pending_since', 'is not', null)
      .where('provisioning_status', '=', 'completed')
      // A pull renames the site's directory on this machine: only pool sites homed here.
      .$if(registry.kind === 'postgres', (q) => q.where(notHomedElsewhere(bench.host)))
      .orderBy('pending_since')
      .orderBy('id')
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
      if (site !== tenant.site && existsSync(bench.sitePath(site))) {
        throw usageError(
          `directory ${bench.sitePath(site)} exists but no site is registered under that name; move it away or give another --site`,
        )
      }
    }
    const data = { ...parseData(tenant.data), ...(attrs.data ?? {}) }
    let plan: MigrationPlan
    try {
      plan = await pullPlan(trx, bench, tenant.site!)
      readSiteConfig(bench.sitePath(tenant.site!))
    } catch (error) {
      const exitCode = error instanceof TenancyError ? error.exitCode : undefined
      throw new TenancyError(`cannot pull a tenant from the pool: ${messageOf(error)}; the pool is unchanged`, {
        cause: error,
        exitCode,
      })
    }
    // assertFree read the names without a lock another machine respects (claims do not take the
    // registry's write lock): a name taken meanwhile surfaces as the unique index's violation.
    try {
      const claimed = await trx
        .updateTable('tenants')
        // created_at becomes the sign-up time: the pool time is kept in the steps' timings.
        .set({
          name,
          site,
          data: JSON.stringify(data),
          pending_since: null,
          pull_from: tenant.site,
          lease_owner: owner,
          lease_expires_at: inFuture(LEASE_MS),
          created_at: at,
          updated_at: at,
        })
        .where('id', '=', tenant.id)
        .where('pending_since', 'is not', null)
        .where((eb) =>
          tenant.lease_owner === null ? eb('lease_owner', 'is', null) : eb('lease_owner', '=', tenant.lease_owner),
        )
        .executeTakeFirst()
      if (Number(claimed.numUpdatedRows) !== 1) return undefined
      if (site !== tenant.site)
        await trx.updateTable('sites').set({ name: site, updated_at: at }).where('name', '=', tenant.site!).execute()
    } catch (error) {
      if (isUniqueViolation(error))
        throw usageError(`tenant "${name}" or site "${site}" was taken by another process just now; pick another name`)
      throw error
    }
    return {
      tenant: {
        ...tenant,
        name,
        site,
        data: JSON.stringify(data),
        pending_since: null,
        pull_from: tenant.site,
        lease_owner: owner,
      },
      original: tenant,
      plan,
    }
  })
}

/**
 * Undoes a committed claim whose pull could not finish before it changed the site's
 * database: the directory and the registry rows go back to the placeholder, and the tenant
 * back to the pool. A crash in here leaves `pull_from` set, which recovery finishes forward.
 */
async function returnToPool(bench: Bench, claimed: Claimed): Promise<void> {
  const { tenant, original } = claimed
  const registry = await bench.registry()
  const oldPath = bench.sitePath(original.site!)
  const newPath = bench.sitePath(tenant.site!)
  if (oldPath !== newPath && existsSync(newPath) && !existsSync(oldPath)) {
    renameSync(newPath, oldPath)
    fsyncDirectory(bench.sitesPath)
  }
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
    if (Number(back.numUpdatedRows) === 1 && tenant.site !== original.site)
      await trx
        .updateTable('sites')
        .set({ name: original.site!, updated_at: at })
        .where('name', '=', tenant.site!)
        .execute()
  })
}

/**
 * Finishes a pull whose registry part is committed (`pull_from` set): renames the site
 * directory, moves the placeholder's API user to the tenant's own, issues new keys for it,
 * then clears the marker. Safe to run again after a crash at any point.
 */
export async function finishPull(
  bench: Bench,
  tenant: TenantRow,
  options: { plan?: MigrationPlan; progress?: { siteChanged: boolean } } = {},
): Promise<SiteResult | undefined> {
  const registry = await bench.registry()
  const from = tenant.pull_from
  const site = tenant.site
  if (!from || !site) return undefined
  // The key is checked before the site moves: the new secret is stored with it at the end.
  const box = await bench.secretBox()
  const oldPath = bench.sitePath(from)
  const newPath = bench.sitePath(site)
  if (from !== site && existsSync(oldPath) && !existsSync(newPath)) {
    renameSync(oldPath, newPath)
    fsyncDirectory(bench.sitesPath)
  }
  faultPoint('pull-after-rename')
  // The API user was made for the placeholder: its name and site, whatever the tenant is called now.
  const oldUser = apiUserFor(bench.config, { name: placeholderName(from), site: from })
  const newUser = apiUserFor(bench.config, { name: tenant.name, site })
  // A pool site may predate the last deploy's migrations (migrate leaves pending sites out
  // unless asked): it is brought up to date on the same connection, one read when it is.
  const plan = options.plan ?? (await pullPlan(registry.db, bench, site))
  let migration: SiteResult | undefined
  const keys = await usingSite(bench, site, async ({ conn }) => {
    const issued = await conn.transaction(async (trx) => {
      if (oldUser !== newUser) {
        const has = async (user: string) =>
          (await trx.selectFrom('users').select('name').where('name', '=', user).executeTakeFirst()) !== undefined
        if ((await has(oldUser)) && !(await has(newUser))) {
          await trx
            .updateTable('users')
            .set({ name: newUser, email: newUser, updated_at: now() })
            .where('name', '=', oldUser)
            .execute()
          await trx.updateTable('user_roles').set({ user_name: newUser }).where('user_name', '=', oldUser).execute()
          await trx.updateTable('api_keys').set({ user_name: newUser }).where('user_name', '=', oldUser).execute()
        }
      }
      // Keys issued while the tenant sat in the pool are replaced: new key, new secret.
      await trx.deleteFrom('api_keys').where('user_name', '=', newUser).execute()
      return generateKeysFor(trx, newUser, site)
    })
    // From here the site's database knows the tenant: the pull can only go forward.
    if (options.progress) options.progress.siteChanged = true
    migration = await migrateOpenSite(plan, { site, path: newPath }, conn)
    return issued
  })
  if (migration?.apps) await registry.setSiteApps(site, migration.apps)
  // The finished pull and its events commit together: a crash anywhere before leaves
  // `pull_from` set, and whoever finishes the pull writes them.
  await registry.writeTransaction(async (trx) => {
    const finished = await trx
      .updateTable('tenants')
      .set({
        api_key: keys.api_key,
        api_secret_enc: box.encrypt(keys.api_secret),
        pull_from: null,
        lease_owner: null,
        lease_expires_at: null,
        updated_at: now(),
      })
      .where('id', '=', tenant.id)
      .where('pull_from', '=', from)
      .executeTakeFirst()
    if (Number(finished.numUpdatedRows) !== 1) return
    const row = await trx.selectFrom('tenants').selectAll().where('id', '=', tenant.id).executeTakeFirstOrThrow()
    await recordEvent(bench, trx, 'tenant.pulled', row, { pulled_from: from })
    await recordEvent(bench, trx, 'tenant.active', row)
  })
  return migration
}

/** Finishes pulls a crashed process left half-done (their holder is gone). Returns the tenants finished. */
export async function recoverPulls(bench: Bench): Promise<string[]> {
  const registry = await bench.registry()
  const rows = await registry.db.selectFrom('tenants').selectAll().where('pull_from', 'is not', null).execute()
  const done: string[] = []
  for (const row of rows) {
    if (!leaseHolderGone(row)) continue
    // Take the pull over from its dead holder first, so two commands never finish it twice.
    const owner = newOwner()
    const taken = await registry.db
      .updateTable('tenants')
      .set({ lease_owner: owner, lease_expires_at: inFuture(LEASE_MS) })
      .where('id', '=', row.id)
      .where('pull_from', 'is not', null)
      .where((eb) =>
        row.lease_owner === null ? eb('lease_owner', 'is', null) : eb('lease_owner', '=', row.lease_owner),
      )
      .executeTakeFirst()
    if (Number(taken.numUpdatedRows) !== 1) continue
    try {
      await finishPull(bench, { ...row, lease_owner: owner })
      done.push(row.name)
    } catch (error) {
      // Not fatal to the command that opened the bench: logged, released, and shown by doctor.
      await registry.db
        .updateTable('tenants')
        .set({ lease_owner: null, lease_expires_at: null })
        .where('id', '=', row.id)
        .where('lease_owner', '=', owner)
        .execute()
      await registry.logError({
        tenant: row.name,
        site: row.site,
        step: 'pull',
        message: `finishing the pull of tenant "${row.name}" failed: ${messageOf(error)}`,
      })
    }
  }
  return done
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
    const { mode: _mode, steps: _steps, provisioning: _p, worker_started: _w, ...tenant } = created
    return { ...tenant, pulled_from: '' }
  }
  faultPoint('pull-after-claim')
  const claimed = taken.tenant
  let migration: SiteResult | undefined
  const progress = { siteChanged: false }
  try {
    migration = await finishPull(bench, claimed, { plan: taken.plan, progress })
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
      `pulled tenant "${claimed.name}" but could not finish moving its site from "${claimed.pull_from}": ${messageOf(error)}; run "tenancy doctor --fix"`,
      { cause: error },
    )
  }
  const registry = await bench.registry()
  let warning: string | undefined
  if (migration?.status === 'failed') {
    warning = `tenant "${claimed.name}" was pulled but its site could not be brought up to date: ${migration.error}; run "tenancy migrate --site ${claimed.site}"`
    await registry.logError({ tenant: claimed.name, site: claimed.site, step: 'pull', message: warning })
  }
  const row = await requireTenant(bench, claimed.name)
  const notifyError = (await deliverNow(bench, row.id)).notify_error
  return {
    ...tenantJson(row),
    pulled_from: claimed.pull_from!,
    migrated: migration?.applied ?? [],
    ...(warning || notifyError ? { warning: [warning, notifyError].filter(Boolean).join('; ') } : {}),
  }
}

/** `pullPending(attrs)`: a tenant from the pool, or a newly provisioned one when the pool is empty. */
export async function pullPending(bench: Bench, attrs: PullAttributes & { name: string }): Promise<PullResult> {
  return (await pullPendingFromPool(bench, true, attrs))!
}

export interface SignUpOptions extends CreateTenantOptions {
  /** false (`--no-pool`): never take a tenant from the pool. */
  pool?: boolean
}

/**
 * `tenancy tenant create`: takes a ready pending tenant from the pool when there is one
 * (instant), else records and provisions a new tenant (now, or queued with `background`).
 */
export async function createOrPullTenant(
  bench: Bench,
  options: SignUpOptions,
): Promise<CreateTenantResult | (PullResult & { mode: 'pulled'; steps: StepJson[] })> {
  const name = assertUserTenantName(options.name)
  // As the SPEC orders it: a ready pending tenant is pulled whether or not auto-provisioning is on.
  if (options.pool !== false) {
    const pulled = await pullPendingFromPool(bench, false, {
      name,
      site: options.site,
      siteUrl: options.siteUrl,
      data: options.data,
    })
    if (pulled) {
      const row = await requireTenant(bench, name)
      return { ...pulled, mode: 'pulled', steps: (await tenantSteps(bench, row.id)).map(stepJson) }
    }
  }
  return createTenant(bench, options)
}
