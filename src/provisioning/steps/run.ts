import { readSiteConfig } from '../../sites/site.js'
import { libraryPath } from '../../util/library-path.js'
import { childEnvironment, runCommand } from '../../util/run-command.js'
import type { StepKind } from './step-kind.js'

/** `{"run": "cmd"}`: a command of the operator's, run in the bench with the tenant's names in its environment. */
export const runCommandStep: StepKind<{ kind: 'run'; run: string; timeout?: number }> = {
  usage: ['{"run": "cmd"}'],
  plan(item) {
    if (typeof item === 'string') return undefined
    return [
      {
        name: item.name ?? `run ${item.run.split(/\s+/).slice(0, 3).join(' ')}`.slice(0, 100),
        spec: { kind: 'run', run: item.run, timeout: item.timeout },
      },
    ]
  },
  async run({ bench, tenant, signal }, spec) {
    const site = tenant.site
    const sitePath = bench.sitePath(site)
    let dbName = ''
    let dbType = ''
    try {
      const config = readSiteConfig(sitePath)
      dbName = config.db_name
      dbType = config.db_type
    } catch {
      // A run step before create-site has no site yet; it gets the names it can.
    }
    const result = await runCommand(spec.run, {
      cwd: bench.root,
      what: 'its command',
      timeoutSeconds: spec.timeout ?? bench.config.provision.step_timeout,
      signal,
      env: childEnvironment(bench.env, {
        TENANCY_BENCH_PATH: bench.root,
        TENANCY_TENANT: tenant.name,
        TENANCY_SITE: site,
        TENANCY_SITE_PATH: sitePath,
        TENANCY_DB_NAME: dbName,
        TENANCY_DB_TYPE: dbType,
        TENANCY_LIB: libraryPath(bench.env),
      }),
    })
    return { output: result.output }
  },
}
