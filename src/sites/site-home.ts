import { existsSync, lstatSync, realpathSync } from 'node:fs'
import { dirname } from 'node:path'
import type { Expression, ExpressionBuilder, SqlBool } from 'kysely'
import type { Bench } from '../bench.js'
import { usageError } from '../errors.js'
import { assertHostName } from '../names.js'
import type { RegistryKind } from '../registry/registry-migrations.js'
import type { RegistrySchema, SitesTable } from '../registry/schema.js'

/**
 * Whether a site lives on this machine (SPEC §10). An SQLite registry belongs to one machine,
 * so all its sites do (even after the hostname changed, as a container's does). On a shared
 * registry a site lives where its row says; a row from before homes were recorded (no
 * `host`) counts as here only when its directory is here.
 */
export function isHomedHere(bench: Bench, kind: RegistryKind, site: Pick<SitesTable, 'name' | 'host'>): boolean {
  if (kind === 'sqlite') return true
  if (site.host !== null) return site.host === bench.host
  return existsSync(bench.sitePath(site.name))
}

/**
 * A condition for queries over `tenants` of a shared registry: the tenant's site is not homed
 * on another machine (it lives on `host`, has no home recorded, or does not exist yet).
 * Workers and pool pulls take only such tenants, so no machine works on a site it cannot see.
 */
export function notHomedElsewhere(
  host: string,
): (eb: ExpressionBuilder<RegistrySchema, 'tenants'>) => Expression<SqlBool> {
  return (eb) =>
    eb.not(
      eb.exists(
        eb
          .selectFrom('sites')
          .select('sites.name')
          .whereRef('sites.name', '=', 'tenants.site')
          .where('sites.host', 'is not', null)
          .where('sites.host', '!=', host),
      ),
    )
}

/** Where a site lives, for messages: its host, or "another machine" for an old row. */
export function homeName(site: Pick<SitesTable, 'host'>): string {
  return site.host ?? 'another machine'
}

/**
 * Refuses (exit 2) to act on a site that lives on another machine: with a shared registry
 * this one cannot see its files or database, so it must never repair, drop or re-provision it.
 */
export function assertHomedHere(
  bench: Bench,
  kind: RegistryKind,
  site: Pick<SitesTable, 'name' | 'host'>,
  command: string,
): void {
  if (isHomedHere(bench, kind, site)) return
  const rename = site.host ? renamedHint(site.host) : ''
  throw usageError(
    `site "${site.name}" lives on ${homeName(site)}, not on this machine (${bench.host}); ` +
      `run "tenancy ${command}" there${rename}`,
  )
}

const renamedHint = (host: string) => ` (if this is that machine under a new name, set TENANCY_HOST=${host})`

/**
 * Refuses (exit 2) to provision here a tenant placed on another machine (`tenant create
 * --host H`, a pool reservation for H) before its site exists: that machine makes it.
 * `placedOn` is the tenant's machine (`machineOfTenant`), null when none is.
 */
export function assertPlacedHere(bench: Bench, tenant: string, placedOn: string | null, command: string): void {
  if (placedOn === null || placedOn === bench.host) return
  throw usageError(
    `tenant "${tenant}" is placed on ${placedOn}, not on this machine (${bench.host}); ` +
      `its worker there provisions it, or run "tenancy ${command}" there${renamedHint(placedOn)}`,
  )
}

/**
 * The machine a `--host` flag names (checked as a machine name, exit 2). Another machine than
 * this one needs a shared registry: an SQLite registry is this machine's alone (exit 2).
 */
export function placementHost(bench: Bench, kind: RegistryKind, given: string): string {
  const host = assertHostName(given, '--host')
  if (host !== bench.host && kind === 'sqlite')
    throw usageError(
      `--host ${host} names another machine than this one (${bench.host}), but this bench's registry is ` +
        `SQLite, which no other machine shares; set "registry" to a PostgreSQL URL the machines share, ` +
        `or run the command on ${host}`,
    )
  return host
}

/**
 * Refuses (exit 2) to remove or move `path` unless it is a real directory right inside the
 * bench's sites directory: a symbolic link there would make a drop delete what it points to.
 * A path that does not exist passes (there is nothing to remove).
 */
export function assertRealSiteDirectory(bench: Bench, path: string): void {
  let stat
  try {
    stat = lstatSync(path)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return
    throw error
  }
  if (stat.isSymbolicLink()) {
    throw usageError(
      `${path} is a symbolic link, not a site directory; ` +
        `tenancy will not remove or move what it points to: ` +
        `replace the link with the site's own directory, or remove the link yourself`,
    )
  }
  if (!stat.isDirectory()) throw usageError(`${path} is not a directory; move it out of ${bench.sitesPath} yourself`)
  const real = realpathSync(path)
  if (dirname(real) !== realpathSync(bench.sitesPath)) {
    throw usageError(`${path} resolves to ${real}, outside ${bench.sitesPath}; tenancy will not remove or move it`)
  }
}
