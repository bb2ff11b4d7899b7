import { readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { execa } from 'execa'
import { describe, expect, it } from 'vitest'
import { SecretBox, loadSecretBox } from '../src/secrets/secret-box.js'
import { hashApiSecret, hashPassword, startHashing, verifyApiSecret, verifyPassword } from '../src/secrets/hashing.js'
import { ROOT, tempDir } from './helpers.js'

describe('secrets', () => {
  it('encrypts with AES-256-GCM and refuses a wrong key with a clear message', () => {
    const dir = tempDir()
    const box = loadSecretBox(join(dir, '.tenancy', 'secret.key'), {})
    const sealed = box.encrypt('s3cret-value')
    expect(sealed).not.toContain('s3cret')
    expect(box.decrypt(sealed)).toBe('s3cret-value')
    expect(box.encrypt('s3cret-value')).not.toBe(sealed)
    const other = new SecretBox(Buffer.alloc(32, 7))
    expect(() => other.decrypt(sealed)).toThrow(/wrong encryption key/)
  })

  it('creates the key file 0600 once, even with several processes racing', async () => {
    const dir = tempDir()
    const keyFile = join(dir, '.tenancy', 'secret.key')
    const code = `
      const { loadSecretBox } = await import(${JSON.stringify(join(ROOT, 'dist', 'index.js'))});
      process.stdout.write(loadSecretBox(${JSON.stringify(keyFile)}).encrypt('x'))`
    const runs = await Promise.all(
      Array.from({ length: 6 }, () =>
        execa(process.execPath, ['--input-type=module', '-e', code], { env: { TENANCY_ENCRYPTION_KEY: '' } }),
      ),
    )
    const key = readFileSync(keyFile, 'utf8')
    expect(statSync(keyFile).mode & 0o777).toBe(0o600)
    const box = new SecretBox(Buffer.from(key.trim(), 'base64'))
    for (const run of runs) expect(box.decrypt(run.stdout)).toBe('x')
  })

  it('prefers TENANCY_ENCRYPTION_KEY and rejects a malformed one', () => {
    const dir = tempDir()
    const key = Buffer.alloc(32, 1).toString('base64')
    const box = loadSecretBox(join(dir, 'none.key'), { TENANCY_ENCRYPTION_KEY: key })
    expect(new SecretBox(Buffer.alloc(32, 1)).decrypt(box.encrypt('y'))).toBe('y')
    expect(() => loadSecretBox(join(dir, 'none.key'), { TENANCY_ENCRYPTION_KEY: 'short' })).toThrow(
      /TENANCY_ENCRYPTION_KEY must hold 32 bytes/,
    )
  })

  it('hashes passwords with salted scrypt and API secrets with salted SHA-256', async () => {
    const a = await hashPassword('pw')
    const b = await hashPassword('pw')
    expect(a).toMatch(/^scrypt\$16384\$8\$1\$/)
    expect(a).not.toBe(b)
    expect(await verifyPassword('pw', a)).toBe(true)
    expect(await verifyPassword('nope', a)).toBe(false)
    const h = hashApiSecret('secret')
    expect(h).toMatch(/^sha256\$/)
    expect(verifyApiSecret('secret', h)).toBe(true)
    expect(verifyApiSecret('secreT', h)).toBe(false)
    expect(verifyApiSecret('secret', 'garbage')).toBe(false)
  })

  it('a hash started early is the one the next hashPassword of that password takes, once', async () => {
    startHashing('early-pw')
    const first = await hashPassword('early-pw')
    const second = await hashPassword('early-pw')
    expect(await verifyPassword('early-pw', first)).toBe(true)
    expect(await verifyPassword('early-pw', second)).toBe(true)
    // Each its own salt: the early one was taken by the first call only.
    expect(first).not.toBe(second)
  })

  it('two early starts of one password are two hashes, each taken once; a discard after the take is a no-op', async () => {
    const discardA = startHashing('shared-pw')
    startHashing('shared-pw')
    const a = await hashPassword('shared-pw')
    discardA()
    const b = await hashPassword('shared-pw')
    const c = await hashPassword('shared-pw')
    for (const hash of [a, b, c]) expect(await verifyPassword('shared-pw', hash)).toBe(true)
    expect(new Set([a, b, c]).size).toBe(3)
    // Discarded before anything took it: the next hash is computed, and still right.
    startHashing('dropped-pw')()
    expect(await verifyPassword('dropped-pw', await hashPassword('dropped-pw'))).toBe(true)
  })
})

describe('child environments', () => {
  it('drop anything that looks like a secret, by name or by value', async () => {
    const { childEnvironment } = await import('../src/util/run-command.js')
    const env = childEnvironment(
      {
        PATH: '/bin',
        PWD: '/srv',
        PGPASSWORD: 'a',
        MYSQL_PWD: 'b',
        AWS_SECRET_ACCESS_KEY: 'c',
        GITHUB_TOKEN: 'd',
        db_password: 'e',
        STRIPE_API_KEY: 'f',
        TENANCY_REGISTRY_URL: 'postgres://u:p@h/db',
        DATABASE_URL: 'mysql://root:hunter2@db/app',
        TENANCY_ADMIN_PASSWORD: 'g',
        TENANCY_ENCRYPTION_KEY: 'h',
        HOME: '/root',
      },
      { TENANCY_SITE: 'a.localhost' },
    )
    expect(env).toEqual({ PATH: '/bin', PWD: '/srv', HOME: '/root', TENANCY_SITE: 'a.localhost' })
  })
})
