import type { Bench } from '../bench.js'
import { messageOf } from '../errors.js'
import { childEnvironment, runCommand } from '../apps/hooks.js'
import { tenantJson, type TenantRow } from './tenant-record.js'

export type TenantEvent = 'tenant.active' | 'tenant.failed'

/** The longest a notify command may run, in seconds (less when `provision.step_timeout` is less). */
const NOTIFY_TIMEOUT_S = 60

/**
 * Tells `provision.notify` that a tenant became active or failed: a webhook gets a JSON POST
 * (10 s timeout), a command gets the event in its environment (60 s, or `provision.step_timeout`
 * when that is less). A notification that fails is
 * logged and reported, never fatal: the tenant's state is already recorded.
 */
export async function notify(bench: Bench, event: TenantEvent, tenant: TenantRow): Promise<string | undefined> {
  const target = bench.config.provision.notify
  if (!target) return undefined
  const body = { event, tenant: tenantJson(tenant), at: new Date().toISOString() }
  try {
    if (target.webhook) {
      const response = await fetch(target.webhook, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'user-agent': 'tenancy' },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(10_000),
      })
      if (!response.ok) throw new Error(`the webhook answered HTTP ${response.status}`)
    }
    if (target.run) {
      await runCommand(target.run, {
        cwd: bench.root,
        what: 'the provision.notify command',
        timeoutSeconds: Math.min(NOTIFY_TIMEOUT_S, bench.config.provision.step_timeout),
        env: childEnvironment(bench.env, {
          TENANCY_EVENT: event,
          TENANCY_TENANT: tenant.name,
          TENANCY_SITE: tenant.site ?? '',
          TENANCY_BENCH_PATH: bench.root,
          TENANCY_EVENT_JSON: JSON.stringify(body),
        }),
      })
    }
    return undefined
  } catch (error) {
    const cause = error instanceof Error && error.cause ? ` (${messageOf(error.cause)})` : ''
    const message = `notifying ${event} for tenant "${tenant.name}" failed: ${messageOf(error)}${cause}`
    const registry = await bench.registry()
    await registry.logError({ tenant: tenant.name, site: tenant.site, step: 'notify', message })
    return message
  }
}
