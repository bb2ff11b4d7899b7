import { existsSync } from 'node:fs'
import { join } from 'node:path'
import type { Kysely } from 'kysely'
import type { Bench } from '../bench.js'
import { resolveInstallOrder, type AppManifest } from '../apps/manifest.js'
import { installedWithHook, runInstalledAppsHook, runModuleHooksIn } from '../apps/hooks.js'
import { siteBackupsPath, moveSiteBackups } from '../backups/rename-backups.js'
import { InterruptedError, TenancyError, messageOf, usageError } from '../errors.js'
import { assertSiteName } from '../names.js'
import { usingTenantLease } from '../registry/leases.js'
import { isUniqueViolation, now, type SiteRecord } from '../registry/registry.js'
import type { RegistrySchema } from '../registry/schema.js'
import type { TenantRow } from '../registry/tenants.js'
import { moveApiUser, type ApiCredentials } from '../sites/api-keys.js'
import { followDefaultSite } from '../sites/current-site.js'
import { assertHomedHere, assertRealSiteDirectory } from '../sites/site-home.js'
import { RESTORE_INTENT, requireSite, usingSiteDatabase, type OpenSite } from '../sites/site.js'
import { faultPoint } from '../util/fault.js'
import { moveDirectoryOnce } from '../util/move-directory.js'
import { PROCESS_OWNER, ownerAlive } from '../util/process-owner.js'
import { apiUserFor } from './steps.js'
import { requireTenant } from './tenant-record.js'

/** One rename of a site whose registry row carries the new name already (`rename_from` the old). */
export interface SiteRename {
  /** The site's name now (its row's). */
  site: string
  /** The name it had. */
  previousSite: string
  /** The tenant owning the site, whose stored API key and secret follow the API user's new keys. */
  tenant?: Pick<TenantRow, 'id' | 'name'>
  /**
   * The site's API user, when its email changes with the name (`provision.api_user` holds
   * `{site}`, or a pull gives the tenant its own name): moved to `to` and given new keys.
   * `required`: a missing user is an error (a pool site always has one).
   */
  apiUser?: { from: string; to: string; required?: boolean; onlyIfThere?: boolean }
  /** Move the site's directory, backups and default (default true); a restore's data rename has none to move. */
  moveFiles?: boolean
  /**
   * The site's apps (from its registry row), requirements first: the site's database is opened
   * only when one of them has an `after_rename` hook (or the API user moves). The hooks run for
   * the apps the site's own `installed_apps` lists, in install order (`runInstalledAppsHook`).
   */
  apps: AppManifest[]
  signal?: AbortSignal
}

/**
 * What a caller doing more than a rename (a pool pull) adds to it, inside the one rename path:
 * work on the open site before the API user moves and the hooks run (the pull migrates the
 * site), and writes in the transaction that ends the rename (the pull's tenant row and events).
 */
export interface RenameSteps {
  /** Told once the site's database has changed: from then on the rename can only go forward. */
  onDataChanged?: () => void
  /**
   * Before the API user moves and the hooks run, so that they find the site's schema up to date.
   * It may return the names of the site's installed apps in install order, read on the way, which
   * the rename then need not read again to find whose hooks to run.
   */
  beforeData?: (site: OpenSite) => Promise<string[] | undefined>
  /** In the transaction that ends the rename; without it, a tenant's new keys are stored there. */
  finish?: (trx: Kysely<RegistrySchema>, keys: ApiCredentials | undefined) => Promise<void>
}

/** How a rename ended. */
export interface FinishedRename {
  /** The API user's new keys, when it moved. */
  keys?: ApiCredentials
  /** The apps whose `after_rename` hook ran. */
  hooks: string[]
  /**
   * The hook that failed, if one did: the site is renamed and ready, but keeps `rename_from` so
   * the hooks can be run again (`rename-site OLD NEW` once more, or `doctor --fix`).
   */
  hookError?: TenancyError
}

/** `tenancy rename-site --json`. */
export interface RenameSiteResult {
  site: string
  previous_site: string
  tenant: string | null
  /** The API user's email after the rename, when it followed the name (with new keys). */
  api_user: string | null
  /** Its new api_key (the secret is stored, encrypted, on the tenant: `tenant show --show-secrets`). */
  api_key: string | null
  /** The apps whose `after_rename` hook ran. */
  hooks: string[]
  /** Set when the command finished a rename an earlier one left unfinished. */
  resumed?: boolean
  duration_ms: number
}

