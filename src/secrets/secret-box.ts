import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'
import { mkdirSync, readFileSync } from 'node:fs'
import { dirname } from 'node:path'
import { TenancyError, usageError } from '../errors.js'
import { createFileOnce } from '../util/json-file.js'

const VERSION = 1

/** A sealed value that the key in use does not open: it was encrypted with another key. */
export class WrongKeyError extends TenancyError {
  constructor() {
    super(
      'cannot decrypt a stored secret: wrong encryption key; ' +
        'use the .tenancy/secret.key (or TENANCY_ENCRYPTION_KEY) the secret was written with',
    )
    this.name = 'WrongKeyError'
  }
}
const NONCE_BYTES = 12
const TAG_BYTES = 16

/**
 * AES-256-GCM encryption for secrets kept in the registry. Ciphertext is
 * base64(version byte + nonce + tag + ciphertext). A wrong key fails authentication and
 * is reported as a wrong key, never as garbage.
 */
export class SecretBox {
  readonly #key: Buffer

  constructor(key: Buffer) {
    if (key.length !== 32) throw usageError('the encryption key must be 32 bytes, base64-encoded (44 characters)')
    this.#key = key
  }

  encrypt(plaintext: string): string {
    const nonce = randomBytes(NONCE_BYTES)
    const cipher = createCipheriv('aes-256-gcm', this.#key, nonce)
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()])
    return Buffer.concat([Buffer.from([VERSION]), nonce, cipher.getAuthTag(), body]).toString('base64')
  }

  decrypt(encoded: string): string {
    const data = Buffer.from(encoded, 'base64')
    if (data.length < 1 + NONCE_BYTES + TAG_BYTES || data[0] !== VERSION) {
      throw new TenancyError('a stored secret is not in a format this version of tenancy can read')
    }
    const nonce = data.subarray(1, 1 + NONCE_BYTES)
    const tag = data.subarray(1 + NONCE_BYTES, 1 + NONCE_BYTES + TAG_BYTES)
    const decipher = createDecipheriv('aes-256-gcm', this.#key, nonce)
    decipher.setAuthTag(tag)
    try {
      return Buffer.concat([decipher.update(data.subarray(1 + NONCE_BYTES + TAG_BYTES)), decipher.final()]).toString(
        'utf8',
      )
    } catch {
      throw new WrongKeyError()
    }
  }
}

function parseKey(text: string, source: string): Buffer {
  const key = Buffer.from(text.trim(), 'base64')
  if (key.length !== 32)
    throw usageError(`${source} must hold 32 bytes, base64-encoded (44 characters); it holds ${key.length} bytes`)
  return key
}

/** Where a bench's key comes from, for messages: the environment or the key file. */
export function keySource(keyFile: string, env: NodeJS.ProcessEnv = process.env): string {
  return env.TENANCY_ENCRYPTION_KEY ? 'TENANCY_ENCRYPTION_KEY' : keyFile
}

/** The key in use, `TENANCY_ENCRYPTION_KEY` when set, else `keyFile`; undefined when neither exists. */
export function readSecretBox(keyFile: string, env: NodeJS.ProcessEnv = process.env): SecretBox | undefined {
  if (env.TENANCY_ENCRYPTION_KEY) return new SecretBox(parseKey(env.TENANCY_ENCRYPTION_KEY, 'TENANCY_ENCRYPTION_KEY'))
  try {
    return new SecretBox(parseKey(readFileSync(keyFile, 'utf8'), keyFile))
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
    return undefined
  }
}

/**
 * Makes a new random key in `keyFile` (mode 0600) and returns its box. Race-free: the key
 * is written whole to a private temporary file and hard-linked into place, so a concurrent
 * process either links first or reads the complete winner.
 */
export function createSecretBox(keyFile: string): SecretBox {
  mkdirSync(dirname(keyFile), { recursive: true, mode: 0o700 })
  createFileOnce(keyFile, `${randomBytes(32).toString('base64')}\n`, 0o600)
  return new SecretBox(parseKey(readFileSync(keyFile, 'utf8'), keyFile))
}

/**
 * Loads a secret box: `TENANCY_ENCRYPTION_KEY` when set, else `keyFile`, created with mode
 * 0600 on first use. A bench checks the key against its registry (`bench.secretBox()`);
 * this is the bare loader.
 */
export function loadSecretBox(keyFile: string, env: NodeJS.ProcessEnv = process.env): SecretBox {
  return readSecretBox(keyFile, env) ?? createSecretBox(keyFile)
}
