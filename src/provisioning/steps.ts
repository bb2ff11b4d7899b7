import type { Bench } from '../bench.js'
import type { BenchConfig } from '../config/config.js'
import { TenancyError, usageError } from '../errors.js'
import { assertAppName, assertEmail } from '../names.js'
import { childEnvironment, runCommand } from '../util/run-command.js'
import { installApps } from '../apps/install.js'
import { resolveInstallOrder } from '../apps/manifest.js'
import { now } from '../registry/registry.js'
import { generatePassword } from '../secrets/hashing.js'
import { resolveSecret } from '../secrets/resolve-secret.js'
import { generateKeys } from '../sites/api-keys.js'
import { setSiteConfig } from '../sites/config-commands.js'
import { dropSite } from '../sites/drop-site.js'
import { adminPasswordSources, newSite } from './new-site.js'
import { readSiteConfig } from '../sites/site.js'
import { addSystemManager } from '../sites/users.js'
import { resolveServerAdmin } from '../sites/server-admin.js'
import { getDriver } from '../databases/index.js'
import { libraryPath } from '../util/library-path.js'
import { recordEvent } from '../events/outbox.js'
import type { TenantRow } from '../registry/tenants.js'

/** One step of the pipeline, as stored with the tenant. */
export type StepSpec =
  | { kind: 'create-site' }
  | { kind: 'developer-mode' }
  | { kind: 'install-app'; app: string }
  | { kind: 'api-user' }
  | { kind: 'api-keys' }
  | { kind: 'activate' }
  | { kind: 'run'; run: string; timeout?: number }

export interface PlannedStep {
  name: string
  spec: StepSpec
}

const BUILTIN = new Set(['create-site', 'developer-mode', 'api-user', 'api-keys', 'activate'])

/**
 * The pipeline for new tenants: `provision.steps` when set, else the seven default steps
 * with one `install-app` per `provision.apps`. Checked here so a bad list is a usage error
 * before any tenant is recorded.
 */
export function planSteps(config: BenchConfig): PlannedStep[] {
  const items = config.provision.steps ?? [
    'create-site',
    'developer-mode',
    'install-apps',
    'api-user',
    'api-keys',
    'activate',
  ]
  const steps: PlannedStep[] = []
  const names = new Set<string>()
  const add = (name: string, spec: StepSpec) => {
    let unique = name
    for (let n = 2; names.has(unique); n++) unique = `${name} (${n})`
    names.add(unique)
    steps.push({ name: unique, spec })
  }
  for (const item of items) {
    if (typeof item !== 'string') {
      add(item.name ?? `run ${item.run.split(/\s+/).slice(0, 3).join(' ')}`.slice(0, 100), {
        kind: 'run',
        run: item.run,
        timeout: item.timeout,
      })
      continue
    }
    if (BUILTIN.has(item)) add(item, { kind: item } as StepSpec)
    else if (item === 'install-apps')
      for (const app of config.provision.apps)
        add(`install-app ${app}`, { kind: 'install-app', app: assertAppName(app) })
    else if (/^install-app[ :]/.test(item)) {
      const app = assertAppName(item.slice('install-app '.length).trim())
      add(`install-app ${app}`, { kind: 'install-app', app })
    } else {
      throw usageError(
        `provision.steps: unknown step "${item}"; use create-site, developer-mode, install-apps, "install-app APP", api-user, api-keys, activate or {"run": "cmd"}`,
      )
    }
  }
  const builtins = steps.filter((s) => s.spec.kind !== 'run' && s.spec.kind !== 'install-app')
  const twice = builtins.find((s, i) => builtins.findIndex((t) => t.spec.kind === s.spec.kind) !== i)
  if (twice) throw usageError(`provision.steps: "${twice.spec.kind}" is listed twice; give each built-in step once`)
  const at = (kind: StepSpec['kind']) => steps.findIndex((s) => s.spec.kind === kind)
  if (at('api-keys') !== -1 && (at('api-user') === -1 || at('api-user') > at('api-keys'))) {
    throw usageError('provision.steps: "api-keys" needs "api-user" before it (the keys are the API user\'s)')
  }
  if (steps[0]?.spec.kind !== 'create-site') throw usageError('provision.steps must start with "create-site"')
  if (steps[steps.length - 1]?.spec.kind !== 'activate') throw usageError('provision.steps must end with "activate"')
  return steps
}

/**
 * Checks a bench config the way the pipeline will use it: the steps, the apps they install
 * (present, with their requirements) and the API user pattern. `set-config -g` runs it on
 * the config it is about to write, so cron's next `pending-create` cannot be broken by it.
 */
export function checkPipeline(config: BenchConfig, apps: { appsPath: string }): PlannedStep[] {
  const steps = planSteps(config)
  resolveInstallOrder(
    apps,
    steps.flatMap((s) => (s.spec.kind === 'install-app' ? [s.spec.app] : [])),
  )
  const template = config.provision.api_user
  try {
    apiUserFor(config, { name: 'acme', site: 'acme.localhost' })
  } catch (error) {
    throw usageError(
      `provision.api_user ${JSON.stringify(template)} does not make an email address; use a pattern such as "api@{site}"`,
      error,
    )
  }
  return steps
}

/**
 * Checks, before a tenant is recorded, what the pipeline will need: a valid pipeline, its
 * apps, a database driver for `db.type`, the right encryption key, and (when this process
 * is about to provision on a database server) the server's admin password.
 */
