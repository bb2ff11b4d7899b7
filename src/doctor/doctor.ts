import { existsSync, lstatSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import type { Bench } from '../bench.js'
import { installedApps } from '../apps/install.js'
import { getDriver } from '../databases/index.js'
import type { SiteConnection } from '../databases/driver.js'
import { messageOf } from '../errors.js'
import { assertSiteName } from '../names.js'
import { now, type InstalledAppSummary, type SiteRecord } from '../registry/registry.js'
import { ownerAlive } from '../util/process-owner.js'
import { archiveDirectory, dropSite } from '../sites/drop-site.js'
import { readSiteConfig, type SiteConfig } from '../sites/site.js'
import { homeName, isHomedHere } from '../sites/site-home.js'
import { looksLikeSite } from '../util/site-directories.js'
import { provisionTenant } from '../provisioning/runner.js'
import { enqueueJob } from '../registry/jobs.js'
import { ensureWorker, workerAlive } from '../provisioning/worker.js'
import { deliverEvents, undeliveredEvents } from '../events/outbox.js'

/** One thing doctor found, and what `--fix` did about it. */
export interface Finding {
  kind:
    | 'stray_directory'
    | 'unregistered_site'
    | 'unreadable_site'
    | 'missing_site'
    | 'damaged_site'
    | 'unfinished_site'
    | 'stuck_tenant'
    | 'failed_tenant'
    | 'tenant_without_site'
    | 'stuck_pull'
    | 'lost_job'
    | 'orphan_job'
    | 'no_worker'
    | 'queued_without_job'
    | 'undelivered_event'
  subject: string
  problem: string
  fix: string
  fixed?: boolean
  fix_error?: string
}

export interface DoctorResult {
  findings: Finding[]
  fixed: number
  remaining: number
  /** Sites that live on other machines (a shared registry): listed, never judged or touched here. */
  elsewhere: { site: string; host: string }[]
  /** Directories left alone this time because they are too young to judge (a site may be on its way in). */
  too_young: { directory: string; age_s: number }[]
}

export interface DoctorOptions {
  /** Repair or remove what is found. */
  fix?: boolean
  /** Register every intact site directory that has no row (also when the registry is missing or empty). */
  adopt?: boolean
  onFinding?: (f: Finding) => void
}

/** A directory with no config and no database is judged a stray only when older than this: a new site may be on its way in. */
const STRAY_MIN_AGE_MS = 60_000

/**
 * Why a registered site that cannot be opened may still hold data, so doctor must leave it
 * alone; undefined when nothing of its database is left to lose. A server database outlives
 * a lost directory, config or password, so only an SQLite site whose file is gone qualifies.
 */
function mayStillHoldData(bench: Bench, site: SiteRecord): string | undefined {
  const path = bench.sitePath(site.name)
  if (site.db_type !== 'sqlite') {
    return `its ${site.db_type} database "${site.db_name}" lives on the server and may still hold data (its directory, site_config.json or credentials are what is missing or wrong)`
  }
  if (!existsSync(path)) return undefined
  const files = readdirSync(path).filter((f) => /\.(sqlite|db)$/.test(f))
  if (!existsSync(join(path, 'site_config.json'))) {
    return files.length > 0
      ? `${join(path, 'site_config.json')} is missing but ${join(path, files[0]!)} is there`
      : undefined
  }
  try {
    readSiteConfig(path)
  } catch (error) {
    return `its site_config.json cannot be read (${messageOf(error)})`
  }
  return files.length > 0 ? `its database file ${join(path, files[0]!)} is there but cannot be opened` : undefined
}

/** Whether a site's directory and database are both there. */
async function siteComplete(bench: Bench, site: SiteRecord): Promise<boolean> {
  const path = bench.sitePath(site.name)
  if (!existsSync(join(path, 'site_config.json'))) return false
  try {
    const config = readSiteConfig(path)
    return await (await getDriver(config.db_type)).exists(config, path)
  } catch {
    return false
  }
}

/**
 * What it takes to register an unregistered site directory: its config readable and its
 * database reachable with the site's own credentials, whose core tables say which apps
 * are installed. Otherwise the reason it cannot be adopted (and so must not be moved either).
 */
async function inspectSite(
  name: string,
  path: string,
): Promise<{ config: SiteConfig; apps: InstalledAppSummary[] } | { reason: string }> {
  if (lstatSync(path).isSymbolicLink()) return { reason: 'it is a symbolic link, not a site directory' }
  try {
    assertSiteName(name)
  } catch {
    return { reason: `"${name}" is not a valid site name` }
  }
  let config: SiteConfig
  try {
    config = readSiteConfig(path)
  } catch (error) {
    return { reason: messageOf(error) }
  }
  let conn: SiteConnection | undefined
  try {
    const driver = await getDriver(config.db_type)
    if (!(await driver.exists(config, path)))
      return {
        reason: `its ${config.db_type} database "${config.db_name}" is missing or cannot be reached with the site's credentials`,
      }
    conn = await driver.connect(config, path)
    return { config, apps: await installedApps(conn.db) }
  } catch (error) {
    return { reason: `its database cannot be read: ${messageOf(error)}` }
  } finally {
    await conn?.close().catch(() => {})
  }
}

/** A half-made row is abandoned when its writer is gone (this host) or it is older than a minute. */
function abandoned(site: SiteRecord): boolean {
  if (site.owner && ownerAlive(site.owner) === true) return false
  return site.owner ? ownerAlive(site.owner) === false || Date.parse(site.updated_at) < Date.now() - 60_000 : true
}

/**
 * `tenancy doctor`: compares the registry with what is on disk and in the queue: site
 * directories without rows, rows without directories or databases, half-made sites whose
 * creator died, tenants stuck in provisioning, jobs that will never run. With `fix`, each
 * is repaired (resumed) or removed. A site directory without a row is adopted (with `fix`
 * or `adopt`), never moved; only a directory that is no site at all is moved to
 * `archived/sites/`, never deleted. Sites homed on another machine are left alone.
 */
export async function doctor(bench: Bench, options: DoctorOptions = {}): Promise<DoctorResult> {
  const registry = await bench.registry({ adopt: options.adopt })
  // Repairs resume provisioning, which writes secrets: a wrong key is exit 2 before any.
  if (options.fix) await bench.secretBox()
  const findings: Finding[] = []
  const tooYoung: DoctorResult['too_young'] = []
  const report = (finding: Finding) => {
    findings.push(finding)
    options.onFinding?.(finding)
  }
  const act = async (finding: Finding, repair: () => Promise<unknown>, repairing = options.fix) => {
    findings.push(finding)
    if (repairing) {
      try {
        await repair()
        finding.fixed = true
      } catch (error) {
        finding.fixed = false
        finding.fix_error = messageOf(error)
      }
    }
    options.onFinding?.(finding)
  }
  const resume = async (tenant: string) => {
    const result = await provisionTenant(bench, tenant)
    if (result.status !== 'completed' && result.status !== 'already_active')
      throw new Error(result.error ?? `provisioning ended ${result.status}`)
  }

  const all = await registry.listSites()
  const known = new Set(all.map((s) => s.name))
  // With a shared registry, only sites homed on this machine are judged (SPEC §10).
  const sites = all.filter((s) => isHomedHere(bench, registry.kind, s))
  const elsewhere = all.filter((s) => !sites.includes(s))
  const remote = new Set(elsewhere.map((s) => s.name))
  const tenants = await registry.db.selectFrom('tenants').selectAll().execute()
  const pulling = new Set(tenants.flatMap((t) => (t.pull_from ? [t.pull_from] : [])))
  const tenantById = new Map(tenants.map((t) => [t.id, t]))

  // Directories nobody registered.
  if (existsSync(bench.sitesPath)) {
    for (const entry of readdirSync(bench.sitesPath)) {
      const path = join(bench.sitesPath, entry)
      if (known.has(entry) || entry.startsWith('.') || pulling.has(entry)) continue
      const stat = lstatSync(path)
      if (!stat.isDirectory() && !stat.isSymbolicLink()) continue
      // Rows come before directories (intent first), and a pull renames its row before its
      // directory: a row found now means the directory is someone's site after all.
      if (looksLikeSite(path) || stat.isSymbolicLink()) {
        const found = await inspectSite(entry, path)
        if (await registry.getSite(entry)) continue
        if ('reason' in found) {
          const refused =
            options.fix || options.adopt
              ? { fixed: false, fix_error: 'refused: it may hold data, so it is neither adopted nor moved' }
              : {}
          report({
            kind: 'unreadable_site',
            subject: entry,
            problem: `directory ${path} has no registry row and cannot be adopted: ${found.reason}`,
            fix: 'nothing: repair its site_config.json or database, then run "tenancy doctor --adopt"',
            ...refused,
          })
          continue
        }
        const owner = tenants.find((t) => t.site === entry)
        await act(
          {
            kind: 'unregistered_site',
            subject: entry,
            problem: `site ${path} has no registry row`,
            fix: `adopt it (register it as a site${owner ? ` of tenant "${owner.name}"` : ' with no tenant'})`,
          },
          async () => {
            const { config, apps } = found
            const row = {
              name: entry,
              db_type: config.db_type,
              db_name: config.db_name,
              db_host: config.db_host ?? null,
              db_port: config.db_port ?? null,
              db_user: config.db_user ?? null,
            }
            if (
              !(await registry.insertSiteIntent({
                ...row,
                tenant_id: owner?.id ?? null,
                host: bench.host,
                state: 'ready',
                apps,
              }))
            ) {
              throw new Error('another process registered it meanwhile')
            }
            known.add(entry)
          },
          options.fix || options.adopt,
        )
        continue
      }
      // No config and no database: not a site. A young one may be a site on its way in.
      const age = Date.now() - stat.mtimeMs
      if (age < STRAY_MIN_AGE_MS) {
        tooYoung.push({ directory: path, age_s: Math.round(age / 1000) })
        continue
      }
      if (await registry.getSite(entry)) continue
      await act(
        {
          kind: 'stray_directory',
          subject: entry,
          problem: `directory ${path} has no registry row`,
          fix: 'move it to archived/sites/',
        },
        async () => archiveDirectory(bench, path, `${entry}-stray`),
      )
    }
  }

  // When every ready site is missing, the likelier story is a wrong sites_path (or an
  // unmounted disk) than lost sites: report, and repair nothing that would re-provision.
  const ready = sites.filter((s) => s.state === 'ready')
  const missing = new Set<string>()
  for (const site of ready) if (!(await siteComplete(bench, site))) missing.add(site.name)
  const allGone = ready.length > 1 && missing.size === ready.length
  if (allGone) {
    report({
      kind: 'missing_site',
      subject: bench.sitesPath,
      problem: `none of the ${ready.length} registered sites is in ${bench.sitesPath}`,
      fix: 'nothing: check "sites_path" in tenancy.config.json and that the directory is mounted',
      ...(options.fix
        ? { fixed: false, fix_error: 'refused: it would re-provision every tenant onto empty sites' }
        : {}),
    })
  }

  // Rows whose site is half-made, or whose directory or database is gone.
  for (const site of sites) {
    const tenant = site.tenant_id !== null ? tenantById.get(site.tenant_id) : undefined
    if (site.state === 'ready') {
      if (allGone || tenant?.pull_from || !missing.has(site.name)) continue
      const keep = mayStillHoldData(bench, site)
      if (keep) {
        // SPEC §6: --fix never moves or deletes a site whose database may hold data.
        report({
          kind: 'damaged_site',
          subject: site.name,
          problem: `site "${site.name}" cannot be opened: ${keep}`,
          fix: `nothing: restore what is missing (or remove the site on purpose with "tenancy ${tenant ? `tenant delete ${tenant.name}` : `drop-site ${site.name}`}")`,
          ...(options.fix ? { fixed: false, fix_error: 'refused: its database may hold data' } : {}),
        })
        continue
      }
      await act(
        {
          kind: 'missing_site',
          subject: site.name,
          problem: `site "${site.name}" is registered but its directory or database is missing from ${bench.sitePath(site.name)}`,
          fix: tenant ? `remove the row and provision tenant "${tenant.name}" again` : 'remove the registry row',
        },
        async () => {
          // Nothing of its database is left; what remains of the directory is archived, not deleted.
          await dropSite(bench, { site: site.name, archive: true, force: true })
          if (tenant) {
            await registry.db
              .updateTable('steps')
              .set({ status: 'pending', error: null })
              .where('tenant_id', '=', tenant.id)
              .execute()
            await registry.db
              .updateTable('tenants')
              .set({ status: 'inactive', provisioning_status: 'failed', provisioned_at: null, updated_at: now() })
              .where('id', '=', tenant.id)
              .execute()
            await resume(tenant.name)
          }
        },
      )
      continue
    }
    if (site.state === 'failed' || abandoned(site)) {
      const owned = tenant && site.state !== 'dropping'
      await act(
        {
          kind: 'unfinished_site',
          subject: site.name,
          problem: `site "${site.name}" is in state "${site.state}"${site.state === 'failed' ? ' (kept for debugging)' : ', and the process that was working on it is gone'}`,
          fix: owned
            ? `resume provisioning of tenant "${tenant.name}"`
            : 'finish removing it (database, directory, row)',
        },
        () => (owned ? resume(tenant.name) : dropSite(bench, { site: site.name, archive: false, force: true })),
      )
    }
  }

  // Tenants.
  const jobs = await registry.db
    .selectFrom('jobs')
    .selectAll()
    .where('status', 'in', ['queued', 'retry', 'running'])
    .execute()
  const jobTenants = new Set(jobs.map((j) => j.tenant_id))
  const at = now()
  for (const tenant of tenants) {
    // Another machine's tenant: its site is out of sight here, so nothing is repaired.
    if ((tenant.site && remote.has(tenant.site)) || (tenant.pull_from && remote.has(tenant.pull_from))) continue
    if (tenant.pull_from) {
      const holderGone =
        !tenant.lease_owner ||
        (tenant.lease_expires_at !== null && tenant.lease_expires_at < at) ||
        ownerAlive(tenant.lease_owner) === false
      if (holderGone) {
        await act(
          {
            kind: 'stuck_pull',
            subject: tenant.name,
            problem: `the pull of tenant "${tenant.name}" from "${tenant.pull_from}" did not finish`,
            fix: 'finish moving its site and keys',
          },
          async () => {
            const { finishPull } = await import('../pool/pool.js')
            await finishPull(bench, tenant)
          },
        )
      }
      continue
    }
    if (tenant.provisioning_status === 'completed' && tenant.site && !known.has(tenant.site)) {
      await act(
        {
          kind: 'tenant_without_site',
          subject: tenant.name,
          problem: `tenant "${tenant.name}" is active but its site "${tenant.site}" is not registered`,
          fix: 'provision its site again',
        },
        async () => {
          await registry.db
            .updateTable('steps')
            .set({ status: 'pending', error: null })
            .where('tenant_id', '=', tenant.id)
            .execute()
          await registry.db
            .updateTable('tenants')
            .set({ status: 'inactive', provisioning_status: 'failed', provisioned_at: null, updated_at: now() })
            .where('id', '=', tenant.id)
            .execute()
          await resume(tenant.name)
        },
      )
      continue
    }
    const leaseDead =
      !tenant.lease_owner ||
      (tenant.lease_expires_at !== null && tenant.lease_expires_at < at) ||
      ownerAlive(tenant.lease_owner) === false
    if (tenant.provisioning_status === 'in_progress' && leaseDead && !jobTenants.has(tenant.id)) {
      await act(
        {
          kind: 'stuck_tenant',
          subject: tenant.name,
          problem: `tenant "${tenant.name}" is in_progress but nobody is provisioning it`,
          fix: 'resume its provisioning',
        },
        () => resume(tenant.name),
      )
    } else if (tenant.provisioning_status === 'failed' && !jobTenants.has(tenant.id)) {
      await act(
        {
          kind: 'failed_tenant',
          subject: tenant.name,
          problem: `tenant "${tenant.name}" failed to provision: ${tenant.error ?? 'unknown error'}`,
          fix: 'resume its provisioning',
        },
        () => resume(tenant.name),
      )
    } else if (tenant.provisioning_status === 'queued' && !jobTenants.has(tenant.id)) {
      // Pool reservations have no job: pending-create provisions them itself. Only one left
      // for ten minutes means the run that made it is gone.
      const pendingReservation = tenant.pending_since !== null
      if (pendingReservation && Date.parse(tenant.updated_at) > Date.now() - 600_000) continue
      await act(
        {
          kind: 'queued_without_job',
          subject: tenant.name,
          problem: `tenant "${tenant.name}" is queued but nobody will provision it`,
          fix: pendingReservation
            ? 'provision it (a pool reservation left by a run that stopped)'
            : 'queue a job for it',
        },
        () =>
          pendingReservation ? resume(tenant.name) : registry.writeTransaction((trx) => enqueueJob(trx, tenant.id)),
      )
    }
  }

  // Jobs.
  for (const job of jobs) {
    if (!tenantById.has(job.tenant_id)) {
      await act(
        {
          kind: 'orphan_job',
          subject: `job ${job.id}`,
          problem: `job ${job.id} belongs to a tenant that no longer exists`,
          fix: 'delete it',
        },
        () => registry.db.deleteFrom('jobs').where('id', '=', job.id).execute(),
      )
    } else if (
      job.status === 'running' &&
      ((job.lease_expires_at !== null && job.lease_expires_at < at) ||
        (job.lease_owner && ownerAlive(job.lease_owner) === false))
    ) {
      await act(
        {
          kind: 'lost_job',
          subject: `job ${job.id}`,
          problem: `job ${job.id} (tenant "${tenantById.get(job.tenant_id)!.name}") is running in a worker that is gone`,
          fix: 'queue it again',
        },
        () =>
          registry.db
            .updateTable('jobs')
            .set({ status: 'queued', lease_owner: null, lease_expires_at: null, run_at: now(), updated_at: now() })
            .where('id', '=', job.id)
            .execute(),
      )
    }
  }
  const remoteTenants = new Set(tenants.filter((t) => t.site && remote.has(t.site)).map((t) => t.id))
  const waiting = (
    await registry.db
      .selectFrom('jobs')
      .select('tenant_id')
      .where('status', 'in', ['queued', 'retry', 'running'])
      .execute()
  ).filter((j) => !remoteTenants.has(j.tenant_id))
  if (waiting.length > 0 && !(await workerAlive(bench))) {
    await act(
      {
        kind: 'no_worker',
        subject: 'worker',
        problem: `${waiting.length} job(s) wait and no worker is running`,
        fix: 'start "tenancy worker --once" in the background',
      },
      () => ensureWorker(bench),
    )
  }

  // Last, so events written by the repairs above (a finished pull, say) are sent too.
  const undelivered = await undeliveredEvents(bench)
  if (undelivered.length > 0) {
    const oldest = undelivered[0]!
    await act(
      {
        kind: 'undelivered_event',
        subject: 'events',
        problem: `${undelivered.length} event(s) not yet delivered to provision.notify, the oldest ${oldest.type} of ${oldest.created_at}${oldest.last_error ? ` (${oldest.last_error})` : ''}`,
        fix: bench.config.provision.notify ? 'deliver them now' : 'nothing: set provision.notify to deliver them',
      },
      async () => {
        if (!bench.config.provision.notify) throw new Error('provision.notify is not set')
        const { failed } = await deliverEvents(bench, { evenIfNotDue: true })
        if (failed.length > 0) throw new Error(failed.map((f) => f.error).join('; '))
      },
    )
  }

  const fixed = findings.filter((f) => f.fixed).length
  return {
    findings,
    fixed,
    remaining: findings.length - fixed,
    elsewhere: elsewhere.map((s) => ({ site: s.name, host: homeName(s) })),
    too_young: tooYoung,
  }
}
