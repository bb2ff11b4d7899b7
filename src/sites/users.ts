import type { Bench } from '../bench.js'
import { usageError } from '../errors.js'
import { assertEmail } from '../names.js'
import { now } from '../registry/registry.js'
import type { SiteTx } from '../databases/driver.js'
import { usingSite } from './site.js'

export const ADMINISTRATOR = 'Administrator'
export const SYSTEM_MANAGER = 'System Manager'

/** Creates or updates the Administrator user with a password hash and the Administrator role. */
export async function upsertAdministrator({ trx, driver }: SiteTx, passwordHash: string): Promise<void> {
  const at = now()
  await driver
    .upsert(
      trx,
      'users',
      {
        name: ADMINISTRATOR,
        email: null,
        first_name: ADMINISTRATOR,
        last_name: null,
        enabled: 1,
        password_hash: passwordHash,
        created_at: at,
        updated_at: at,
      },
      ['name'],
      { password_hash: passwordHash, updated_at: at },
    )
    .execute()
  await driver
    .upsert(trx, 'user_roles', { user_name: ADMINISTRATOR, role: 'Administrator' }, ['user_name', 'role'])
    .execute()
}

export interface AddSystemManagerOptions {
  site: string
  email: string
  firstName?: string
  lastName?: string
}

export interface AddSystemManagerResult {
  site: string
  email: string
  created: boolean
  role_added: boolean
}

/**
 * Adds the System Manager role to the user `email` of the site `tx` is open on, creating the user
 * first when needed. Idempotent.
 */
export async function addSystemManagerTo(
  { trx, driver }: SiteTx,
  options: Omit<AddSystemManagerOptions, 'site'>,
): Promise<{ created: boolean; role_added: boolean }> {
  const at = now()
  const inserted = await driver
    .upsert(
      trx,
      'users',
      {
        name: options.email,
        email: options.email,
        first_name: options.firstName ?? null,
        last_name: options.lastName ?? null,
        enabled: 1,
        password_hash: null,
        created_at: at,
        updated_at: at,
      },
      ['name'],
    )
    .executeTakeFirst()
  const created = Number(inserted.numInsertedOrUpdatedRows ?? 0) === 1
  if (!created && (options.firstName !== undefined || options.lastName !== undefined)) {
    await trx
      .updateTable('users')
      .set({
        ...(options.firstName !== undefined && { first_name: options.firstName }),
        ...(options.lastName !== undefined && { last_name: options.lastName }),
        updated_at: at,
      })
      .where('name', '=', options.email)
      .execute()
  }
  const role = await driver
    .upsert(trx, 'user_roles', { user_name: options.email, role: SYSTEM_MANAGER }, ['user_name', 'role'])
    .executeTakeFirst()
  return { created, role_added: Number(role.numInsertedOrUpdatedRows ?? 0) === 1 }
}

/** `tenancy add-system-manager`: the user with the System Manager role; an existing user just gets the role. */
export async function addSystemManager(
  bench: Bench,
  options: AddSystemManagerOptions,
): Promise<AddSystemManagerResult> {
  const email = assertEmail(options.email)
  if (email === ADMINISTRATOR) throw usageError('"Administrator" already has every role; give an email address')
  return usingSite(bench, options.site, async ({ conn }) => {
    const result = await conn.transaction((tx) => addSystemManagerTo(tx, { ...options, email }))
    return { site: options.site, email, ...result }
  })
}
