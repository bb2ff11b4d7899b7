import type { Bench } from '../../bench.js'
import { TenancyError } from '../../errors.js'
import { generatePassword, startHashing } from '../../secrets/hashing.js'
import { resolveSecret } from '../../secrets/resolve-secret.js'
import { dropSite } from '../../sites/drop-site.js'
import { adminPasswordSources, newSite } from '../new-site.js'
import { planByName, type StepContext, type StepKind } from './step-kind.js'
import { now } from '../../registry/registry.js'
import { updateTenant } from './tenant-update.js'

/** A new tenant's admin password: the configured one (never prompted for), else a generated one. */
export async function newAdminPassword(bench: Bench): Promise<string> {
  const configured = await resolveSecret({ ...adminPasswordSources(bench), prompt: undefined })
  return configured?.value || generatePassword()
}

/**
 * The admin password of a tenant's site: the one stored (encrypted) on the tenant, else configured,
 * else generated, stored before use.
 */
async function adminPasswordFor(ctx: StepContext): Promise<string> {
  const box = await ctx.bench.secretBox()
  if (ctx.tenant.admin_password_enc) return box.decrypt(ctx.tenant.admin_password_enc)
  const password = await newAdminPassword(ctx.bench)
  await updateTenant(ctx.bench, ctx.tenant.id, { admin_password_enc: box.encrypt(password) })
  return password
}

/**
 * Chooses a tenant's admin password ahead of its create-site, as that step would (stored on the
 * tenant, encrypted, unless one is already), and starts its scrypt hash on the thread pool: a
 * run provisioning tenants one after another does this for the next while one is provisioned,
 * so that the hash (the longest part of create-site) is ready when the step writes the
 * Administrator. Returns the hash's discard (see `startHashing`), or nothing when the tenant is
 * gone or its site is made already.
 */
async function prepareAdminPassword(bench: Bench, tenant: string): Promise<(() => void) | undefined> {
  const registry = await bench.registry()
  const stored = () =>
    registry.db
      .selectFrom('tenants')
      .leftJoin('sites', 'sites.name', 'tenants.site')
      .select(['tenants.admin_password_enc', 'tenants.provisioning_status', 'sites.state as site_state'])
      .where('tenants.name', '=', tenant)
      .executeTakeFirst()
  const row = await stored()
  // Its create-site is done (a retry of a later step): no hash will be asked for.
  if (!row || row.provisioning_status === 'completed' || row.site_state === 'ready') return undefined
  const box = await bench.secretBox()
  let sealed = row.admin_password_enc
  if (!sealed) {
    // Only where none is stored: another process provisioning it may have chosen one meanwhile.
    await registry.db
      .updateTable('tenants')
      .set({ admin_password_enc: box.encrypt(await newAdminPassword(bench)), updated_at: now() })
      .where('name', '=', tenant)
      .where('admin_password_enc', 'is', null)
      .execute()
    sealed = (await stored())?.admin_password_enc ?? null
  }
  return sealed ? startHashing(box.decrypt(sealed)) : undefined
}

/**
 * The Administrator hashes a run starts ahead for the tenants it will provision
 * (`prepareAdminPassword`), each tenant once: a lane prepares its own tenant, then the next, and
 * one that takes a tenant another lane is preparing waits for that, so that the tenant is read
 * with its password stored. Preparing never throws: create-site chooses the password itself and
 * reports what failed. Beyond `keep` tenants the oldest are discarded (a long-running worker
 * whose peeked jobs other workers took); discarding one a job still wants only costs it the wait.
 */
export class EarlyHashes {
  readonly #bench: Bench
  readonly #keep: number
  readonly #started = new Map<string, Promise<(() => void) | undefined>>()

  constructor(bench: Bench, keep = Number.POSITIVE_INFINITY) {
    this.#bench = bench
    this.#keep = keep
  }

  /** Starts `tenant`'s hash unless started already; settles once its password is stored. */
  prepare(tenant: string | undefined): Promise<unknown> | undefined {
    if (tenant === undefined) return undefined
    const known = this.#started.get(tenant)
    if (known) return known
    const preparing = prepareAdminPassword(this.#bench, tenant).catch(() => undefined)
    this.#started.set(tenant, preparing)
    for (const oldest of this.#started.keys()) {
      if (this.#started.size <= this.#keep) break
      void this.discard(oldest)
    }
    return preparing
  }

  /** Drops `tenant`'s hash unless create-site took it (its job is done, or will not run here). */
  async discard(tenant: string): Promise<void> {
    const preparing = this.#started.get(tenant)
    this.#started.delete(tenant)
    ;(await preparing)?.()
  }

  /** Drops every hash not taken: the run is over. */
  async discardAll(): Promise<void> {
    await Promise.all([...this.#started.keys()].map((tenant) => this.discard(tenant)))
  }
}

/** `create-site`: the tenant's site, its database and user (the first step of every pipeline). */
export const createSite: StepKind<{ kind: 'create-site' }> = {
  usage: ['create-site'],
  plan: planByName('create-site'),
  once: true,
  async run(ctx) {
    const { bench, tenant } = ctx
    const site = tenant.site
    const registry = await bench.registry()
    const existing = await registry.getSite(site)
    if (existing) {
      if (existing.tenant_id !== tenant.id) {
        throw new TenancyError(
          `site "${site}" exists and does not belong to tenant "${tenant.name}"; give the tenant another --site`,
        )
      }
      if (existing.state === 'ready') return { output: `site ${site} exists already (made by an earlier attempt)` }
      // Half-made by an earlier attempt of this tenant (its intent row names it): remove and make again.
      await dropSite(bench, { site, archive: false, force: true })
    }
    const password = await adminPasswordFor(ctx)
    const result = await newSite(bench, { site, tenantId: tenant.id, adminPassword: password, signal: ctx.signal })
    return { output: `created site ${site} (${result.db_type}, database ${result.db_name})` }
  },
}