/**
 * Everything outside the site's database that bears its name, moved from `from` to `to`: its
 * directory, its backups folder (and the sets' manifests), the bench's default site. Each move
 * is made only if still to do, so it is safe to run again, and in reverse (a pull put back).
 */
export function moveSiteFiles(bench: Bench, from: string, to: string): void {
  moveDirectoryOnce(bench.sitePath(from), bench.sitePath(to))
  moveSiteBackups(bench, from, to)
  followDefaultSite(bench, from, to)
}

/**
 * Finishes a rename whose registry part is committed: moves the site's files (`moveSiteFiles`),
 * then, in the site's database, its API user with new keys and each app's `after_rename` hook
 * (module hooks in that one transaction, each under a savepoint; command hooks after it), then
 * ends the rename in one registry transaction (the row `ready`, `rename_from` cleared, the
 * tenant's new keys stored). Every step checks before it acts, so running it again
 * after a crash at any point finishes the same rename. A hook that fails does not undo the
 * rename: it is returned (and logged), and the row keeps `rename_from` until the hooks succeed.
 */
export async function finishRename(bench: Bench, rename: SiteRename, steps: RenameSteps = {}): Promise<FinishedRename> {
  const { site, previousSite } = rename
  const registry = await bench.registry()
  // The secret is stored with the key at the end: a wrong key fails before anything moves.
  const box = rename.apiUser && rename.tenant && !steps.finish ? await bench.secretBox() : undefined
  if (rename.moveFiles !== false) moveSiteFiles(bench, previousSite, site)
  faultPoint('rename-after-files')
  const hooked = site !== previousSite && rename.apps.some((app) => app.hooks.after_rename)
  let keys: ApiCredentials | undefined
  let hooks: string[] = []
  let hookError: TenancyError | undefined
  // Nothing in the site's database bears its name but what the API user and the apps keep.
  if (rename.apiUser || steps.beforeData || hooked) {
    await usingSiteDatabase(bench, site, async (open) => {
      const { apiUser } = rename
      const installed = await steps.beforeData?.(open)
      const renamed = { name: site, previousName: previousSite, path: open.path, dbType: open.conn.driver.type }
      const apps = hooked ? await installedWithHook(bench, 'after_rename', open.conn.db, installed) : []
      // Module hooks run in the API user's transaction, each under a savepoint (one commit, not
      // one per hook); a command hook is a child process that must not wait on that transaction's
      // lock, so with one of those the hooks run after it commits, each as runAppHook does.
      const inline = apps.every((app) => app.hooks.after_rename?.kind === 'module')
      const keep = (error: unknown) => {
        // Ctrl-C leaves the rename to the next command, which runs the hooks again.
        if (!(error instanceof TenancyError) || error instanceof InterruptedError) throw error
        hookError = error
      }
      if (apiUser || (inline && apps.length > 0))
        hooks = await open.conn.transaction(async ({ trx }) => {
          if (apiUser) keys = await moveApiUser(trx, { ...apiUser, site })
          faultPoint('rename-after-api-user')
          if (!inline) return []
          const ran = await runModuleHooksIn(bench, apps, 'after_rename', renamed, trx, rename.signal)
          // A failed hook is rolled back to its savepoint: the API user's move and the hooks
          // before it commit, as they did in transactions of their own.
          if (ran.failed !== undefined) keep(ran.failed)
          return ran.outputs.map((r) => r.app)
        })
      else faultPoint('rename-after-api-user')
      steps.onDataChanged?.()
      if (inline || apps.length === 0) return
      try {
        const ran = await runInstalledAppsHook(bench, 'after_rename', renamed, open.conn, rename.signal)
        hooks = ran.map((r) => r.app)
      } catch (error) {
        keep(error)
      }
    })
  }
  faultPoint('rename-before-end')
  await registry.writeTransaction(async (trx) => {
    await trx
      .updateTable('sites')
      .set({ state: 'ready', rename_from: hookError ? previousSite : null, updated_at: now() })
      .where('name', '=', site)
      .where('rename_from', '=', previousSite)
      .execute()
    if (steps.finish) await steps.finish(trx, keys)
    else if (keys && box && rename.tenant)
      await trx
        .updateTable('tenants')
        .set({ api_key: keys.api_key, api_secret_enc: box.encrypt(keys.api_secret), updated_at: now() })
        .where('id', '=', rename.tenant.id)
        .execute()
  })
  if (hookError)
    await registry.logError({
      tenant: rename.tenant?.name,
      site,
      step: 'after_rename',
      message: `${messageOf(hookError)} (site renamed from "${previousSite}")`,
    })
  return { keys, hooks, hookError }
}

