import { installApps } from '../../apps/install.js'
import { resolveInstallOrder } from '../../apps/manifest.js'
import { prefetchMigrations } from '../../apps/migrations.js'
import { assertAppName } from '../../names.js'
import type { StepKind } from './step-kind.js'

/** `install-app APP`: installs one app; `install-apps` stands for one per `provision.apps`. */
export const installApp: StepKind<{ kind: 'install-app'; app: string }> = {
  usage: ['install-apps', '"install-app APP"'],
  plan(item, config) {
    if (item === 'install-apps')
      return config.provision.apps.map((app) => ({
        name: `install-app ${app}`,
        spec: { kind: 'install-app', app: assertAppName(app) },
      }))
    if (typeof item !== 'string' || !/^install-app[ :]/.test(item)) return undefined
    const app = assertAppName(item.slice('install-app '.length).trim())
    return [{ name: `install-app ${app}`, spec: { kind: 'install-app', app } }]
  },
  prefetch(ctx, spec) {
    try {
      prefetchMigrations(resolveInstallOrder(ctx.bench, [spec.app]))
    } catch {
      // An app that cannot be resolved fails this step's run, with the message to show.
    }
  },
  async run(ctx, spec) {
    const result = await installApps(ctx.bench, { site: ctx.tenant.site, apps: [spec.app], signal: ctx.signal })
    return {
      output: result.apps
        .map((a) =>
          a.status === 'already_installed'
            ? `${a.app} already installed`
            : `${a.app} ${a.version}: ${a.migrations.length} migrations, ${a.fixtures} fixture rows`,
        )
        .join('; '),
    }
  },
}
