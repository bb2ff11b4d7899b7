import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import type { Bench } from '../bench.js'
import type { SiteDbSettings } from '../databases/driver.js'
import { NODE, codeOf } from '../error-codes.js'
import {
  EXIT_FAILED,
  EXIT_USAGE,
  InterruptedError,
  TenancyError,
  isUsageError,
  messageOf,
  usageError,
} from '../errors.js'
import { assertSiteName, generateDbName } from '../names.js'
import { liveWorkerHosts } from '../registry/hosts.js'
import type { SiteRecord } from '../registry/registry.js'
import { resolveServerAdmin } from '../sites/server-admin.js'
import { RESTORE_INTENT, requireSite, writeSiteConfig, type SiteConfig } from '../sites/site.js'
import { isHomedHere } from '../sites/site-home.js'
import { faultPoint } from '../util/fault.js'
import { createFileOnce, fsyncDirectory } from '../util/json-file.js'
import { PROCESS_OWNER, ownerAlive } from '../util/process-owner.js'
import {
  checkSetFor,
  finishInterruptedRestore,
  reapplyCredentials,
  loadBackup,
  leasedRestore,
  readRestoreIntent,
  removeRestoreIntent,
  type RestoreIntent,
  type RestoreOptions,
  type RestoreResult,
} from './restore.js'

/** `tenancy restore --rehome --json`: a restore's result, and the machine the site came from. */
export interface RehomeResult extends RestoreResult {
  /** The machine the site lived on; its database there (`previous_db_name`) was left as it was. */
  rehomed_from: string
  /** This machine, the site's home now. */
  host: string
}

/** Where a rehome builds the site's directory before it takes the site's name (see `placeSiteDirectory`). */
const BUILD_PREFIX = '.rehome-'

/**
 * `tenancy restore <site> <set> --rehome` (SPEC §10): moves a site whose machine is gone for good
 * to this one, from a backup set. Refused (exit 2) unless the site lives on another machine with
 * no live worker. Checks the set whole, makes the site's directory and a fresh database here (this
 * bench's database server), loads the set, writes the site's config, then switches the registry
 * row's database and home in one statement: the commit point. Then migrates the site.
 *
 * Recorded first in the new directory's `.restore.json` (with `rehome_from`): a failure or kill
 * before the switch leaves the site where it was, and the next `restore --rehome` of it drops
 * the fresh database and the directory; one after the switch is finished by `doctor --fix` or the
 * next restore. The old database, on the machine the site left, is never touched from here.
 */
export async function rehomeSite(
  bench: Bench,
  name: string,
  setDir: string,
  options: Pick<RestoreOptions, 'force' | 'verified' | 'signal' | 'onPhase'> = {},
): Promise<RehomeResult> {
  const started = performance.now()
  const site = assertSiteName(name)
  const registry = await bench.registry()
  const { record, from } = await assertRehomable(bench, site, setDir)
  options.onPhase?.('verify')
  const { set, renameFrom } = await checkSetFor(bench, site, record.db_type, setDir, options)
  const driver = set.driver
  // This machine's server (the bench's db.* settings), as a new site's.
  const admin = await resolveServerAdmin(bench, driver, {})
  const sitePath = bench.sitePath(site)

  const work = async (): Promise<Omit<RestoreResult, 'migrate' | 'duration_ms'>> => {
    await clearEarlierAttempt(bench, site)
    options.onPhase?.('load')
    const old = settingsOf(record)
    const fresh = driver.plan(generateDbName(randomBytes(8).toString('hex')), admin)
    const intent: RestoreIntent = {
      owner: PROCESS_OWNER,
      from: set.dir,
      started_at: new Date().toISOString(),
      old,
      new: fresh,
      rehome_from: from,
    }
    placeSiteDirectory(bench, site, intent)
    let apps
    try {
      await driver.create(fresh, sitePath, admin)
      faultPoint('rehome-after-create')
      apps = await loadBackup(bench, set, driver, fresh, sitePath, { signal: options.signal, force: options.force })
      // Written before the switch: from the switch on, the directory is whole.
      writeSiteConfig(sitePath, { ...set.siteConfig, ...fresh } as SiteConfig)
      faultPoint('rehome-before-switch')
      options.onPhase?.('switch')
      const home = { from, to: bench.host }
      if (!(await registry.switchSiteDatabase(site, old.db_name, fresh, renameFrom ?? undefined, home)))
        throw new TenancyError(`site "${site}" was changed or moved by another process while it was being restored`)
    } catch (error) {
      // Not switched: the site still lives on its old machine; what was made here goes.
      await finishInterruptedRestore(bench, site, intent, admin).catch(() => {})
      if (options.signal?.aborted || error instanceof InterruptedError)
        throw new InterruptedError(`restore of site "${site}" here`, `it still lives on ${from}`)
      throw new TenancyError(
        `restoring site "${site}" from ${set.dir} on this machine failed (it still lives on ${from}): ${messageOf(error)}`,
        { cause: error, exitCode: isUsageError(error) ? EXIT_USAGE : EXIT_FAILED },
      )
    }
    faultPoint('rehome-after-switch')
    await reapplyCredentials(bench, site)
    removeRestoreIntent(sitePath)
    await registry.setSiteApps(site, apps)
    return {
      site,
      from: set.dir,
      db_name: fresh.db_name,
      previous_db_name: old.db_name,
      backup: null,
      rename_from: renameFrom,
    }
  }

  const result = await leasedRestore(bench, record, started, options, work)
  return { ...result, rehomed_from: from, host: bench.host }
}