/** The API user's move for a tenant's site renamed from `from` to `to`; none when its email does not change. */
function apiUserMove(bench: Bench, tenant: string, from: string, to: string): SiteRename['apiUser'] {
  const before = apiUserFor(bench.config, { name: tenant, site: from })
  const after = apiUserFor(bench.config, { name: tenant, site: to })
  return before === after ? undefined : { from: before, to: after }
}

/** The API user's move as a ready row does it: only if still under the old email. */
function readyMove(move: SiteRename['apiUser'], state: string): SiteRename['apiUser'] {
  return move && state !== 'renaming' ? { ...move, onlyIfThere: true } : move
}

/**
 * Refuses (exit 2) a new name that something already has: a registered site or one being
 * renamed away from it (`row`, read by the caller), a tenant's recorded site, a directory in
 * `sites_path`, a backups folder.
 */
async function assertNameFree(
  bench: Bench,
  site: string,
  row: { name: string; rename_from: string | null } | undefined,
): Promise<void> {
  const db = (await bench.registry()).db
  if (row?.name === site) throw usageError(`site "${site}" exists already; pick another name`)
  if (row)
    throw usageError(`site "${row.name}" is being renamed from "${site}"; pick another name, or wait for it to finish`)
  const tenant = await db
    .selectFrom('tenants')
    .select('name')
    .where((eb) => eb.or([eb('site', '=', site), eb('pull_from', '=', site)]))
    .executeTakeFirst()
  if (tenant) throw usageError(`site "${site}" is the site of tenant "${tenant.name}"; pick another name`)
  for (const [dir, what] of [
    [bench.sitePath(site), 'a directory'],
    [siteBackupsPath(bench, site), 'a backups folder'],
  ] as const) {
    if (existsSync(dir))
      throw usageError(
        `${dir} exists (${what} with no site registered under that name); move it away or pick another name`,
      )
  }
}

/**
 * Holds the tenant's lease (when the site has a tenant) while `fn` runs, so provisioning, a pull,
 * a migrate or backup of a pending site, a restore or a delete cannot act on the site meanwhile.
 */
async function holdingTenant<T>(bench: Bench, site: string, tenantId: number | null, fn: () => Promise<T>) {
  if (tenantId === null) return fn()
  const outcome = await usingTenantLease(bench, tenantId, { site }, fn)
  if (!outcome.taken)
    throw usageError(`site "${site}" is being worked on by ${outcome.heldBy}; wait for it to finish, then rename it`)
  return outcome.value
}

/** A finished rename as `rename-site` reports it; a failed hook is the command's failure (exit 1). */
function reported(rename: SiteRename, finished: FinishedRename, started: number, resumed: boolean): RenameSiteResult {
  if (finished.hookError)
    throw new TenancyError(
      `site "${rename.previousSite}" is now "${rename.site}", but ${messageOf(finished.hookError)}; ` +
        `its data may still name "${rename.previousSite}": fix the app, then run ` +
        `"tenancy rename-site ${rename.previousSite} ${rename.site}" again to run the after_rename hooks again`,
      { cause: finished.hookError },
    )
  return {
    site: rename.site,
    previous_site: rename.previousSite,
    tenant: rename.tenant?.name ?? null,
    api_user: finished.keys ? (rename.apiUser?.to ?? null) : null,
    api_key: finished.keys?.api_key ?? null,
    hooks: finished.hooks,
    duration_ms: Math.round(performance.now() - started),
    ...(resumed && { resumed: true }),
  }
}

/** The tenant owning a site row, if any. */
async function ownerOf(bench: Bench, site: SiteRecord): Promise<TenantRow | undefined> {
  if (site.tenant_id === null) return undefined
  return (await bench.registry()).db
    .selectFrom('tenants')
    .selectAll()
    .where('id', '=', site.tenant_id)
    .executeTakeFirst()
}

/**
 * Finishes a rename that was left unfinished (`row.rename_from` set): one whose process died
 * (state `renaming`), taken over from it first, or one whose apps' hooks failed (state `ready`),
 * whose hooks alone run again. Refused (exit 2) while the process doing it is alive.
 */
