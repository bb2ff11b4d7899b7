import type { Kysely } from 'kysely'
import type { Bench } from '../bench.js'
import { usageError } from '../errors.js'
import { assertEmail } from '../names.js'
import { now } from '../registry/registry.js'
import type { SiteTx } from '../databases/driver.js'
import { generatePassword, hashPassword, verifyPassword } from '../secrets/hashing.js'
import { resolveSecret, type SecretSources } from '../secrets/resolve-secret.js'
import { usingSite } from './site.js'

export const ADMINISTRATOR = 'Administrator'
export const SYSTEM_MANAGER = 'System Manager'

/** The environment variable `add-user` reads the new user's password from (after `--password-file`). */
export const USER_PASSWORD_ENV = 'TENANCY_USER_PASSWORD'

/** The width of `users.first_name` and `users.last_name` in the core schema. */
const NAME_LENGTH = 140

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

/**
 * The roles given with `--role`, trimmed and without repeats. An empty one is refused, and so
 * is Administrator: that role is the Administrator user's alone (System Manager gives a user
 * every right a site has).
 */
export function assertRoles(roles: readonly string[]): string[] {
  const out: string[] = []
  for (const given of roles) {
    const role = given.trim()
    if (role === '') throw usageError('empty --role: give a role name such as --role "System Manager"')
    if (role === ADMINISTRATOR)
      throw usageError(
        'the Administrator role belongs to the Administrator user alone; give --role "System Manager" for full rights',
      )
    if (!out.includes(role)) out.push(role)
  }
  return out
}

/** A first or last name as given (undefined stays undefined); over-long ones are refused, not cut. */
function assertPersonName(name: string | undefined, flag: string): string | undefined {
  if (name !== undefined && name.length > NAME_LENGTH)
    throw usageError(`${flag} is ${name.length} characters long; give at most ${NAME_LENGTH}`)
  return name
}

/** Refuses a role the site's `roles` table does not have, naming the ones it has. */
async function requireRoles(db: Kysely<any>, roles: readonly string[], site: string): Promise<void> {
  if (roles.length === 0) return
  // Compared here, not in SQL: MariaDB's collation would match "system manager" to "System Manager".
  const known = (await db.selectFrom('roles').select('name').orderBy('name').execute()).map((r) => String(r.name))
  const unknown = roles.find((role) => !known.includes(role))
  if (unknown !== undefined)
    throw usageError(
      `role ${JSON.stringify(unknown)} does not exist on site "${site}"; ` +
        `give one of: ${known.filter((r) => r !== ADMINISTRATOR).join(', ')}`,
    )
}

/** A user to add: its email (already checked), roles (checked by `assertRoles`), names and password hash. */
export interface NewUser {
  email: string
  roles: readonly string[]
  firstName?: string
  lastName?: string
  /** null: no password (the user signs in with API keys only, as the pipeline's API user does). */
  passwordHash: string | null
}

/** What to do when the email is a user already: refuse it (`add-user`, as bench's does), or give it the roles. */
export type ExistingUser = 'refuse' | 'add-roles'

/** The message for an email that is a user of the site already. */
function userExistsError(email: string, site: string) {
  return usageError(
    `user "${email}" already exists on site "${site}"; give another email ` +
      `(or make it a System Manager: tenancy add-system-manager ${email} --site ${site})`,
  )
}

/**
 * Adds the user to the site `tx` is open on, with its roles; with `existing: 'add-roles'` an
 * existing user keeps its password and gets the roles (and any names given). Roles the site
 * does not have are refused before anything is written. The insert itself decides whether
 * the user is new, so two processes adding one email cannot both create it.
 */
export async function addUserTo(
  { trx, driver }: SiteTx,
  user: NewUser,
  options: { site: string; existing: ExistingUser },
): Promise<{ created: boolean; roles_added: string[] }> {
  await requireRoles(trx, user.roles, options.site)
  const at = now()
  const inserted = await driver
    .upsert(
      trx,
      'users',
      {
        name: user.email,
        email: user.email,
        first_name: user.firstName ?? null,
        last_name: user.lastName ?? null,
        enabled: 1,
        password_hash: user.passwordHash,
        created_at: at,
        updated_at: at,
      },
      ['name'],
    )
    .executeTakeFirst()
  const created = Number(inserted.numInsertedOrUpdatedRows ?? 0) === 1
  if (!created) {
    if (options.existing === 'refuse') throw userExistsError(user.email, options.site)
    if (user.firstName !== undefined || user.lastName !== undefined) {
      await trx
        .updateTable('users')
        .set({
          ...(user.firstName !== undefined && { first_name: user.firstName }),
          ...(user.lastName !== undefined && { last_name: user.lastName }),
          updated_at: at,
        })
        .where('name', '=', user.email)
        .execute()
    }
  }
  const rolesAdded: string[] = []
  for (const role of user.roles) {
    const added = await driver
      .upsert(trx, 'user_roles', { user_name: user.email, role }, ['user_name', 'role'])
      .executeTakeFirst()
    if (Number(added.numInsertedOrUpdatedRows ?? 0) === 1) rolesAdded.push(role)
  }
  return { created, roles_added: rolesAdded }
}

