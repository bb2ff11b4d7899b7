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