export async function resumeRename(
  bench: Bench,
  row: SiteRecord,
  options: { signal?: AbortSignal } = {},
): Promise<FinishedRename & { rename: SiteRename }> {
  const previousSite = row.rename_from
  if (!previousSite) throw new TenancyError(`site "${row.name}" has no rename to finish`)
  const registry = await bench.registry()
  const tenant = await ownerOf(bench, row)
  if (tenant?.pull_from)
    throw usageError(`site "${row.name}" is being pulled from the pool; "tenancy doctor --fix" finishes the pull`)
  if (row.state === 'renaming') {
    if (row.owner !== null && row.owner !== PROCESS_OWNER && ownerAlive(row.owner) !== false)
      throw usageError(`site "${row.name}" is being renamed by process ${row.owner}; wait for it to finish`)
    // Taken over from exactly the process that died, so two commands never finish it both.
    const taken = await registry.db
      .updateTable('sites')
      .set({ owner: PROCESS_OWNER })
      .where('name', '=', row.name)
      .where('state', '=', 'renaming')
      .where((eb) => (row.owner === null ? eb('owner', 'is', null) : eb('owner', '=', row.owner)))
      .executeTakeFirst()
    if (Number(taken.numUpdatedRows) !== 1)
      throw usageError(`site "${row.name}" is being renamed by another process; wait for it to finish`)
  }
  const rename: SiteRename = {
    site: row.name,
    previousSite,
    tenant,
    // A ready row did its files when it became ready: its API user moves only if still under the
    // old name (data a restore brought back), and its hooks run again.
    apiUser: tenant ? readyMove(apiUserMove(bench, tenant.name, previousSite, row.name), row.state) : undefined,
    moveFiles: row.state === 'renaming',
    apps: resolveInstallOrder(
      bench,
      row.apps.map((a) => a.name),
    ),
    signal: options.signal,
  }
  const finished = await holdingTenant(bench, row.name, row.tenant_id, () => finishRename(bench, rename))
  if (!finished.hookError) resumedHere.set(resumeKey(bench, row.name), { ...finished, rename })
  return { ...finished, rename }
}

/**
 * The renames this process finished for a rename left unfinished, by bench and new name: the
 * next command finishes one when it opens the registry, so `rename-site OLD NEW` run again
 * after a kill finds it done before it looks, and reports it (instead of "OLD does not exist").
 */
const resumedHere = new Map<string, FinishedRename & { rename: SiteRename }>()
const resumeKey = (bench: Bench, site: string) => `${bench.root}\0${site}`

/**
 * `tenancy rename-site <old> <new>` (SPEC §9): checks everything first (exit 2: a bad or taken
 * new name, a missing old site, one being restored, a pending pool site, an app of the site
 * missing from the bench), then, holding its tenant's lease, records the rename in one registry
 * transaction (the row takes the new name, state `renaming`, `rename_from` the old; the tenant's
 * site follows) and finishes it (`finishRename`). A kill at any instant after that transaction
 * is finished by the next command that opens the bench, or `doctor --fix`. Server databases and
 * their users keep their generated names: nothing on the server bears the site's name.
 * Running it again for a rename that was left unfinished finishes it.
 *
 * @example
 * await renameSite(bench, 'acme.localhost', 'acme.example.com')
 */