export async function preflight(bench: Bench, options: { provisionsHere?: boolean } = {}): Promise<PlannedStep[]> {
  const steps = checkPipeline(bench.config, bench)
  const type = bench.config.db.type
  await getDriver(type)
  if (options.provisionsHere && type !== 'sqlite') await resolveServerAdmin(bench, type, { fileFlag: false })
  await checkEncryptionKey(bench)
  return steps
}

/**
 * Makes sure the key in use is the one the registry's secrets were written with (exit 2
 * otherwise), before a command changes anything: `bench.secretBox()` checks it.
 */
export async function checkEncryptionKey(bench: Bench): Promise<void> {
  await bench.secretBox()
}

/** The API user of a tenant: `provision.api_user` with `{site}` and `{tenant}` filled in. */
export function apiUserFor(config: BenchConfig, tenant: { name: string; site: string }): string {
  return assertEmail(config.provision.api_user.replaceAll('{site}', tenant.site).replaceAll('{tenant}', tenant.name))
}

export interface StepContext {
  bench: Bench
  tenant: TenantRow & { site: string }
  signal?: AbortSignal
}

export interface StepOutcome {
  skipped?: boolean
  output?: string
}

async function updateTenant(bench: Bench, id: number, values: Partial<Omit<TenantRow, 'id'>>): Promise<void> {
  const registry = await bench.registry()
  await registry.db
    .updateTable('tenants')
    .set({ ...values, updated_at: now() })
    .where('id', '=', id)
    .execute()
}

/** The admin password of a tenant's site: the one stored (encrypted) on the tenant, else configured, else generated, stored before use. */
async function adminPasswordFor(ctx: StepContext): Promise<string> {
  const box = await ctx.bench.secretBox()
  if (ctx.tenant.admin_password_enc) return box.decrypt(ctx.tenant.admin_password_enc)
  const configured = await resolveSecret({ ...adminPasswordSources(ctx.bench), prompt: undefined })
  const password = configured?.value || generatePassword()
  await updateTenant(ctx.bench, ctx.tenant.id, { admin_password_enc: box.encrypt(password) })
  return password
}

/** Runs one step. Every step is safe to run again after a partial run (check, act, re-check). */
export async function runStep(ctx: StepContext, step: PlannedStep): Promise<StepOutcome> {
  const { bench, tenant } = ctx
  const site = tenant.site
  const spec = step.spec
  switch (spec.kind) {
    case 'create-site': {
      const registry = await bench.registry()
      const existing = await registry.getSite(site)
      if (existing) {
        if (existing.tenant_id !== tenant.id) {
          throw new TenancyError(
            `site "${site}" exists and does not belong to tenant "${tenant.name}"; give the tenant another --site`,
          )
        }
        if (existing.state === 'ready') return { output: `site ${site} exists already (made by an earlier attempt)` }
        // Half-made by an earlier attempt of this tenant (its intent row names it): remove and make again.
        await dropSite(bench, { site, archive: false, force: true })
      }
      const password = await adminPasswordFor(ctx)
      const result = await newSite(bench, { site, tenantId: tenant.id, adminPassword: password, signal: ctx.signal })
      return { output: `created site ${site} (${result.db_type}, database ${result.db_name})` }
    }
    case 'developer-mode': {
      if (!bench.config.provision.developer_mode) return { skipped: true, output: 'provision.developer_mode is false' }
      await setSiteConfig(bench, { key: 'developer_mode', value: '1', site })
      return { output: 'developer_mode = 1' }
    }
    case 'install-app': {
      const result = await installApps(bench, { site, apps: [spec.app], signal: ctx.signal })
      return {
        output: result.apps
          .map((a) =>
            a.status === 'already_installed'
              ? `${a.app} already installed`
              : `${a.app} ${a.version}: ${a.migrations.length} migrations, ${a.fixtures} fixture rows`,
          )
          .join('; '),
      }
    }
    case 'api-user': {
      const email = apiUserFor(bench.config, { name: tenant.name, site })
      const result = await addSystemManager(bench, { site, email, firstName: 'Platform', lastName: 'API' })
      return {
        output: result.created
          ? `created ${email}`
          : `${email} exists${result.role_added ? '; gave it System Manager' : ''}`,
      }
    }
    case 'api-keys': {
      const email = apiUserFor(bench.config, { name: tenant.name, site })
      const box = await bench.secretBox()
      const keys = await generateKeys(bench, { site, email })
      await updateTenant(bench, tenant.id, { api_key: keys.api_key, api_secret_enc: box.encrypt(keys.api_secret) })
      return { output: `api_key ${keys.api_key} for ${email}` }
    }
    case 'activate': {
      const registry = await bench.registry()
      // The tenant and its `tenant.active` event commit together: a crash cannot lose the event.
      await registry.writeTransaction(async (trx) => {
        const at = now()
        await trx
          .updateTable('tenants')
          .set({ status: 'active', provisioning_status: 'completed', provisioned_at: at, error: null, updated_at: at })
          .where('id', '=', tenant.id)
          .execute()
        const row = await trx.selectFrom('tenants').selectAll().where('id', '=', tenant.id).executeTakeFirstOrThrow()
        // A pending tenant is nobody's yet: it is announced when a sign-up pulls it.
        if (row.pending_since === null) await recordEvent(bench, trx, 'tenant.active', row)
      })
      return { output: 'tenant is active' }
    }
    case 'run': {
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
        signal: ctx.signal,
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
    }
    default:
      return spec satisfies never
  }
}
