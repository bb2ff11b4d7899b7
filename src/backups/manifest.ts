import { createHash } from 'node:crypto'
import type { DbType } from '../config/config.js'

/** Version of the manifest's layout; a reader refuses any other. */
export const MANIFEST_FORMAT = 1

/** One file of a backup set as written: its name in the set, size in bytes and sha256 (hex). */
export interface ManifestFile {
  name: string
  bytes: number
  sha256: string
}

/** An app installed on the site when it was backed up, with its applied migrations. */
export interface ManifestApp {
  name: string
  version: string
  migrations: string[]
}

/** `manifest.json` of a backup set (SPEC §7). */
export interface BackupManifest {
  format: typeof MANIFEST_FORMAT
  tenancy_version: string
  site: string
  tenant: string | null
  db_type: DbType
  created_at: string
  apps: ManifestApp[]
  files: ManifestFile[]
  encrypted: boolean
  duration_ms: number
  /**
   * The name the site had when the set was taken, once the site was renamed (beyond the SPEC's
   * fields): `site` then is its name now, so the set is still the site's own to restore.
   */
  backed_up_as?: string
  /**
   * `sha256:<hex>` of the manifest as written without this field (beyond the SPEC's fields):
   * a flipped byte anywhere in the manifest is found before the set is trusted.
   */
  checksum?: string
}

const sha256 = (text: string) => `sha256:${createHash('sha256').update(text).digest('hex')}`
const pretty = (value: unknown) => `${JSON.stringify(value, null, 2)}\n`

/** The text of `manifest.json`: the manifest, pretty-printed, with its `checksum` last. */
export function manifestText(manifest: Omit<BackupManifest, 'checksum'>): string {
  return pretty({ ...manifest, checksum: sha256(pretty(manifest)) })
}

/**
 * Whether `text` is exactly the manifest that was written: its `checksum` matches the rest,
 * and the bytes are the ones printing it gives (JSON.parse keeps the order of the keys), so a
 * changed byte anywhere, whitespace included, is found.
 */
export function manifestIntact(text: string, parsed: BackupManifest): boolean {
  const { checksum, ...rest } = parsed
  return typeof checksum === 'string' && checksum === sha256(pretty(rest)) && text === manifestText(rest)
}

/** Whether a parsed `manifest.json` has the shape of a format-1 manifest (what listing trusts). */
export function isManifest(value: unknown): value is BackupManifest {
  const m = value as Partial<BackupManifest> | null
  return (
    typeof m === 'object' &&
    m !== null &&
    m.format === MANIFEST_FORMAT &&
    typeof m.site === 'string' &&
    typeof m.created_at === 'string' &&
    typeof m.encrypted === 'boolean' &&
    Array.isArray(m.apps) &&
    Array.isArray(m.files) &&
    m.files.every((f) => typeof f?.name === 'string' && typeof f.bytes === 'number' && typeof f.sha256 === 'string')
  )
}