/**
 * The refusals of `restore --rehome` that need no backup set (exit 2): an SQLite registry, a site
 * that does not exist, is not ready, lives here already, has no home recorded, or whose machine
 * has a live worker. Returns the site's row and its machine.
 */
export async function assertRehomable(
  bench: Bench,
  name: string,
  setDir: string,
): Promise<{ record: SiteRecord; from: string }> {
  const site = assertSiteName(name)
  const registry = await bench.registry()
  if (registry.kind === 'sqlite')
    throw usageError(
      `--rehome moves a site between machines that share a PostgreSQL registry; with this SQLite registry ` +
        `every site lives on this machine: run "tenancy restore ${site} ${setDir}"`,
    )
  const record = await requireSite(bench, site)
  if (isHomedHere(bench, registry.kind, record))
    throw usageError(
      `site "${site}" lives on this machine (${bench.host}) already; restore it without --rehome: ` +
        `"tenancy restore ${site} ${setDir}"`,
    )
  const from = record.host
  if (from === null)
    throw usageError(
      `site "${site}" has no home recorded (a row from before homes were kept); ` +
        `restore it on the machine that holds its directory`,
    )
  if ((await liveWorkerHosts(registry.db, from)).has(from))
    throw usageError(
      `machine "${from}" is live (its worker is running): restore site "${site}" there ` +
        `("tenancy restore ${site} SET" on ${from}); --rehome is for a machine that is gone for good`,
    )
  return { record, from }
}

/** The `db_*` settings the registry row records (the old database's, for the intent; never used to reach it). */
function settingsOf(record: SiteRecord): SiteDbSettings {
  return {
    db_type: record.db_type,
    db_name: record.db_name,
    ...(record.db_host !== null && { db_host: record.db_host }),
    ...(record.db_port !== null && { db_port: record.db_port }),
    ...(record.db_user !== null && { db_user: record.db_user }),
  }
}

/**
 * Before a rehome makes the site's directory here: an earlier rehome of the site that died
 * (its directory, holding its intent) is undone; a live one is waited for; anything else in the
 * way is refused. Build directories of earlier attempts that died before taking the name go too.
 */
async function clearEarlierAttempt(bench: Bench, site: string): Promise<void> {
  const sitePath = bench.sitePath(site)
  if (existsSync(bench.sitesPath))
    for (const entry of readdirSync(bench.sitesPath)) {
      if (!entry.startsWith(`${BUILD_PREFIX}${site}-`)) continue
      const dir = join(bench.sitesPath, entry)
      const intent = readRestoreIntent(dir)
      if (!intent || ownerAlive(intent.owner) === false) rmSync(dir, { recursive: true, force: true })
    }
  if (!existsSync(sitePath)) return
  const earlier = readRestoreIntent(sitePath)
  if (earlier?.rehome_from === undefined)
    throw usageError(
      `directory ${sitePath} exists, but site "${site}" lives on another machine; ` +
        `move that directory away, then run the restore again`,
    )
  if (ownerAlive(earlier.owner) !== false)
    throw usageError(`site "${site}" is being restored here by process ${earlier.owner}; wait for it to finish`)
  await finishInterruptedRestore(bench, site, earlier)
}

/**
 * Makes the site's directory holding only its intent: built under a dot name (which doctor and
 * listings skip) and renamed into place, so the site's name is never an empty or intent-less
 * directory, and a second rehome here finds the first one's intent, or fails the rename.
 */
function placeSiteDirectory(bench: Bench, site: string, intent: RestoreIntent): void {
  mkdirSync(bench.sitesPath, { recursive: true })
  const build = mkdtempSync(join(bench.sitesPath, `${BUILD_PREFIX}${site}-`))
  try {
    createFileOnce(join(build, RESTORE_INTENT), `${JSON.stringify(intent, null, 2)}\n`, 0o600)
    renameSync(build, bench.sitePath(site))
  } catch (error) {
    rmSync(build, { recursive: true, force: true })
    if (codeOf(error) === NODE.ENOTEMPTY || codeOf(error) === NODE.EEXIST)
      throw usageError(`site "${site}" is being restored here by another process; wait for it to finish`)
    throw error
  }
  fsyncDirectory(bench.sitesPath)
}
