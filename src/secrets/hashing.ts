import { createHash, createHmac, randomBytes, scrypt, timingSafeEqual } from 'node:crypto'

// scrypt at Node's default cost (N=2^14, r=8, p=1: 16 MiB, ~45 ms here). The hash runs on
// libuv's thread pool, so callers start it early and await it after their SQL work.
const SCRYPT_N = 16_384
const SCRYPT_R = 8
const SCRYPT_P = 1
const KEY_LENGTH = 32

function scryptAsync(password: string, salt: Buffer, n: number, r: number, p: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(password, salt, KEY_LENGTH, { N: n, r, p, maxmem: 256 * n * r + 1024 * 1024 }, (error, key) =>
      error ? reject(error) : resolve(key),
    )
  })
}

/** Hashes started ahead by `startHashing`, by password, oldest first, until `hashPassword` takes them. */
const started = new Map<string, Promise<string>[]>()

/**
 * Starts hashing `password` now, for a later `hashPassword(password)` in this process to take:
 * a caller that knows a password long before it stores the hash (a tenant's Administrator,
 * chosen as the tenant is recorded, or the next pool tenant's while one is provisioned) lets the
 * scrypt run meanwhile on the thread pool. Each start is taken once (two tenants with the same
 * configured password get a hash, and a salt, each). Returns a discard: the hash is dropped if
 * nothing took it yet (call it once the caller knows nothing will).
 */
export function startHashing(password: string): () => void {
  const hash = scryptHash(password)
  hash.catch(() => {})
  const queue = started.get(password)
  if (queue) queue.push(hash)
  else started.set(password, [hash])
  return () => {
    const left = started.get(password)
    const at = left?.indexOf(hash) ?? -1
    if (at < 0) return
    left!.splice(at, 1)
    if (left!.length === 0) started.delete(password)
  }
}

/** Hashes a password with a random salt: `scrypt$N$r$p$salt$hash` (base64). */
export async function hashPassword(password: string): Promise<string> {
  const queue = started.get(password)
  const early = queue?.shift()
  if (queue?.length === 0) started.delete(password)
  return early ?? scryptHash(password)
}

async function scryptHash(password: string): Promise<string> {
  const salt = randomBytes(16)
  const key = await scryptAsync(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
  return `scrypt$${SCRYPT_N}$${SCRYPT_R}$${SCRYPT_P}$${salt.toString('base64')}$${key.toString('base64')}`
}

/** Checks a password against a stored `scrypt$…` hash in constant time. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parts = stored.split('$')
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false
  const [, n, r, p, salt, hash] = parts as [string, string, string, string, string, string]
  const expected = Buffer.from(hash, 'base64')
  const actual = await scryptAsync(password, Buffer.from(salt, 'base64'), Number(n), Number(r), Number(p))
  return expected.length === actual.length && timingSafeEqual(expected, actual)
}

/** A random API secret: 192 bits, base64url. */
export function generateApiSecret(): string {
  return randomBytes(24).toString('base64url')
}

/** A stable API key: 15 hex characters, as Frappe's generate_keys makes. */
export function generateApiKey(): string {
  return randomBytes(8).toString('hex').slice(0, 15)
}

/** A random password for a generated admin or database user. */
export function generatePassword(): string {
  return randomBytes(18).toString('base64url')
}

// API secrets are 192 random bits, so a salted SHA-256 is as strong as a slow hash here
// and keeps verify-key fast.
/** Hashes an API secret: `sha256$salt$hash`. */
export function hashApiSecret(secret: string): string {
  const salt = randomBytes(16).toString('base64')
  const hash = createHash('sha256').update(salt).update(secret).digest('base64')
  return `sha256$${salt}$${hash}`
}

/** Checks an API secret against a stored `sha256$…` hash in constant time. */
export function verifyApiSecret(secret: string, stored: string): boolean {
  const parts = stored.split('$')
  if (parts.length !== 3 || parts[0] !== 'sha256') return false
  const expected = Buffer.from(parts[2]!, 'base64')
  const actual = createHash('sha256').update(parts[1]!).update(secret).digest()
  return expected.length === actual.length && timingSafeEqual(expected, actual)
}

/**
 * The signature of a webhook body: `sha256=` and the hex HMAC-SHA256 of its exact bytes under
 * `secret`, as GitHub signs its webhooks; a receiver recomputes it and compares in constant time.
 *
 * @example
 * signBody('s3cret', '{"id":"…"}') // 'sha256=5d1e…'
 */
export function signBody(secret: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(body, 'utf8').digest('hex')}`
}
