import { setSiteConfig } from '../../sites/config-commands.js'
import { planByName, type StepKind } from './step-kind.js'

/** `developer-mode`: sets `developer_mode` in the site's config when `provision.developer_mode` says so. */
export const developerMode: StepKind<{ kind: 'developer-mode' }> = {
  usage: ['developer-mode'],
  plan: planByName('developer-mode'),
  once: true,
  async run({ bench, tenant }) {
    if (!bench.config.provision.developer_mode) return { skipped: true, output: 'provision.developer_mode is false' }
    await setSiteConfig(bench, { key: 'developer_mode', value: '1', site: tenant.site })
    return { output: 'developer_mode = 1' }
  },
}
