import { usageError } from './errors.js'

// Every name that reaches SQL or the filesystem passes one of these first. They are
// deliberately strict: lower case only, no dots at the ends, no `..`, `/` or NUL.

const LABEL = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?'
const SITE_NAME = new RegExp(`^${LABEL}(?:\\.${LABEL})*$`)
const APP_NAME = /^[a-z][a-z0-9_]{0,63}$/
const DB_NAME = /^[a-z0-9_]{1,63}$/
const TENANT_NAME = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/
const MIGRATION_FILE = /^(\d{4,})_([a-z0-9_]{1,100})\.(sql|js|mjs)$/
const EMAIL = /^[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/
const HOST_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62}[A-Za-z0-9])?$/
const CONFIG_KEY = /^[A-Za-z_][A-Za-z0-9_-]{0,63}(?:\.[A-Za-z_][A-Za-z0-9_-]{0,63}){0,7}$/

function describe(value: string): string {
  return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value)
}

/** A site name is a lower-case hostname of at most 253 characters, e.g. `acme.localhost`. */
export function assertSiteName(name: string): string {
  if (typeof name !== 'string' || name.length === 0 || name.length > 253 || !SITE_NAME.test(name)) {
    throw usageError(
      `invalid site name ${describe(String(name))}: use a lower-case hostname such as "acme.localhost" ` +
        `(letters, digits, hyphens and dots, at most 253 characters)`,
    )
  }
  return name
}

/**
 * A machine's name (`TENANCY_HOST`, `host` in the config, `--host`): letters, digits, dots,
 * hyphens and underscores, at most 64 characters, as hostnames are.
 */
export const isHostName = (name: unknown): name is string => typeof name === 'string' && HOST_NAME.test(name)

export function assertHostName(name: string, from = 'machine name'): string {
  if (!isHostName(name)) {
    throw usageError(
      `invalid ${from} ${describe(String(name))}: use a hostname such as "web-1" ` +
        `(letters, digits, dots, hyphens and underscores, at most 64 characters)`,
    )
  }
  return name
}

/** An app name is a lower-case identifier, e.g. `tenant_ops`. */
export function assertAppName(name: string): string {
  if (typeof name !== 'string' || !APP_NAME.test(name)) {
    throw usageError(
      `invalid app name ${describe(String(name))}: use lower-case letters, digits and underscores, ` +
        `starting with a letter (at most 64 characters)`,
    )
  }
  return name
}

/** A database name given with `--db-name`: `[a-z0-9_]{1,63}`. */
export function assertDbName(name: string): string {
  if (typeof name !== 'string' || !DB_NAME.test(name)) {
    throw usageError(`invalid database name ${describe(String(name))}: use 1 to 63 of a-z, 0-9 and _`)
  }
  return name
}

/** A tenant name is a slug: lower-case letters, digits and inner hyphens, at most 63 characters. */
export function assertTenantName(name: string): string {
  if (typeof name !== 'string' || !TENANT_NAME.test(name)) {
    throw usageError(
      `invalid tenant name ${describe(String(name))}: use a slug such as "acme" ` +
        `(lower-case letters, digits and inner hyphens, at most 63 characters)`,
    )
  }
  return name
}

/** A user's email, lower-cased (addresses are case-insensitive in practice), or the built-in `Administrator`. */
export function assertEmail(email: string): string {
  if (typeof email !== 'string' || (email !== 'Administrator' && !EMAIL.test(email))) {
    throw usageError(`invalid email ${describe(String(email))}: expected an address such as "api@acme.localhost"`)
  }
  return email === 'Administrator' ? email : email.toLowerCase()
}

/**
 * Names that would reach an object's prototype instead of a key of its own: JavaScript
 * drops or misroutes them silently, so a config key or data key holding one is refused.
 */
const PROTOTYPE_KEYS = new Set(['__proto__', 'prototype', 'constructor'])

/** Refuses `__proto__`, `prototype` and `constructor` as a key or a segment of a dotted key. */
export function assertNotPrototypeKey(key: string, what: string): string {
  const bad = key.split('.').find((part) => PROTOTYPE_KEYS.has(part))
  if (bad) throw usageError(`invalid ${what} ${describe(key)}: "${bad}" cannot be used as a key; choose another name`)
  return key
}

/** A config key: identifiers joined by dots for nested keys (`db.type`). */
export function assertConfigKey(key: string): string {
  if (typeof key !== 'string' || !CONFIG_KEY.test(key)) {
    throw usageError(
      `invalid config key ${describe(String(key))}: use letters, digits, "_" and "-", ` +
        `with "." between nested keys (e.g. "developer_mode" or "db.type")`,
    )
  }
  return assertNotPrototypeKey(key, 'config key')
}

/** Splits a migration file name into its order and name, or returns null when it is not one. */
export function parseMigrationFile(file: string): { name: string; kind: 'sql' | 'js' } | null {
  const match = MIGRATION_FILE.exec(file)
  if (!match) return null
  return { name: `${match[1]}_${match[2]}`, kind: match[3] === 'sql' ? 'sql' : 'js' }
}

/** `_` followed by 16 random hex characters: database names are generated, never taken from input. */
export function generateDbName(randomHex: string): string {
  return `_${randomHex}`
}