export async function renameSite(
  bench: Bench,
  oldName: string,
  newName: string,
  options: { signal?: AbortSignal } = {},
): Promise<RenameSiteResult> {
  const started = performance.now()
  const from = assertSiteName(oldName)
  const to = assertSiteName(newName)
  if (from === to) throw usageError(`site "${from}" already has that name; give the new name`)
  const registry = await bench.registry()
  const done = resumedHere.get(resumeKey(bench, to))
  if (done?.rename.previousSite === from) {
    resumedHere.delete(resumeKey(bench, to))
    return reported(done.rename, done, started, true)
  }
  const taken = await registry.db
    .selectFrom('sites')
    .select(['name', 'rename_from'])
    .where((eb) => eb.or([eb('name', '=', to), eb('rename_from', '=', to)]))
    .executeTakeFirst()
  if (taken?.name === to && taken.rename_from === from) {
    const { rename, ...finished } = await resumeRename(bench, (await registry.getSite(to))!, options)
    return reported(rename, finished, started, true)
  }
  const record = await requireSite(bench, from)
  if (record.rename_from)
    throw usageError(
      `the rename of site "${from}" from "${record.rename_from}" is not finished (an after_rename hook failed); ` +
        `finish it first with "tenancy rename-site ${record.rename_from} ${from}"`,
    )
  assertHomedHere(bench, registry.kind, record, `rename-site ${from} ${to}`)
  assertRealSiteDirectory(bench, bench.sitePath(from))
  if (existsSync(join(bench.sitePath(from), RESTORE_INTENT)))
    throw usageError(
      `site "${from}" is being restored (or its restore was stopped: run "tenancy doctor --fix"); rename it after`,
    )
  await assertNameFree(bench, to, taken)
  const tenant = await ownerOf(bench, record)
  if (tenant?.pending_since != null)
    throw usageError(
      `site "${from}" belongs to the pending tenant "${tenant.name}"; a pool site gets its name when a sign-up ` +
        `pulls it ("tenancy tenant create NAME")`,
    )
  const rename: SiteRename = {
    site: to,
    previousSite: from,
    tenant,
    apiUser: tenant ? apiUserMove(bench, tenant.name, from, to) : undefined,
    apps: resolveInstallOrder(
      bench,
      record.apps.map((a) => a.name),
    ),
    signal: options.signal,
  }
  // The new secret is stored encrypted: a wrong key is refused before anything changes.
  if (rename.apiUser) await bench.secretBox()
  const finished = await holdingTenant(bench, from, record.tenant_id, async () => {
    await recordRename(bench, rename, record)
    faultPoint('rename-after-intent')
    return finishRename(bench, rename)
  })
  return reported(rename, finished, started, false)
}

/** The rename's intent, in one transaction: the row under its new name, `renaming`, and the tenant's site. */
async function recordRename(bench: Bench, rename: SiteRename, record: SiteRecord): Promise<void> {
  const { site: to, previousSite: from } = rename
  const registry = await bench.registry()
  try {
    await registry.writeTransaction(async (trx) => {
      const at = now()
      const moved = await trx
        .updateTable('sites')
        .set({ name: to, state: 'renaming', rename_from: from, owner: PROCESS_OWNER, updated_at: at })
        .where('name', '=', from)
        .where('state', '=', 'ready')
        .where('rename_from', 'is', null)
        .where((eb) =>
          record.tenant_id === null ? eb('tenant_id', 'is', null) : eb('tenant_id', '=', record.tenant_id),
        )
        .executeTakeFirst()
      if (Number(moved.numUpdatedRows) !== 1)
        throw usageError(`site "${from}" was changed by another process just now; run the command again`)
      if (rename.tenant)
        await trx
          .updateTable('tenants')
          .set({ site: to, updated_at: at })
          .where('id', '=', rename.tenant.id)
          .where('site', '=', from)
          .execute()
    })
  } catch (error) {
    if (isUniqueViolation(error))
      throw usageError(`site "${to}" was taken by another process just now; pick another name`)
    throw error
  }
}

/**
 * `tenancy tenant rename <name> --site NEW`: renames the tenant's site (`renameSite`); the
 * tenant keeps its name.
 */
export async function renameTenantSite(
  bench: Bench,
  name: string,
  site: string,
  options: { signal?: AbortSignal } = {},
): Promise<RenameSiteResult> {
  const tenant = await requireTenant(bench, name)
  if (!tenant.site)
    throw usageError(`tenant "${name}" has no site yet; run "tenancy provision ${name}" first, then rename it`)
  if (tenant.site === site) {
    // The tenant's site takes the new name first: the same command again finishes that rename.
    const row = await (await bench.registry()).getSite(site)
    const from = row?.rename_from ?? resumedHere.get(resumeKey(bench, site))?.rename.previousSite
    if (from) return renameSite(bench, from, site, options)
    throw usageError(`tenant "${name}"'s site is "${site}" already`)
  }
  return renameSite(bench, tenant.site, site, options)
}

/**
 * Finishes the rename a restore recorded on a site's row (`RestoreResult.rename_from`: data taken
 * under another name): the site's API user moves to its name with new keys (stored on the
 * tenant) and each app's `after_rename` hook runs, as after `rename-site`. Undefined when the
 * row has no rename to finish. A failed hook is exit 1 naming how to run it again.
 */
export async function finishRestoredRename(
  bench: Bench,
  site: string,
  options: { signal?: AbortSignal } = {},
): Promise<RenameSiteResult | undefined> {
  const started = performance.now()
  const row = await (await bench.registry()).getSite(site)
  if (!row?.rename_from || row.state !== 'ready') return undefined
  const finished = await resumeRename(bench, row, options)
  resumedHere.delete(resumeKey(bench, site))
  return reported(finished.rename, finished, started, true)
}
