import type { Kysely } from 'kysely'
import type { Bench } from '../bench.js'
import type { RegistrySchema } from '../registry/schema.js'
import { TenancyError, usageError } from '../errors.js'
import { maskUrl } from '../util/mask-url.js'
import { assertNotPrototypeKey, assertSiteName, assertTenantName } from '../names.js'
import { now } from '../registry/registry.js'
import { coerceConfigValue } from '../sites/config-commands.js'
import { adminToDropSite, dropSite } from '../sites/drop-site.js'
import { usingTenantLease } from '../registry/leases.js'
import { backupBeforeDrop } from '../backups/backup-before-drop.js'
import { removeTenant } from './remove-tenant.js'
import { provisionTenant, type ProvisionOptions, type ProvisionResult } from './runner.js'
import { preflight, type PlannedStep } from './steps.js'
import { requireTenant, rereadTenant, tenantSteps } from './tenant-record.js'
import { faultPoint } from '../util/fault.js'
import { stepJson, tenantJson, type StepJson, type TenantJson, type TenantRow } from '../registry/tenants.js'
import { enqueueJob } from '../registry/jobs.js'
import { liveWorkerHosts } from '../registry/hosts.js'
import { machineOfTenant } from '../registry/placement.js'
import { placementHost } from '../sites/site-home.js'
import { pendingStepRow } from '../registry/steps.js'
import { ensureWorker } from './worker.js'
import { newAdminPassword } from './steps/create-site.js'
import { startHashing } from '../secrets/hashing.js'
import { batchedRows, checkPage, collect, mapRows, type Listing, type PageOptions } from '../util/listing.js'

const DATA_KEY = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/

/**
 * A `--data` value: tenant attributes are JSON-like, so integers (without a leading zero: a zip
 * code stays text) and true/false are typed; everything else is text.
 */
function dataValue(text: string): unknown {
  if (/^-?(0|[1-9]\d*)$/.test(text) && Number.isSafeInteger(Number(text))) return Number(text)
  return coerceConfigValue(text, false)
}

/**
 * Refuses an attribute name that is not letters, digits and `_` (at most 64, not starting with a
 * digit) or that names an object's prototype; `given` is what was typed, for the message.
 */
export function assertDataKey(key: string, flag: string, given: string, form: string): string {
  if (!DATA_KEY.test(key))
    throw usageError(
      `invalid ${flag} "${given}": ${form === 'a key' ? 'a key is' : `use ${form}, the key`} letters, digits and _ ` +
        '(at most 64, not starting with a digit)',
    )
  assertNotPrototypeKey(key, `${flag} key`)
  return key
}

/** Parses `--data k=v` pairs: integers and true/false typed, the rest text. */
export function parseDataPairs(pairs: readonly string[]): Record<string, unknown> {
  const data: Record<string, unknown> = {}
  for (const pair of pairs) {
    const at = pair.indexOf('=')
    const key = assertDataKey(at > 0 ? pair.slice(0, at) : '', '--data', pair, 'key=value')
    data[key] = dataValue(pair.slice(at + 1))
  }
  return data
}

