import { describe, expect, it } from 'vitest'
import {
  assertAppName,
  assertConfigKey,
  assertDbName,
  assertEmail,
  assertSiteName,
  assertTenantName,
  parseMigrationFile,
} from '../src/names.js'
import { TenancyError } from '../src/errors.js'

function refused(fn: () => unknown): TenancyError {
  try {
    fn()
  } catch (error) {
    expect(error).toBeInstanceOf(TenancyError)
    expect((error as TenancyError).exitCode).toBe(2)
    return error as TenancyError
  }
  throw new Error('expected a refusal')
}

describe('names', () => {
  it('accepts hostnames as site names', () => {
    for (const ok of ['acme.localhost', 'a', 'tenant-1.example.com', 'x1.y2.z3']) expect(assertSiteName(ok)).toBe(ok)
  })

  it('refuses traversal, separators, NUL, spaces, upper case and over-long site names', () => {
    for (const bad of [
      '..',
      '../etc',
      'a/b',
      'a\\b',
      'a\0b',
      'a b',
      'Acme.localhost',
      '.acme',
      'acme.',
      '-a.b',
      'a..b',
      '',
      'a'.repeat(64),
      `${'a.'.repeat(127)}ab`,
    ]) {
      expect(refused(() => assertSiteName(bad)).message).toMatch(/invalid site name/)
    }
  })

  it('checks app, database, tenant names, emails and config keys', () => {
    expect(assertAppName('tenant_ops')).toBe('tenant_ops')
    for (const bad of ['Tenant', '1app', 'a-b', '../x', 'a'.repeat(65)]) refused(() => assertAppName(bad))
    expect(assertDbName('_0123456789abcdef')).toBe('_0123456789abcdef')
    for (const bad of ['BAD', 'a-b', 'a'.repeat(64), '', 'x;drop']) refused(() => assertDbName(bad))
    expect(assertTenantName('acme-2')).toBe('acme-2')
    for (const bad of ['Acme', '-a', 'a-', 'a_b', 'a.b']) refused(() => assertTenantName(bad))
    expect(assertEmail('api@acme.localhost')).toBe('api@acme.localhost')
    for (const bad of ['nope', 'a@', '@b', "a'@b.c", 'a b@c.d']) refused(() => assertEmail(bad))
    expect(assertConfigKey('db.type')).toBe('db.type')
    for (const bad of ['', 'a..b', '__proto__x.', 'a/b', 'a b']) refused(() => assertConfigKey(bad))
  })

  it('parses migration file names', () => {
    expect(parseMigrationFile('0001_init.sql')).toEqual({ name: '0001_init', kind: 'sql' })
    expect(parseMigrationFile('0002_add_x.mjs')).toEqual({ name: '0002_add_x', kind: 'js' })
    expect(parseMigrationFile('1_x.sql')).toBeNull()
    expect(parseMigrationFile('0001_Init.sql')).toBeNull()
    expect(parseMigrationFile('0001_init.ts')).toBeNull()
  })
})
