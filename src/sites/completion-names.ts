import { existsSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { Bench, findConfigFile, type BenchOptions } from '../bench.js'
import { readRegistryColumn } from '../registry/read-only.js'

/** The kinds of name shell completion offers from the bench. */
export const COMPLETION_NAME_KINDS = ['sites', 'tenants', 'apps'] as const
export type CompletionNameKind = (typeof COMPLETION_NAME_KINDS)[number]

// Pending tenants (and their placeholder sites) are left out unless the bench counts them in
// by default (`pending.include_in_queries`), as listings do; a site being dropped is gone already.
const SITES = (withPending: boolean) =>
  'select s.name from sites s left join tenants t on t.id = s.tenant_id ' +
  `where s.state <> 'dropping'${withPending ? '' : ' and t.pending_since is null'} order by s.name`
const TENANTS = (withPending: boolean) =>
  `select name from tenants${withPending ? '' : ' where pending_since is null'} order by name`

/**
 * The site, tenant or app names of the bench found from `options` (the working directory),
 * for shell completion: read-only and quick. The bench is opened without the session (no
 * recovery of half-done renames, no registry migration or creation) and the registry is read
 * with a short timeout. Throws when there is no bench or the registry cannot be read; the
 * completion command prints nothing then.
 */
export async function completionNames(kind: CompletionNameKind, options: BenchOptions = {}): Promise<string[]> {
  const bench = new Bench(findConfigFile(options), options.env)
  const withPending = bench.config.pending.include_in_queries
  switch (kind) {
    case 'apps':
      return benchAppNames(bench.appsPath)
    case 'sites':
      return readRegistryColumn(bench.config.registry, bench.root, SITES(withPending))
    case 'tenants':
      return readRegistryColumn(bench.config.registry, bench.root, TENANTS(withPending))
    default:
      return kind satisfies never
  }
}

/** The apps in the bench: folders of `apps_path` holding an `app.json` (not parsed: completion only offers the name). */
function benchAppNames(appsPath: string): string[] {
  if (!existsSync(appsPath)) return []
  return readdirSync(appsPath, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && !entry.name.startsWith('.'))
    .filter((entry) => existsSync(join(appsPath, entry.name, 'app.json')))
    .map((entry) => entry.name)
    .sort()
}