/** The email of a user `add-user` or `add-system-manager` may make: an address, never Administrator. */
function assertNewUserEmail(email: string): string {
  const checked = assertEmail(email)
  if (checked === ADMINISTRATOR) throw usageError('"Administrator" already has every role; give an email address')
  return checked
}

export interface AddUserOptions {
  site: string
  email: string
  /** Roles to give (repeatable `--role`); none is a user without roles. */
  roles?: readonly string[]
  firstName?: string
  lastName?: string
  /** The password as given on the command line (`--password`, which the CLI warns about) or by a library caller. */
  password?: string
  /** `--password-file`: a file holding the password (its last newline dropped). */
  passwordFile?: string
  /** Asks for the password on a TTY; absent in non-interactive runs. */
  prompt?: SecretSources['prompt']
}

export interface AddUserResult {
  site: string
  email: string
  roles: string[]
  /** Only when tenancy generated it: shown once, stored nowhere but as a hash. */
  password?: string
}

/** Where `add-user` looks for the new user's password, in the SPEC's order. */
function userPasswordSources(bench: Bench, email: string, options: AddUserOptions): SecretSources {
  return {
    label: `password for ${email}`,
    fileFlag: '--password-file',
    filePath: options.passwordFile,
    flag: '--password',
    flagValue: options.password,
    envVar: USER_PASSWORD_ENV,
    env: bench.env,
    prompt: options.prompt,
    promptHint: 'leave empty to generate one',
  }
}

/**
 * `tenancy add-user`: a new user of the site with its roles and a password, from
 * `--password-file`, `--password`, `TENANCY_USER_PASSWORD` or the prompt, else generated
 * (and returned, once). Only the password's scrypt hash reaches the site. An email that is a
 * user already is refused (exit 2), as bench's `add-user` refuses it.
 *
 * @example
 * await addUser(bench, { site: 'acme.localhost', email: 'ops@acme.com', roles: ['System Manager', 'Guest'] })
 */
export async function addUser(bench: Bench, options: AddUserOptions): Promise<AddUserResult> {
  const email = assertNewUserEmail(options.email)
  const roles = assertRoles(options.roles ?? [])
  const firstName = assertPersonName(options.firstName, '--first-name')
  const lastName = assertPersonName(options.lastName, '--last-name')
  return usingSite(bench, options.site, async ({ conn }) => {
    // Before asking for a password: an email taken (or a role missing) is known without one.
    const taken = await conn.db.selectFrom('users').select('name').where('name', '=', email).executeTakeFirst()
    if (taken) throw userExistsError(email, options.site)
    await requireRoles(conn.db, roles, options.site)
    const given = await resolveSecret(userPasswordSources(bench, email, options))
    if (given && given.value.length === 0)
      throw usageError(
        `the password from ${given.where} is empty; give a non-empty one, or give none to have one generated`,
      )
    const password = given?.value ?? generatePassword()
    const passwordHash = await hashPassword(password)
    await conn.transaction((tx) =>
      addUserTo(tx, { email, roles, firstName, lastName, passwordHash }, { site: options.site, existing: 'refuse' }),
    )
    return { site: options.site, email, roles, ...(given ? {} : { password }) }
  })
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
 * `tenancy add-system-manager`: `add-user --role "System Manager"`, except that an existing
 * user just gets the role (idempotent, so the pipeline's `api-user` step can run again). A
 * user it creates has no password: it signs in with API keys (`generate-keys`).
 */
export async function addSystemManager(
  bench: Bench,
  options: AddSystemManagerOptions,
): Promise<AddSystemManagerResult> {
  const email = assertNewUserEmail(options.email)
  const user: NewUser = {
    email,
    roles: [SYSTEM_MANAGER],
    firstName: assertPersonName(options.firstName, '--first-name'),
    lastName: assertPersonName(options.lastName, '--last-name'),
    passwordHash: null,
  }
  return usingSite(bench, options.site, async ({ conn }) => {
    const result = await conn.transaction((tx) => addUserTo(tx, user, { site: options.site, existing: 'add-roles' }))
    return { site: options.site, email, created: result.created, role_added: result.roles_added.length > 0 }
  })
}

// Checked against when the user has no usable hash, so that an unknown email takes as long
// as a wrong password and the time does not tell which emails are users.
let decoyHash: Promise<string> | undefined

export interface CheckPasswordOptions {
  site: string
  /** The user's email, or `Administrator`. */
  email: string
  password: string
}

/**
 * A log-in check: whether `password` is the current password of the enabled user `email` on
 * the site, compared through its stored scrypt hash in constant time. False for an unknown,
 * disabled or password-less user.
 *
 * @example
 * await checkPassword(bench, { site: 'acme.localhost', email: 'Administrator', password })
 */
export async function checkPassword(bench: Bench, options: CheckPasswordOptions): Promise<boolean> {
  const email = assertEmail(options.email)
  const row = await usingSite(bench, options.site, ({ conn }) =>
    conn.db.selectFrom('users').select(['password_hash', 'enabled']).where('name', '=', email).executeTakeFirst(),
  )
  const hash = typeof row?.password_hash === 'string' ? row.password_hash : undefined
  if (hash === undefined || Number(row?.enabled) !== 1) {
    decoyHash ??= hashPassword(generatePassword())
    await verifyPassword(options.password, await decoyHash)
    return false
  }
  return verifyPassword(options.password, hash)
}