/** The site a new tenant gets: `--site`, the host of `--site-url`, or `<name>.<default_site_domain>`. */
export function siteFor(bench: Bench, name: string, options: { site?: string; siteUrl?: string }): string {
  if (options.site && options.siteUrl) throw usageError('give either --site or --site-url, not both')
  if (options.siteUrl !== undefined) {
    const given = options.siteUrl
    const refuse = (why: string) =>
      usageError(
        `invalid --site-url ${JSON.stringify(maskUrl(given))}: ${why}; give a URL such as https://acme.example.com`,
      )
    if (!/^https?:\/\//i.test(given)) throw refuse('it must be an absolute http:// or https:// URL')
    let url: URL
    try {
      url = new URL(given)
    } catch {
      throw refuse('it is not a valid URL')
    }
    if (url.username || url.password) throw refuse('it must not carry a user name or password')
    try {
      return assertSiteName(url.hostname)
    } catch {
      throw refuse(
        `its host "${url.hostname}" is not a valid site name (a lower-case hostname such as acme.example.com)`,
      )
    }
  }
  return assertSiteName(options.site ?? `${name}.${bench.config.default_site_domain}`)
}

/** Refuses a tenant name or site that is taken (inside the caller's write transaction). */
export async function assertFree(trx: Kysely<RegistrySchema>, name: string, site: string): Promise<void> {
  const clash = await trx
    .selectFrom('tenants')
    .select(['name', 'site', 'provisioning_status'])
    .where((eb) => eb.or([eb('name', '=', name), eb('site', '=', site)]))
    .executeTakeFirst()
  // A create that failed or was stopped part-way leaves its tenant behind: it is resumed, not made again.
  if (clash?.name === name && clash.provisioning_status !== 'completed')
    throw usageError(
      `tenant "${name}" already exists and its provisioning is not complete (${clash.provisioning_status}); ` +
        `resume it with "tenancy provision ${name}" (done steps are skipped)`,
    )
  if (clash?.name === name)
    throw usageError(`tenant "${name}" already exists; see it with "tenancy tenant show ${name}"`)
  if (clash) throw usageError(`site "${site}" belongs to tenant "${clash.name}"; give this tenant another --site`)
  if (await trx.selectFrom('sites').select('name').where('name', '=', site).executeTakeFirst()) {
    throw usageError(`site "${site}" exists already and belongs to no tenant; give this tenant another --site`)
  }
}

/**
 * Inserts a tenant with its pipeline's steps (and a job when queued) inside the caller's transaction;
 * returns its id.
 */
export async function insertTenant(
  trx: Kysely<RegistrySchema>,
  tenant: {
    name: string
    site: string
    data: Record<string, unknown>
    provisioningStatus: 'not_started' | 'queued'
    pendingSince: string | null
    queueJob: boolean
    /** The site's Administrator password, encrypted (create-site chooses one when null or absent). */
    adminPasswordEnc?: string | null
    /** The machine whose workers must run the job (`--host`, a pool reservation); null or absent: any. */
    jobHost?: string | null
    /** When the job falls due (ISO 8601); absent: now. */
    jobDueAt?: string
  },
  steps: PlannedStep[],
): Promise<number> {
  const at = now()
  const inserted = await trx
    .insertInto('tenants')
    .values({
      name: tenant.name,
      site: tenant.site,
      status: 'inactive',
      provisioning_status: tenant.provisioningStatus,
      pending_since: tenant.pendingSince,
      data: JSON.stringify(tenant.data),
      api_key: null,
      api_secret_enc: null,
      admin_password_enc: tenant.adminPasswordEnc ?? null,
      lease_owner: null,
      lease_expires_at: null,
      pull_from: null,
      error: null,
      created_at: at,
      updated_at: at,
      provisioned_at: null,
    })
    .returning('id')
    .executeTakeFirstOrThrow()
  await trx
    .insertInto('steps')
    .values(steps.map((s, idx) => ({ ...pendingStepRow(inserted.id, s), idx })))
    .execute()
  if (tenant.queueJob) {
    await enqueueJob(trx, inserted.id, tenant.jobHost ?? null)
    if (tenant.jobDueAt !== undefined)
      await trx.updateTable('jobs').set({ run_at: tenant.jobDueAt }).where('tenant_id', '=', inserted.id).execute()
  }
  return inserted.id
}

export interface CreateTenantOptions extends ProvisionOptions {
  name: string
  site?: string
  siteUrl?: string
  data?: Record<string, unknown>
  background?: boolean
  /**
   * The machine to place the tenant on (`--host`, SPEC §10). This machine: as without it, its
   * job (with `background`) for this machine's workers only. Another machine (a shared registry
   * only): never provisioned here; recorded and queued for that machine's workers.
   */
  host?: string
}

export interface CreateTenantResult extends TenantJson {
  mode: 'provisioned' | 'queued' | 'recorded'
  steps: StepJson[]
  /** The machine the tenant's site lives on or is placed on; null while no machine has it yet. */
  host: string | null
  worker_started?: boolean
  /**
   * Queued on a shared registry with no --host: the job is for whichever machine's worker claims
   * it first (and homes the site there), not necessarily the worker this command started.
   */
  any_machine?: boolean
  /** Placed on another machine: whether a worker of that machine is running (else the job waits). */
  worker_live?: boolean
  provisioning?: ProvisionResult
}

/**
 * `tenancy tenant create`: records the tenant and its steps in one transaction, then (with
 * `auto_provision_tenant_sites`) provisions it now, or queues it for a worker with
 * `background`.
 */
/** A tenant name an operator or application may give: a slug, and not in the pool's `pending-` namespace. */
export function assertUserTenantName(name: string): string {
  assertTenantName(name)
  if (name.startsWith('pending-'))
    throw usageError(`invalid tenant name "${name}": names starting with "pending-" are kept for the pending pool`)
  return name
}

export async function createTenant(bench: Bench, options: CreateTenantOptions): Promise<CreateTenantResult> {
  const name = assertUserTenantName(options.name)
  const site = siteFor(bench, name, options)
  const auto = bench.config.auto_provision_tenant_sites
  const host =
    options.host === undefined ? undefined : placementHost(bench, (await bench.registry()).kind, options.host)
  const remote = host !== undefined && host !== bench.host
  if (remote && !auto)
    throw usageError(
      `auto_provision_tenant_sites is off, so "tenant create" only records the tenant and nothing would ` +
        `provision it on ${host}; run "tenancy tenant create ${name}" and "tenancy provision ${name}" on ${host}`,
    )
  // On another machine, its workers provision it: queued, as with --background.
  const queued = auto && (options.background === true || remote)
  // Provisioned here and now: the Administrator's password is chosen first and its scrypt hash
  // started, to run on the thread pool while the registry opens and the tenant is recorded
  // (create-site takes the hash when it writes the Administrator, instead of waiting on it).
  const adminPassword = auto && !queued ? await newAdminPassword(bench) : undefined
  const discardHash = adminPassword === undefined ? undefined : startHashing(adminPassword)
  try {
    return await recordAndProvision(bench, options, { name, site, auto, host, queued, adminPassword })
  } finally {
    // Refused before create-site took it (the name taken, a failed preflight): not left in memory.
    discardHash?.()
  }
}

/** `createTenant` once its inputs are checked and its Administrator's hash started. */
async function recordAndProvision(
  bench: Bench,
  options: CreateTenantOptions,
  inputs: {
    name: string
    site: string
    auto: boolean
    host: string | undefined
    queued: boolean
    adminPassword: string | undefined
  },
): Promise<CreateTenantResult> {
  const { name, site, auto, host, queued, adminPassword } = inputs
  const remote = host !== undefined && host !== bench.host
  const steps = await preflight(bench, { provisionsHere: auto && !queued })
  const registry = await bench.registry()
  const adminPasswordEnc = adminPassword === undefined ? null : (await bench.secretBox()).encrypt(adminPassword)
  const tenantId = await registry.writeTransaction(async (trx) => {
    await assertFree(trx, name, site)
    return insertTenant(
      trx,
      {
        name,
        site,
        data: options.data ?? {},
        provisioningStatus: queued ? 'queued' : 'not_started',
        pendingSince: null,
        queueJob: queued,
        adminPasswordEnc,
        jobHost: host ?? null,
      },
      steps,
    )
  })
  const snapshot = async (
    mode: CreateTenantResult['mode'],
    extra: Partial<CreateTenantResult> = {},
  ): Promise<CreateTenantResult> => {
    const row = await requireTenant(bench, name)
    return {
      ...tenantJson(row),
      mode,
      steps: (await tenantSteps(bench, tenantId)).map(stepJson),
      host: await machineOfTenant(registry.db, tenantId),
      ...extra,
    }
  }
  if (!auto) return snapshot('recorded')
  // This machine's background worker is for this machine's jobs: another's are left to its own.
  if (remote) return snapshot('queued', { worker_live: (await liveWorkerHosts(registry.db, host)).has(host) })
  if (queued) {
    const anyMachine = registry.kind === 'postgres' && host === undefined
    return snapshot('queued', { worker_started: await ensureWorker(bench), ...(anyMachine && { any_machine: true }) })
  }
  const provisioning = await provisionTenant(bench, name, options)
  return snapshot('provisioned', { provisioning })
}

export interface ListTenantsOptions extends PageOptions {
  status?: string
  /**
   * `with`: include pending tenants; `only`: only them; `without`: leave them out.
   * Default: `pending.include_in_queries`.
   */
  pending?: 'with' | 'only' | 'without'
}

const TENANT_STATUSES = ['inactive', 'active', 'suspended']
const PROVISIONING_STATUSES = ['not_started', 'queued', 'in_progress', 'completed', 'failed']

/**
 * `tenancy tenant list`: how many tenants match the filters, and one page of them (`limit`,
 * `offset`), oldest first, read from the registry in batches as they are iterated.
 *
 * @example
 * const { total, rows } = await tenantListing(bench, { status: 'active', limit: 100, offset: 200 })
 * for await (const tenant of rows) names.push(tenant.name)
 */
export async function tenantListing(bench: Bench, options: ListTenantsOptions = {}): Promise<Listing<TenantJson>> {
  const registry = await bench.registry()
  const pending = options.pending ?? (bench.config.pending.include_in_queries ? 'with' : 'without')
  const page = checkPage(options)
  let matching = registry.db.selectFrom('tenants')
  if (options.status) {
    const statuses = [...TENANT_STATUSES, ...PROVISIONING_STATUSES]
    if (!statuses.includes(options.status))
      throw usageError(`invalid --status "${options.status}": use one of ${statuses.join(', ')}`)
    const column = TENANT_STATUSES.includes(options.status) ? 'status' : 'provisioning_status'
    matching = matching.where(column, '=', options.status)
  }
  if (pending === 'only') matching = matching.where('pending_since', 'is not', null)
  if (pending === 'without') matching = matching.where('pending_since', 'is', null)
  const counted = await matching.select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()
  const rows = batchedRows<TenantRow, Pick<TenantRow, 'created_at' | 'id'>>(
    page,
    ({ after, offset, limit }) =>
      matching
        .selectAll()
        .$if(after !== undefined, (q) =>
          q.where((eb) => eb(eb.refTuple('created_at', 'id'), '>', eb.tuple(after!.created_at, after!.id))),
        )
        .orderBy('created_at')
        .orderBy('id')
        .limit(limit)
        .offset(offset)
        .execute(),
    (row) => ({ created_at: row.created_at, id: row.id }),
  )
  return { total: Number(counted.n), offset: page.offset, rows: mapRows(rows, tenantJson) }
}

/** `tenancy tenant list` as an array: the page `tenantListing` reads (every match without `limit`). */
export async function listTenants(bench: Bench, options: ListTenantsOptions = {}): Promise<TenantJson[]> {
  return collect((await tenantListing(bench, options)).rows)
}

export interface ShowTenantResult extends TenantJson {
  steps: StepJson[]
  /** The machine its site lives on, else the one it is placed on (`--host`), else null. */
  host: string | null
  api_secret?: string | null
  admin_password?: string | null
}

/** `tenancy tenant show`: the record and its steps; secrets only with `showSecrets`. */
export async function showTenant(
  bench: Bench,
  name: string,
  options: { showSecrets?: boolean } = {},
): Promise<ShowTenantResult> {
  const row = await requireTenant(bench, name)
  const registry = await bench.registry()
  const result: ShowTenantResult = {
    ...tenantJson(row),
    steps: (await tenantSteps(bench, row.id)).map(stepJson),
    host: await machineOfTenant(registry.db, row.id),
  }
  if (options.showSecrets && row.pull_from === null) {
    const box = await bench.secretBox()
    result.api_secret = row.api_secret_enc ? box.decrypt(row.api_secret_enc) : null
    result.admin_password = row.admin_password_enc ? box.decrypt(row.admin_password_enc) : null
  }
  return result
}

export interface DeleteTenantOptions {
  /** Keep the site: it stays, belonging to no tenant. */
  keepSite?: boolean
  /** false (`--no-backup`): drop the site without backing it up first. */
  backup?: boolean
  signal?: AbortSignal
}

export interface DeleteTenantResult {
  tenant: string
  site: string | null
  site_dropped: boolean
  /** The site's archive directory (`archived/sites/<site>-<stamp>/`), or null. */
  archived_to: string | null
  /** The backup set taken before the site was dropped (inside its archive), or null. */
  backup: string | null
}

/**
 * `tenancy tenant delete`: backs the tenant's site up into its archive and drops it (unless
 * `keepSite`), then removes the tenant, its steps and jobs. A backup that fails stops it with
 * nothing changed.
 */
export async function deleteTenant(
  bench: Bench,
  name: string,
  options: DeleteTenantOptions = {},
): Promise<DeleteTenantResult> {
  const read: TenantRow = await requireTenant(bench, name)
  const registry = await bench.registry()
  faultPoint('delete-before-lease')
  const outcome = await usingTenantLease(bench, read.id, {}, async () => {
    const row = await rereadTenant(bench, read.id, name)
    const site = row.site ? await registry.getSite(row.site) : undefined
    const owned = site !== undefined && site.tenant_id === row.id
    const dropping = owned && !options.keepSite
    // Before anything changes: a missing admin password must not leave a tenant half-deleted.
    const admin = dropping ? await adminToDropSite(bench, site.name, `tenant delete ${name}`) : undefined
    const taken = dropping
      ? await backupBeforeDrop(bench, site, { archive: true, backup: options.backup !== false, signal: options.signal })
      : { archiveTo: undefined, backup: null }
    // The tenant goes first, in one transaction that also marks its site `dropping` (or frees
    // it with --keep-site): a crash after it leaves a row doctor knows how to finish.
    await removeTenant(bench, row.id, { site: owned ? site.name : null, keepSite: options.keepSite })
    faultPoint('delete-after-remove')
    let archivedTo: string | null = null
    if (dropping)
      archivedTo = (await dropSite(bench, { site: site.name, force: true, admin, archiveTo: taken.archiveTo }))
        .archived_to
    return { tenant: name, site: row.site, site_dropped: dropping, archived_to: archivedTo, backup: taken.backup }
  })
  if (!outcome.taken) {
    throw new TenancyError(
      `tenant "${name}" is being provisioned by ${outcome.heldBy}; wait for it to finish, then delete it`,
    )
  }
  return outcome.value
}
