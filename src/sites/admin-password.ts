import type { Bench } from '../bench.js'
import { TenancyError, messageOf, usageError } from '../errors.js'
import { now } from '../registry/registry.js'
import { hashPassword } from '../secrets/hashing.js'
import { missingSecretError, resolveSecret, type SecretSources } from '../secrets/resolve-secret.js'
import { faultPoint } from '../util/fault.js'
import { requireSite, usingSite } from './site.js'
import { ADMINISTRATOR, checkPassword, upsertAdministrator } from './users.js'

export interface SetAdminPasswordOptions {
  site: string
  /** The password as typed on the command line (which the CLI warns about) or given by a library caller. */
  password?: string
  /** `--password-file`: a file holding the password (its last newline dropped). */
  passwordFile?: string
  /** Asks for the password on a TTY; absent in non-interactive runs. */
  prompt?: SecretSources['prompt']
}

export interface SetAdminPasswordResult {
  site: string
  user: typeof ADMINISTRATOR
  /** The tenant that owns the site, or null. */
  tenant: string | null
  /** Whether the tenant's stored (encrypted) admin password was replaced too. */
  tenant_password_updated: boolean
}

/** Where `set-admin-password` looks for the password: the file, the argument, `TENANCY_ADMIN_PASSWORD`, the prompt. */
function adminPasswordSources(bench: Bench, options: SetAdminPasswordOptions): SecretSources {
  return {
    label: `new Administrator password for ${options.site}`,
    fileFlag: '--password-file',
    filePath: options.passwordFile,
    flag: 'the password argument',
    flagValue: options.password,
    envVar: 'TENANCY_ADMIN_PASSWORD',
    env: bench.env,
    prompt: options.prompt,
  }
}

/**
 * `tenancy set-admin-password`: the Administrator's new password hash in the site, and, when
 * the site's tenant keeps its admin password (encrypted) in the registry, that copy too.
 *
 * The two live in two databases, so the order is what makes it safe. The site's transaction
 * writes the hash first but commits last; the registry's copy is written in between. Any
 * failure before the registry write changes nothing. A failure after it (the site's commit
 * failing) puts the registry's old copy back once the site is seen without the new password.
 * A crash after it leaves the registry with the new password and the site with the old one:
 * the registry holds the password itself (the site only a hash), so it is the side that can
 * always be carried over, and running the command again finishes it. The other order would
 * leave a crash with the new password only as a hash, and the tenant's copy lost.
 */
export async function setAdminPassword(
  bench: Bench,
  options: SetAdminPasswordOptions,
): Promise<SetAdminPasswordResult> {
  const record = await requireSite(bench, options.site)
  const sources = adminPasswordSources(bench, options)
  const given = await resolveSecret(sources)
  if (!given)
    throw options.prompt
      ? usageError('no password typed; type the new Administrator password at the prompt')
      : missingSecretError(sources)
  if (given.value.length === 0) throw usageError(`the password from ${given.where} is empty; give a non-empty one`)
  const hash = hashPassword(given.value)
  hash.catch(() => {})

  const registry = await bench.registry()
  const tenant =
    record.tenant_id === null
      ? undefined
      : await registry.db
          .selectFrom('tenants')
          .select(['id', 'name', 'admin_password_enc'])
          .where('id', '=', record.tenant_id)
          .executeTakeFirst()
  const stored = tenant?.admin_password_enc ?? null
  // The key is checked before the site changes.
  const sealed = stored !== null ? (await bench.secretBox()).encrypt(given.value) : undefined
  const result: SetAdminPasswordResult = {
    site: options.site,
    user: ADMINISTRATOR,
    tenant: tenant?.name ?? null,
    tenant_password_updated: sealed !== undefined,
  }

  let registryWritten = false
  try {
    await usingSite(bench, options.site, ({ conn }) =>
      conn.transaction(async (tx) => {
        await upsertAdministrator(tx, await hash)
        if (tenant && sealed !== undefined) {
          await registry.db
            .updateTable('tenants')
            .set({ admin_password_enc: sealed, updated_at: now() })
            .where('id', '=', tenant.id)
            .execute()
          registryWritten = true
          faultPoint('admin-password-before-site-commit')
        }
      }),
    )
    return result
  } catch (error) {
    if (!registryWritten || !tenant || sealed === undefined) throw error
    if (await afterFailedCommit(bench, { site: options.site, password: given.value, tenant, stored, sealed }, error))
      return result
    throw error
  }
}

/**
 * After the site's commit failed with the tenant's copy already replaced: true when the site
 * has the new password after all (the commit landed before the connection was lost), else
 * puts the tenant's old copy back (unless another run replaced it since) and returns false.
 * When neither can be known, throws an error that says to run the command again.
 */
async function afterFailedCommit(
  bench: Bench,
  state: {
    site: string
    password: string
    tenant: { id: number; name: string }
    stored: string | null
    sealed: string
  },
  error: unknown,
): Promise<boolean> {
  try {
    if (await checkPassword(bench, { site: state.site, email: ADMINISTRATOR, password: state.password })) return true
    const registry = await bench.registry()
    await registry.db
      .updateTable('tenants')
      .set({ admin_password_enc: state.stored, updated_at: now() })
      .where('id', '=', state.tenant.id)
      .where('admin_password_enc', '=', state.sealed)
      .execute()
    return false
  } catch {
    throw new TenancyError(
      `setting the Administrator password of "${state.site}" failed (${messageOf(error)}); ` +
        `tenant "${state.tenant.name}" already stores the new one: run ` +
        `"tenancy set-admin-password --site ${state.site}" again once its database answers`,
      { cause: error },
    )
  }
}
