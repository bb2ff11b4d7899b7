import { createHash, createHmac, pbkdf2, randomBytes } from 'node:crypto'

// A database server is given a verifier of the password, never the password itself: a
// failing CREATE ROLE / CREATE USER that the server writes to its log then shows a hash.

const SCRAM_ITERATIONS = 4096

/**
 * The SCRAM-SHA-256 verifier PostgreSQL stores for a password (RFC 5803 format), which
 * `CREATE ROLE … PASSWORD '<verifier>'` accepts as is. Generated passwords are ASCII, so
 * SASLprep leaves them unchanged.
 */
export async function scramSha256Verifier(
  password: string,
  salt = randomBytes(16),
  iterations = SCRAM_ITERATIONS,
): Promise<string> {
  const salted = await new Promise<Buffer>((resolve, reject) =>
    pbkdf2(password, salt, iterations, 32, 'sha256', (error, key) => (error ? reject(error) : resolve(key))),
  )
  const clientKey = createHmac('sha256', salted).update('Client Key').digest()
  const storedKey = createHash('sha256').update(clientKey).digest()
  const serverKey = createHmac('sha256', salted).update('Server Key').digest()
  return (
    `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$` +
    `${storedKey.toString('base64')}:${serverKey.toString('base64')}`
  )
}

/** The mysql_native_password hash (`*` + SHA1(SHA1(password)), hex) for `IDENTIFIED BY PASSWORD`. */
export function mysqlNativeHash(password: string): string {
  const inner = createHash('sha1').update(password).digest()
  return `*${createHash('sha1').update(inner).digest('hex').toUpperCase()}`
}
