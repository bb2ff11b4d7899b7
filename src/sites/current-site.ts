import { mkdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { dirname } from 'node:path'
import type { Bench } from '../bench.js'
import { DEFAULT_SITE_FILE } from '../config/find-config.js'
import { NODE, codeOf } from '../error-codes.js'
import { writeFileAtomic } from '../util/json-file.js'
import { requireSite } from './site.js'

/** What `tenancy use` reports: the default site now, and where it comes from. */
export interface DefaultSite {
  site: string | null
  from: 'TENANCY_SITE' | 'tenancy use' | null
}

/**
 * `tenancy use`: with a site (which must exist), records it as the bench's default in
 * `.tenancy/current-site`; with null (`--clear`) removes it; with undefined shows it.
 * `TENANCY_SITE` overrides the file, and is reported as the source when set.
 */
export async function useSite(bench: Bench, site: string | null | undefined): Promise<DefaultSite> {
  const file = bench.path(DEFAULT_SITE_FILE)
  if (site === null) rmSync(file, { force: true })
  else if (site !== undefined) {
    await requireSite(bench, site)
    mkdirSync(dirname(file), { recursive: true })
    writeFileAtomic(file, `${site}\n`, 0o644)
  }
  const now = bench.defaultSite ?? null
  return { site: now, from: now === null ? null : bench.env.TENANCY_SITE?.trim() ? 'TENANCY_SITE' : 'tenancy use' }
}

/**
 * After a rename (`to` the new name) or a drop (`to` null): the bench's default site
 * (`tenancy use`) follows its site to the new name, or is cleared with it.
 */
export function followDefaultSite(bench: Bench, from: string, to: string | null): void {
  const file = bench.path(DEFAULT_SITE_FILE)
  let current: string
  try {
    // Usually there is none: asked without the ENOENT a read would throw (~10 µs).
    if (!statSync(file, { throwIfNoEntry: false })) return
    current = readFileSync(file, 'utf8').trim()
  } catch (error) {
    if (codeOf(error) === NODE.ENOENT || codeOf(error) === NODE.ENOTDIR) return
    throw error
  }
  if (current !== from) return
  if (to === null) rmSync(file, { force: true })
  else writeFileAtomic(file, `${to}\n`, 0o644)
}
