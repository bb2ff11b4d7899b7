import { createHash } from 'node:crypto'
import { createReadStream, readFileSync, statSync } from 'node:fs'
import { resolve, join } from 'node:path'
import { PassThrough, type Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { Bench } from '../bench.js'
import { CORE_APP, CORE_MIGRATIONS } from '../apps/core-app.js'
import { listBenchApps } from '../apps/manifest.js'
import { DB_TYPES, type DbType } from '../config/config.js'
import { getDriver } from '../databases/index.js'
import type { DatabaseDriver } from '../databases/driver.js'
import { NODE, codeOf } from '../error-codes.js'
import { TenancyError, usageError } from '../errors.js'
import type { SecretBox } from '../secrets/secret-box.js'
import { parseJson } from '../util/json-file.js'
import { fileChunks } from '../util/stream-chunks.js'
import { ENCRYPTED_SUFFIX, MANIFEST } from './backup-set.js'
import { backupKey } from './backup.js'
import { isManifest, manifestIntact, type BackupManifest, type ManifestFile } from './manifest.js'

/** A backup set whose manifest and every file were checked, ready to be loaded. */
export interface VerifiedSet {
  /** The set's directory, absolute. */
  dir: string
  manifest: BackupManifest
  driver: DatabaseDriver
  /** The set's `site_config.json`: the site's settings without `db_*`. */
  siteConfig: Record<string, unknown>
  /** The dump's bytes as the driver wrote them (decrypted when the set is encrypted). */
  openDump(): Readable
}

const PICK_ANOTHER = 'pick another set ("tenancy list-backups")'

/** Size and sha256 of a file, read once. */
async function digestOf(file: string): Promise<{ bytes: number; sha256: string }> {
  const hash = createHash('sha256')
  let bytes = 0
  await pipeline(createReadStream(file, fileChunks), async (chunks: AsyncIterable<Buffer>) => {
    for await (const chunk of chunks) {
      hash.update(chunk)
      bytes += chunk.length
    }
  })
  return { bytes, sha256: hash.digest('hex') }
}

/** `dir/manifest.json` read and checked whole: a set whose manifest is missing, unreadable or changed is exit 2. */
function readManifest(dir: string): BackupManifest {
  let stat
  try {
    stat = statSync(dir)
  } catch (error) {
    if (codeOf(error) === NODE.ENOENT) throw usageError(`backup set ${dir} does not exist; ${PICK_ANOTHER}`)
    throw error
  }
  if (!stat.isDirectory()) throw usageError(`${dir} is not a backup set directory; ${PICK_ANOTHER}`)
  const file = join(dir, MANIFEST)
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (error) {
    if (codeOf(error) === NODE.ENOENT)
      throw usageError(`${dir} is not a complete backup set (it has no ${MANIFEST}); ${PICK_ANOTHER}`)
    throw error
  }
  let parsed: unknown
  try {
    parsed = parseJson(text, file)
  } catch {
    throw usageError(`${file} is damaged (not valid JSON); the set cannot be trusted, ${PICK_ANOTHER}`)
  }
  if (!isManifest(parsed))
    throw usageError(`${file} is not a manifest this version of tenancy can read; ${PICK_ANOTHER}`)
  if (!manifestIntact(text, parsed))
    throw usageError(`${file} was changed after it was written (its checksum differs); ${PICK_ANOTHER}`)
  return parsed
}

/** Every file the manifest lists is there with its size and sha256. */
async function checkFiles(dir: string, files: ManifestFile[]): Promise<void> {
  for (const f of files) {
    // Names come from the manifest: only plain names inside the set.
    if (!/^[A-Za-z0-9_.-]+$/.test(f.name) || f.name.startsWith('.'))
      throw usageError(`${join(dir, MANIFEST)} lists a file "${f.name}" outside the set; ${PICK_ANOTHER}`)
    const path = join(dir, f.name)
    let actual
    try {
      actual = await digestOf(path)
    } catch (error) {
      if (codeOf(error) === NODE.ENOENT) throw usageError(`${dir} is incomplete: ${f.name} is missing; ${PICK_ANOTHER}`)
      throw error
    }
    if (actual.bytes !== f.bytes)
      throw usageError(
        `${path} is truncated or altered (${actual.bytes} bytes; the manifest says ${f.bytes}); ${PICK_ANOTHER}`,
      )
    if (actual.sha256 !== f.sha256)
      throw usageError(`${path} is altered (its sha256 differs from the manifest's); ${PICK_ANOTHER}`)
  }
}

/** A stream of a set file's plain bytes: decrypted through `box` for an encrypted set. */
function openSetFile(path: string, box: SecretBox | undefined): Readable {
  const raw = createReadStream(path, fileChunks)
  if (!box) return raw
  const out = new PassThrough()
  pipeline(raw, box.decryptingStream(), out).catch((error: unknown) => out.destroy(error as Error))
  return out
}

async function readWhole(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of stream) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

/**
 * Checks a backup set before anything is changed, each problem exit 2 naming the set: the
 * manifest whole and unchanged, every file there with its size and sha256, the key opening
 * an encrypted set (proven on its small `site_config.json`), the database type `dbType`
 * when given, and, unless `force`, no migration the bench's apps do not have.
 */
export async function verifyBackupSet(
  bench: Bench,
  setDir: string,
  options: { dbType?: DbType; site?: string; force?: boolean } = {},
): Promise<VerifiedSet> {
  if (setDir.trim() === '')
    throw usageError(
      `invalid backup directory ${JSON.stringify(setDir)}: give the path of a set (see "tenancy list-backups")`,
    )
  // As typed at a terminal: relative to the working directory.
  const dir = resolve(setDir)
  const manifest = readManifest(dir)
  if (!(DB_TYPES as readonly string[]).includes(manifest.db_type))
    throw usageError(`${join(dir, MANIFEST)} names an unknown database type "${manifest.db_type}"; ${PICK_ANOTHER}`)
  const driver = await getDriver(manifest.db_type)
  if (options.dbType !== undefined) await assertSetType({ dir, manifest, driver }, options.dbType, options.site)
  await checkFiles(dir, manifest.files)
  const box = manifest.encrypted ? await backupKey(bench) : undefined
  const suffix = manifest.encrypted ? ENCRYPTED_SUFFIX : ''
  const named = (name: string) => {
    const file = manifest.files.find((f) => f.name === `${name}${suffix}`)
    if (!file) throw usageError(`${dir} holds no ${name}${suffix}; it is not a ${driver.label} backup, ${PICK_ANOTHER}`)
    return join(dir, file.name)
  }
  const dumpPath = named(driver.dumpFile)
  let configText: string
  try {
    configText = (await readWhole(openSetFile(named('site_config.json'), box))).toString('utf8')
  } catch (error) {
    if (error instanceof TenancyError && box)
      throw usageError(
        `${dir} was encrypted with another key than this bench's ` +
          `(${bench.config.backups.key_file ? `backups.key_file ${bench.config.backups.key_file}` : 'its secret key'}); ` +
          `set backups.key_file to the key it was made with`,
      )
    throw error
  }
  const parsedConfig = parseJson(configText, join(dir, 'site_config.json'))
  if (typeof parsedConfig !== 'object' || parsedConfig === null || Array.isArray(parsedConfig))
    throw usageError(`${dir}: its site_config.json is not a JSON object; ${PICK_ANOTHER}`)
  // Never how to reach a database: the site gets its own, whatever a set says.
  const siteConfig = Object.fromEntries(Object.entries(parsedConfig).filter(([key]) => !key.startsWith('db_')))
  if (box) {
    // Authenticated whole before anything is loaded: GCM checks its tag only at the end.
    try {
      await pipeline(
        openSetFile(dumpPath, undefined),
        box.decryptingStream(),
        async (chunks: AsyncIterable<Buffer>) => {
          for await (const _ of chunks);
        },
      )
    } catch (error) {
      if (!(error instanceof TenancyError)) throw error
      throw usageError(
        `${dumpPath} does not open with the key its set's config opens with (altered, or encrypted with another key); ` +
          PICK_ANOTHER,
      )
    }
  }
  if (!options.force) assertKnownMigrations(bench, dir, manifest)
  return { dir, manifest, driver, siteConfig, openDump: () => openSetFile(dumpPath, box) }
}

/** Refuses (exit 2) a set of another database type than the site's `dbType`. */
export async function assertSetType(
  set: Pick<VerifiedSet, 'dir' | 'manifest' | 'driver'>,
  dbType: DbType,
  site?: string,
): Promise<void> {
  if (dbType === set.manifest.db_type) return
  const label = set.driver.label
  const wanted = await getDriver(dbType)
  throw usageError(
    `${set.dir} is a ${label} backup, but ${site ? `site "${site}"` : 'the site'} is on ${wanted.label}; ` +
      `restore it into a ${label} site ("tenancy new-site NEW --from-backup ${set.dir}" makes one)`,
  )
}

/** Refuses a set holding apps or migrations this bench does not have: migrate could not bring it forward. */
function assertKnownMigrations(bench: Bench, dir: string, manifest: BackupManifest): void {
  const known = new Map(listBenchApps(bench).map((a) => [a.name, new Set(a.migrations.map((m) => m.name))]))
  // The core schema is tenancy's own: this version knows its migrations.
  known.set(CORE_APP, new Set(CORE_MIGRATIONS.map((m) => m.name)))
  for (const app of manifest.apps) {
    const migrations = known.get(app.name)
    if (!migrations)
      throw usageError(
        `${dir} has the app "${app.name}", which this bench does not have; ` +
          `add it to apps/, or use --force to restore without it`,
      )
    const unknown = app.migrations.find((m) => !migrations.has(m))
    if (unknown)
      throw usageError(
        `${dir} holds the migration ${app.name}/${unknown}, which this bench's apps do not have ` +
          `(the backup is newer than the code); update the apps, or use --force`,
      )
  }
}
