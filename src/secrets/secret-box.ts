import { createCipheriv, createDecipheriv, randomBytes, type DecipherGCM } from 'node:crypto'
import { Transform } from 'node:stream'
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

  /** A stream that encrypts what goes through it (AES-256-GCM; a backup's files). */
  encryptingStream(): Transform {
    return encryptingStream(this.#key)
  }

  /** The reverse of `encryptingStream`; fails at the end on a wrong key or an altered byte. */
  decryptingStream(): Transform {
    return decryptingStream(this.#key)
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

/** The first bytes of a file `SecretBox.encryptingStream` wrote: a name and a format version. */
export const STREAM_MAGIC = Buffer.from('TENANCY-AES256GCM-1\n')

/**
 * Encrypts a stream of any length with AES-256-GCM under `key`: the magic, a random nonce,
 * the ciphertext, then the 16-byte tag, so nothing is held in memory but one chunk.
 */
function encryptingStream(key: Buffer): Transform {
  const nonce = randomBytes(NONCE_BYTES)
  const cipher = createCipheriv('aes-256-gcm', key, nonce)
  let started = false
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      const body = cipher.update(chunk)
      if (!started) {
        started = true
        done(null, Buffer.concat([STREAM_MAGIC, nonce, body]))
      } else done(null, body)
    },
    flush(done) {
      const last = cipher.final()
      const head = started ? [] : [STREAM_MAGIC, nonce]
      done(null, Buffer.concat([...head, last, cipher.getAuthTag()]))
    },
  })
}

/**
 * Decrypts what `encryptingStream` wrote. The last 16 bytes are the tag, so they are held
 * back until the end; a wrong key or an altered byte fails at the end with `WrongKeyError`,
 * and whoever reads the output must not trust it before the stream finished without error.
 */
function decryptingStream(key: Buffer): Transform {
  let head = Buffer.alloc(0)
  let decipher: DecipherGCM | undefined
  let held = Buffer.alloc(0)
  const headBytes = STREAM_MAGIC.length + NONCE_BYTES
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      if (!decipher) {
        head = Buffer.concat([head, chunk])
        if (head.length < headBytes) return done()
        if (!head.subarray(0, STREAM_MAGIC.length).equals(STREAM_MAGIC))
          return done(new TenancyError('not a file tenancy encrypted (its header is wrong)'))
        decipher = createDecipheriv('aes-256-gcm', key, head.subarray(STREAM_MAGIC.length, headBytes))
        chunk = head.subarray(headBytes)
      }
      held = Buffer.concat([held, chunk])
      if (held.length <= TAG_BYTES) return done()
      const body = held.subarray(0, held.length - TAG_BYTES)
      held = Buffer.from(held.subarray(held.length - TAG_BYTES))
      done(null, decipher.update(body))
    },
    flush(done) {
      if (!decipher || held.length !== TAG_BYTES) return done(new TenancyError('the encrypted file is truncated'))
      decipher.setAuthTag(held)
      try {
        done(null, decipher.final())
      } catch {
        done(new WrongKeyError())
      }
    },
  })
}

function parseKey(text: string, source: string): Buffer {
  const key = Buffer.from(text.trim(), 'base64')
  if (key.length !== 32)
    throw usageError(`${source} must hold 32 bytes, base64-encoded (44 characters); it holds ${key.length} bytes`)
  return key
}

/** A box with the key in `keyFile` (32 bytes, base64), e.g. `backups.key_file`; a missing file is exit 2. */
export function secretBoxFromFile(keyFile: string): SecretBox {
  let text
  try {
    text = readFileSync(keyFile, 'utf8')
  } catch (error) {
    throw usageError(`cannot read the key file ${keyFile}: ${(error as Error).message}; check the path`, error)
  }
  return new SecretBox(parseKey(text, keyFile))
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
