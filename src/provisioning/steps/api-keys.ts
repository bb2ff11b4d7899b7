import { generateKeys } from '../../sites/api-keys.js'
import { apiUserFor } from './api-user.js'
import { planByName, type StepKind } from './step-kind.js'
import { updateTenant } from './tenant-update.js'

/** `api-keys`: an API key and secret for the API user, kept (the secret encrypted) on the tenant. */
export const apiKeys: StepKind<{ kind: 'api-keys' }> = {
  usage: ['api-keys'],
  plan: planByName('api-keys'),
  once: true,
  after: { kind: 'api-user', because: "the keys are the API user's" },
  async run({ bench, tenant }) {
    const site = tenant.site
    const email = apiUserFor(bench.config, { name: tenant.name, site })
    const box = await bench.secretBox()
    const keys = await generateKeys(bench, { site, email })
    await updateTenant(bench, tenant.id, { api_key: keys.api_key, api_secret_enc: box.encrypt(keys.api_secret) })
    return { output: `api_key ${keys.api_key} for ${email}` }
  },
}
