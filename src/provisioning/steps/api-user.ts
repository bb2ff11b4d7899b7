import type { BenchConfig } from '../../config/config.js'
import { assertEmail } from '../../names.js'
import { addSystemManager } from '../../sites/users.js'
import { planByName, type StepKind } from './step-kind.js'

/** The API user of a tenant: `provision.api_user` with `{site}` and `{tenant}` filled in. */
export function apiUserFor(config: BenchConfig, tenant: { name: string; site: string }): string {
  return assertEmail(config.provision.api_user.replaceAll('{site}', tenant.site).replaceAll('{tenant}', tenant.name))
}

/** `api-user`: the tenant's API user (`provision.api_user`), a System Manager of its site. */
export const apiUser: StepKind<{ kind: 'api-user' }> = {
  usage: ['api-user'],
  plan: planByName('api-user'),
  once: true,
  async run({ bench, tenant }) {
    const site = tenant.site
    const email = apiUserFor(bench.config, { name: tenant.name, site })
    const result = await addSystemManager(bench, { site, email, firstName: 'Platform', lastName: 'API' })
    return {
      output: result.created
        ? `created ${email}`
        : `${email} exists${result.role_added ? '; gave it System Manager' : ''}`,
    }
  },
}
