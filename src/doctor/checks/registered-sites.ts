import { existsSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import type { Bench } from '../../bench.js'
import { getDriver } from '../../databases/index.js'
import { messageOf } from '../../errors.js'
import { ServerGoneError } from '../../databases/server-gone.js'
import type { SiteRecord } from '../../registry/registry.js'
import { dropSite, preparedArchive } from '../../sites/drop-site.js'
import { readSiteConfig } from '../../sites/site.js'
import { ownerAlive } from '../../util/process-owner.js'
import type { TenantRow } from '../../registry/tenants.js'
import type { Diagnosis } from '../finding.js'
import type { DoctorInputs } from '../inputs.js'
import { provisionAgain, resume } from '../repairs.js'

/**
 * Why a registered site that cannot be opened may still hold data, so doctor must leave it
 * alone; undefined when nothing of its database is left to lose. A server database outlives
 * a lost directory, config or password, so only an SQLite site whose file is gone qualifies.
 */
async function mayStillHoldData(bench: Bench, site: SiteRecord): Promise<string | undefined> {
  const path = bench.sitePath(site.name)
  if ((await getDriver(site.db_type)).server) {
    return (
      `its ${site.db_type} database "${site.db_name}" lives on the server and may still hold data ` +
      `(its directory, site_config.json or credentials are what is missing or wrong)`
    )
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

/**
 * Whether a site's directory and database are both there: true, false, or the error of a
 * database server that could not be reached (nothing is known missing then).
 */
async function siteComplete(bench: Bench, site: SiteRecord): Promise<boolean | ServerGoneError> {
  const path = bench.sitePath(site.name)
  if (!existsSync(join(path, 'site_config.json'))) return false
  try {
    const config = readSiteConfig(path)
    return await (await getDriver(config.db_type)).exists(config, path)
  } catch (error) {
    return error instanceof ServerGoneError ? error : false
  }
}

/** A half-made row is abandoned when its writer is gone (this host) or it is older than a minute. */
function abandoned(site: SiteRecord): boolean {
  if (site.owner && ownerAlive(site.owner) === true) return false
  return site.owner ? ownerAlive(site.owner) === false || Date.parse(site.updated_at) < Date.now() - 60_000 : true
}

/**
 * Registered sites of this machine whose directory or database is gone (`missing_site`,
 * or `damaged_site` when what is left may hold data), and half-made ones whose creator is
 * gone (`unfinished_site`).
 */
export async function* checkRegisteredSites(inputs: DoctorInputs): AsyncGenerator<Diagnosis> {
  const { bench, sites, tenantById } = inputs
  // When every ready site is missing, the likelier story is a wrong sites_path (or an
  // unmounted disk) than lost sites: report, and repair nothing that would re-provision.
  const ready = sites.filter((s) => s.state === 'ready')
  const missing = new Set<string>()
  const unreachable = new Map<string, ServerGoneError>()
  for (const site of ready) {
    const complete = await siteComplete(bench, site)
    if (complete instanceof ServerGoneError) unreachable.set(site.name, complete)
    else if (!complete) missing.add(site.name)
  }
  const allGone = ready.length > 1 && missing.size === ready.length
  if (allGone) {
    yield {
      finding: {
        kind: 'missing_site',
        subject: bench.sitesPath,
        problem: `none of the ${ready.length} registered sites is in ${bench.sitesPath}`,
        fix: 'nothing: check "sites_path" in tenancy.config.json and that the directory is mounted',
        ...(inputs.fix
          ? { fixed: false, fix_error: 'refused: it would re-provision every tenant onto empty sites' }
          : {}),
      },
    }
  }

  for (const site of sites) {
    const tenant = site.tenant_id !== null ? tenantById.get(site.tenant_id) : undefined
    if (site.state === 'ready') {
      const gone = unreachable.get(site.name)
      if (gone) {
        // Its server is down: nothing is known to be missing, and nothing is repaired.
        yield {
          finding: {
            kind: 'damaged_site',
            subject: site.name,
            problem: `site "${site.name}" cannot be checked: ${gone.message}`,
            fix: 'nothing: start the database server, then run "tenancy doctor" again',
          },
        }
        continue
      }
      if (allGone || tenant?.pull_from || !missing.has(site.name)) continue
      yield await missingSite(inputs, site, tenant)
    } else if (site.state === 'renaming') {
      // Its directory may still be under the old name: the rename's own check (renames.ts) judges it.
      continue
    } else if (site.state === 'failed' || abandoned(site)) {
      yield unfinishedSite(inputs, site, tenant)
    }
  }
}

/**
 * A ready site whose directory or database is gone: removed (and its tenant provisioned again) unless
 * it may hold data.
 */
async function missingSite(inputs: DoctorInputs, site: SiteRecord, tenant: TenantRow | undefined): Promise<Diagnosis> {
  const { bench, registry } = inputs
  const keep = await mayStillHoldData(bench, site)
  if (keep) {
    // SPEC §6: --fix never moves or deletes a site whose database may hold data.
    return {
      finding: {
        kind: 'damaged_site',
        subject: site.name,
        problem: `site "${site.name}" cannot be opened: ${keep}`,
        fix:
          `nothing: restore what is missing (or remove the site on purpose with ` +
          `"tenancy ${tenant ? `tenant delete ${tenant.name}` : `drop-site ${site.name}`}")`,
        ...(inputs.fix ? { fixed: false, fix_error: 'refused: its database may hold data' } : {}),
      },
    }
  }
  return {
    finding: {
      kind: 'missing_site',
      subject: site.name,
      problem:
        `site "${site.name}" is registered but ` +
        `its directory or database is missing from ${bench.sitePath(site.name)}`,
      fix: tenant ? `remove the row and provision tenant "${tenant.name}" again` : 'remove the registry row',
    },
    repair: async () => {
      // Nothing of its database is left; what remains of the directory is archived, not deleted.
      await dropSite(bench, { site: site.name, archive: true, force: true })
      if (tenant) await provisionAgain(bench, registry, tenant)
    },
  }
}

/** A site row left failed or half-made: its tenant's provisioning resumed, or the removal finished. */
function unfinishedSite(inputs: DoctorInputs, site: SiteRecord, tenant: TenantRow | undefined): Diagnosis {
  const { bench } = inputs
  const owned = tenant && site.state !== 'dropping'
  return {
    finding: {
      kind: 'unfinished_site',
      subject: site.name,
      problem:
        `site "${site.name}" is in state "${site.state}"` +
        `${site.state === 'failed' ? ' (kept for debugging)' : ', and the process that was working on it is gone'}`,
      fix: owned ? `resume provisioning of tenant "${tenant.name}"` : 'finish removing it (database, directory, row)',
    },
    repair: () =>
      owned
        ? resume(bench, tenant.name)
        : // A drop that was under way archived (or was archiving) the directory: finish it the same
          // way, into the archive it prepared (its backup there) if it got that far.
          dropSite(bench, {
            site: site.name,
            archive: site.state === 'dropping',
            archiveTo: site.state === 'dropping' ? preparedArchive(bench, site.name) : undefined,
            force: true,
          }),
  }
}
