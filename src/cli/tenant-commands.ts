import type { Command } from 'commander'
import { EXIT_FAILED, EXIT_INTERRUPTED, TenancyError, usageError } from '../errors.js'
import type { Output } from '../output/output.js'
import { taskProgress, usingProgress } from '../output/progress.js'
import type { ProvisionOptions, ProvisionResult } from '../provisioning/runner.js'
import { contextFor, type CommandContext } from './context.js'
import {
  addPageFlags,
  addPendingFilters,
  collect,
  integerFlag,
  pageOptions,
  pendingChoice,
  type PageFlags,
  type PendingFlags,
} from './flags.js'
import { printListing } from './listing.js'
import { addPasswordFlags } from './password-flags.js'
import { takeHandedSecrets } from '../util/handed-secrets.js'
import {
  ERRORS_FORM,
  TENANTS_FORM,
  fleetCounter,
  renderRename,
  renderTenant,
  stepTaskView,
  tenantStepLine,
} from './render.js'
import { registerTenantLifecycleCommands } from './tenant-lifecycle-commands.js'

/** `--concurrency` of pending-create and worker: tenants provisioned at once. */
const CONCURRENCY = { min: 1, max: 10_000, unit: 'tenants' }

/** How a provisioning run in the foreground reports to the terminal (see `watchingSteps`). */
type StepWatch = Required<Pick<ProvisionOptions, 'signal' | 'interruptSteps' | 'onStep' | 'onWait'>>

/**
 * Runs a provisioning in the foreground: its steps shown as tasks, Ctrl-C stopping the running
 * step too, and a wait for another process that holds the tenant said once.
 */
async function watchingSteps<T>(ctx: CommandContext, run: (watch: StepWatch) => Promise<T>): Promise<T> {
  const progress = taskProgress(ctx.out, stepTaskView)
  try {
    return await run({
      signal: ctx.signal,
      interruptSteps: true,
      onStep: progress.on,
      onWait: (holder) => ctx.out.info(`waiting for ${holder}, which is provisioning this tenant`),
    })
  } finally {
    await progress.settle()
  }
}

/** Exit code and closing message of a provisioning run, after its result was printed. */
function settle(out: Output, result: ProvisionResult): void {
  if (result.status === 'failed') {
    // The hint goes on the first line, before any output of a child that the error carries.
    const [first, ...rest] = (result.error ?? 'unknown error').split('\n')
    const hint = `fix the cause and run "tenancy provision ${result.tenant}" to resume`
    const cause = first!.replace(/[;:]\s*(output:)?\s*$/, '')
    // The child's output below, labelled and indented (as the worker's log has it), so it reads as this failure's.
    const output = rest.length ? `\n  output:\n${rest.map((line) => `    ${line}`).join('\n')}` : ''
    const message = `provisioning tenant "${result.tenant}" failed: ${cause}; ${hint}${output}`
    process.exitCode = out.error(new TenancyError(message, { exitCode: EXIT_FAILED }))
  } else if (result.status === 'interrupted') {
    process.exitCode = out.error(
      new TenancyError(`provisioning tenant "${result.tenant}" ${result.error}`, { exitCode: EXIT_INTERRUPTED }),
    )
  }
}

interface TenantCreateFlags {
  siteUrl?: string
  data?: string[]
  /** false with --no-pool. */
  pool: boolean
  background?: boolean
  host?: string
}

interface TenantListFlags extends PendingFlags, PageFlags {
  status?: string
}

interface TenantShowFlags {
  showSecrets?: boolean
}

interface TenantDeleteFlags {
  keepSite?: boolean
  /** false with --no-backup. */
  backup: boolean
}

interface PendingCreateFlags {
  count?: number
  concurrency: number
  host?: string
}

interface PendingClearFlags {
  olderThanDays?: number
  olderThanHours?: number
  host?: string
}

/** What a command that queued work for machine `host` says when no worker runs there. */
function noWorkerOn(out: Output, host: string, what: string): void {
  out.warn(`no worker is running on ${host}, so ${what} waits queued: start "tenancy worker" on ${host}`)
}

interface WorkerFlags {
  once?: boolean
  concurrency: number
}

interface ErrorsFlags extends PageFlags {
  tenant?: string
}

interface DoctorFlags {
  fix?: boolean
  adopt?: boolean
}

/** Registers tenant, provision, worker, errors and doctor. */
export function registerTenantCommands(program: Command): void {
  const tenant = program
    .command('tenant')
    .description('tenant records: create, list, show, update, rename, suspend, resume, delete')

  tenant
    .command('create')
    .description('record a tenant and provision its site (now, or with --background in a worker)')
    .argument('<name>', 'tenant name, a slug such as acme')
    .option('--site-url <url>', "the tenant's URL; its hostname becomes the site name")
    .option('--data <key=value>', 'an attribute of the tenant (repeatable)', collect)
    .option('--no-pool', 'do not take a tenant from the pending pool')
    .option('--background', 'queue the provisioning for a worker and return at once')
    .option('--host <machine>', 'place the tenant on this machine (TENANCY_HOST of a machine sharing the registry)')
    .addHelpText(
      'after',
      '\nThe site is --site HOST, the host of --site-url, or <name>.<default_site_domain>.\n' +
        '--host names another machine: nothing is provisioned here; the tenant is queued for the\n' +
        'workers of that machine (as --background there) and takes no pool tenant (a pull renames\n' +
        "the site's directory, which only its own machine can do). Needs a PostgreSQL registry.",
    )
    .action(async (name: string, _o, command: Command) => {
      const ctx = contextFor(command)
      const flags = command.opts<TenantCreateFlags>()
      await ctx.withBench(async (bench) => {
        const { createOrPullTenant, parseDataPairs } = await import('./core.js')
        const result = await watchingSteps(ctx, (watch) =>
          createOrPullTenant(bench, {
            pool: flags.pool,
            name,
            site: ctx.opts.site,
            siteUrl: flags.siteUrl,
            data: parseDataPairs(flags.data ?? []),
            background: flags.background,
            host: flags.host,
            ...watch,
          }),
        )
        if (result.mode === 'pulled') {
          ctx.out.result(
            result,
            () =>
              `Tenant ${result.name} is active (taken from the pool): site ${result.site}, api_key ${result.api_key}`,
          )
          return
        }
        const { provisioning, ...record } = result
        ctx.out.result(record, () => {
          if (result.mode === 'recorded')
            return (
              `Recorded tenant ${name} (site ${result.site}); ` +
              `auto_provision_tenant_sites is off, so run "tenancy provision ${name}"`
            )
          if (result.mode === 'queued' && result.worker_live !== undefined)
            return (
              `Queued tenant ${name} (site ${result.site}) for ${result.host}` +
              `${result.worker_live ? `; its worker there will provision it` : ''}. ` +
              `Follow it with "tenancy tenant show ${name}"`
            )
          if (result.mode === 'queued' && result.any_machine)
            return (
              `Queued tenant ${name} (site ${result.site}) for the first worker of any machine sharing the registry ` +
              `(${result.worker_started ? 'started one' : 'one is already running or starting'} on this machine, ${bench.host}; ` +
              `--host ${bench.host} keeps a tenant here). Follow it with "tenancy tenant show ${name}"`
            )
          if (result.mode === 'queued')
            return (
              `Queued tenant ${name} (site ${result.site})` +
              `${result.worker_started ? '; started a background worker' : '; a worker is running'}. ` +
              `Follow it with "tenancy tenant show ${name}"`
            )
          if (result.status === 'active')
            return `Tenant ${name} is active: site ${result.site}, api_key ${result.api_key}`
          return undefined
        })
        if (result.worker_live === false) noWorkerOn(ctx.out, result.host!, `tenant ${name}`)
        if (provisioning?.notify_error) ctx.out.warn(provisioning.notify_error)
        if (provisioning) settle(ctx.out, provisioning)
      })
    })

  const listCommand = tenant
    .command('list')
    .description('list tenants, oldest first')
    .option('--status <status>', 'only tenants with this status or provisioning status')
  addPendingFilters(listCommand, 'pending tenants')
  addPageFlags(listCommand, 'tenants').addHelpText(
    'after',
    '\nExamples:\n  tenancy tenant list --status active\n  tenancy tenant list --limit 100 --offset 200\n' +
      '  tenancy tenant list --json   # {"tenants": [...], "total": N}',
  )
  listCommand.action(async (_o, command: Command) => {
    const ctx = contextFor(command)
    const flags = command.opts<TenantListFlags>()
    const pending = pendingChoice(flags)
    await ctx.withBench(async (bench) => {
      const { tenantListing } = await import('./core.js')
      const listing = await tenantListing(bench, { status: flags.status, pending, ...pageOptions(flags, ctx.out) })
      await printListing(ctx.out, listing, {
        key: 'tenants',
        form: TENANTS_FORM,
        empty:
          pending === 'only' || flags.status
            ? 'No tenants match'
            : 'No tenants; create one with "tenancy tenant create acme"',
      })
    })
  })

  tenant
    .command('show')
    .description("a tenant's record and its provisioning steps")
    .argument('<name>', 'tenant name')
    .option('--show-secrets', 'also show api_secret and admin_password')
    .action(async (name: string, _o, command: Command) => {
      const ctx = contextFor(command)
      await ctx.withBench(async (bench) => {
        const { showTenant } = await import('./core.js')
        const result = await showTenant(bench, name, {
          showSecrets: Boolean(command.opts<TenantShowFlags>().showSecrets),
        })
        ctx.out.result(result, () => renderTenant(result))
      })
    })

  registerTenantLifecycleCommands(tenant)

  const deleteCommand = tenant
    .command('delete')
    .description('remove a tenant and (unless --keep-site) drop its site')
    .argument('<name>', 'tenant name')
    .option('--keep-site', 'keep the site; it stays registered without a tenant')
    .option('--no-backup', 'drop the site without backing it up into its archive first')
  addPasswordFlags(deleteCommand)
  deleteCommand.action(async (name: string, _o, command: Command) => {
    const ctx = contextFor(command)
    await ctx.withBench(async (bench) => {
      const { deleteTenant, requireTenant } = await import('./core.js')
      await requireTenant(bench, name)
      const flags = command.opts<TenantDeleteFlags>()
      const keepSite = Boolean(flags.keepSite)
      await ctx.confirm(
        `Delete tenant ${name}${keepSite ? '' : ' and drop its site'}?`,
        `tenant delete "${name}"${keepSite ? '' : ' drops its site'}`,
      )
      const result = await deleteTenant(bench, name, { keepSite, backup: flags.backup !== false, signal: ctx.signal })
      ctx.out.result(result, () => {
        if (!result.site_dropped) return `Deleted tenant ${name}`
        const archived = result.archived_to ? ` (archived to ${result.archived_to})` : ''
        const backup = result.backup ? `; backup in ${result.backup}` : ''
        return `Deleted tenant ${name}; dropped site ${result.site}${archived}${backup}`
      })
    })
  })

  program
    .command('pending-create')
    .description('keep N pending tenants in the pool: creates only the shortfall')
    .option(
      '--count <n>',
      'pool size (default: TENANCY_PENDING_COUNT, else pending.count)',
      integerFlag('--count', { min: 0, max: 100_000, unit: 'tenants' }),
    )
    .option('--concurrency <n>', 'tenants provisioned at once', integerFlag('--concurrency', CONCURRENCY), 1)
    .option('--host <machine>', "keep that machine's pool instead: its shortfall is queued for its workers")
    .addHelpText(
      'after',
      '\nEach machine sharing a registry keeps a pool of its own: N pending tenants homed on it.\n' +
        '--host names another machine: its shortfall is reserved and queued for its workers;\n' +
        'nothing is provisioned here. Needs a PostgreSQL registry.',
    )
    .action(async (_o, command: Command) => {
      const ctx = contextFor(command)
      const flags = command.opts<PendingCreateFlags>()
      await ctx.withBench(async (bench) => {
        const { pendingCreate } = await import('./core.js')
        // Several tenants run at once: each ended step is a line naming its tenant, and the one
        // progress line below says which step each running tenant is at. A tenant keeps its place
        // in that list from its first step to its end (no step shown between two).
        const running = new Map<string, { step?: string; started: number }>()
        const counter = (done: number, total: number, seconds: number) => {
          const now = [...running].flatMap(([tenant, { step }]) => (step ? [`${tenant} ${step}`] : []))
          return fleetCounter(done, total, seconds, 'tenants', now)
        }
        const { color } = ctx.out
        const result = await usingProgress(ctx.out, counter, (progress) =>
          pendingCreate(bench, {
            count: flags.count,
            concurrency: flags.concurrency,
            host: flags.host,
            signal: ctx.signal,
            onStart: (tenants) => {
              if (tenants.length > 0) progress.update(0, tenants.length)
            },
            onStep: (tenant, event) => {
              const started = running.get(tenant)?.started ?? performance.now()
              running.set(
                tenant,
                event.phase === 'start' ? { step: event.step, started: performance.now() } : { started },
              )
              const line = tenantStepLine(tenant, event, Math.round(performance.now() - started), color)
              if (line) progress.print(line)
              else progress.redraw()
            },
            onProvisioned: (r, done, total) => {
              running.delete(r.tenant)
              if (r.status === 'completed') progress.print(`${color.green('✔')} provisioned pending tenant ${r.tenant}`)
              else if (r.status === 'failed')
                progress.print(`${color.red('✖')} pending tenant ${r.tenant} failed: ${r.error}`)
              else if (r.status === 'busy')
                progress.print(`- pending tenant ${r.tenant} is being provisioned by another process: left to it`)
              progress.update(done, total)
            },
          }),
        )
        const { pool } = result
        const remote = result.worker_live !== undefined
        ctx.out.result(
          result,
          () =>
            `Pool${remote ? ` of ${result.host}` : ''}: ${pool.ready} ready, ${pool.provisioning} being provisioned` +
            `${pool.failed ? `, ${pool.failed} failed` : ''} (target ${result.target}); ` +
            (remote
              ? `this run queued ${result.reserved.length} for the workers of ${result.host}`
              : `this run reserved ${result.reserved.length} and provisioned ${result.provisioned.length}`),
        )
        if (result.worker_live === false && pool.provisioning > 0)
          noWorkerOn(ctx.out, result.host, `its pool's ${pool.provisioning} reservation(s)`)
        if (result.failed.length > 0) process.exitCode = EXIT_FAILED
      })
    })

  const clearCommand = program
    .command('pending-clear')
    .description('delete pending tenants (all, or older than a bound) with their sites')
    .option(
      '--older-than-days <n>',
      'only those pending for more than N days',
      integerFlag('--older-than-days', { min: 0, max: 36_500, unit: 'days' }),
    )
    .option(
      '--older-than-hours <n>',
      'only those pending for more than N hours',
      integerFlag('--older-than-hours', { min: 0, max: 876_000, unit: 'hours' }),
    )
    .option('--host <machine>', "clear that machine's reservations whose sites are not made yet")
    .addHelpText(
      'after',
      "\nOnly this machine's pending tenants are cleared. --host names another machine: its\n" +
        'reservations not yet provisioned are deleted (nothing of them is on disk); those whose\n' +
        'sites exist are refused (exit 1): only that machine can drop them.',
    )
  addPasswordFlags(clearCommand)
  clearCommand.action(async (_o, command: Command) => {
    const ctx = contextFor(command)
    const { olderThanDays, olderThanHours, host } = command.opts<PendingClearFlags>()
    await ctx.withBench(async (bench) => {
      const { pendingClear } = await import('./core.js')
      const result = await usingProgress(
        ctx.out,
        (done, total, seconds) => fleetCounter(done, total, seconds, 'tenants'),
        (progress) =>
          pendingClear(bench, {
            olderThanDays,
            olderThanHours,
            host,
            onTenant: (t, done, total) => {
              if (ctx.out.json) return
              progress.print(`${t.tenant}: ${t.status}${t.status === 'cleared' ? '' : ` (${t.reason})`}`)
              progress.update(done, total)
            },
          }),
      )
      const of = result.host === bench.host ? '' : ` of ${result.host}`
      ctx.out.result(result, () => {
        const left = result.skipped.map((s) => `${s.tenant} (${s.reason})`).join(', ')
        return `Cleared ${result.cleared.length} pending tenant(s)${of}${result.skipped.length ? `; left ${left}` : ''}`
      })
      if (result.refused.length > 0) {
        process.exitCode = ctx.out.error(
          new TenancyError(
            `${result.refused.length} pending tenant(s) of ${result.host} have their sites there ` +
              `(${result.refused.map((r) => r.tenant).join(', ')}), which only ${result.host} can drop; ` +
              `run "tenancy pending-clear" on ${result.host}`,
            { exitCode: EXIT_FAILED },
          ),
        )
      }
    })
  })

  program
    .command('provision')
    .description("run or resume a tenant's provisioning; done steps are skipped")
    .argument('<tenant>', 'tenant name')
    .action(async (name: string, _o, command: Command) => {
      const ctx = contextFor(command)
      await ctx.withBench(async (bench) => {
        const { provisionTenant } = await import('./core.js')
        const result = await watchingSteps(ctx, (watch) => provisionTenant(bench, name, watch))
        ctx.out.result(result, () => {
          if (result.status === 'already_active') return `Tenant ${name} is already active; nothing to do`
          if (result.status === 'completed') return `Tenant ${name} is active: site ${result.site}`
          return undefined
        })
        if (result.notify_error) ctx.out.warn(result.notify_error)
        settle(ctx.out, result)
      })
    })

  program
    .command('worker')
    .description('run queued provisioning jobs with retries until stopped (--once: until the queue is empty)')
    .option('--once', 'stop when no job is left')
    .option('--concurrency <n>', 'jobs at once', integerFlag('--concurrency', CONCURRENCY), 1)
    .action(async (_o, command: Command) => {
      const ctx = contextFor(command)
      const flags = command.opts<WorkerFlags>()
      // Started by ensureWorker: its secrets come on stdin, not in its environment.
      takeHandedSecrets()
      await ctx.withBench(async (bench) => {
        const { runWorker } = await import('./core.js')
        const until = flags.once ? 'until the queue is empty' : 'until stopped'
        if (!ctx.out.json) ctx.out.info(`worker ${process.pid} started (${until}, concurrency ${flags.concurrency})`)
        const result = await runWorker(bench, {
          once: Boolean(flags.once),
          concurrency: flags.concurrency,
          signal: ctx.signal,
          onEvent: (e) => {
            const stamp = new Date().toISOString()
            // One event per line, starting with its time: a failed command's output (in its error)
            // continues on indented lines, so `grep` and `tail -f` of worker.log keep events apart.
            const line = (text: string) => ctx.out.info(`${stamp} ${text.replace(/\r?\n/g, '\n    ')}`)
            if (e.type === 'claimed') line(`${e.tenant}: attempt ${e.attempt}`)
            else if (
              e.type === 'step' &&
              (e.event.phase === 'done' || e.event.phase === 'failed' || e.event.phase === 'skipped')
            ) {
              const error = e.event.phase === 'failed' ? `: ${e.event.error}` : ''
              line(`${e.tenant}: ${e.event.step} ${e.event.phase}${error}`)
            } else if (e.type === 'finished') {
              const retry = e.retry_at ? ` (retry at ${e.retry_at})` : ''
              const error = e.error && e.status !== 'done' ? `: ${e.error}` : ''
              line(`${e.tenant}: ${e.status}${retry}${error}`)
            } else if (e.type === 'site_job') {
              line(`site job ${e.job}: ${e.command} over ${e.sites} site(s), sent by ${e.from}`)
            } else if (e.type === 'site_job_finished') {
              line(`site job ${e.job}: ${e.command} finished (${e.ms} ms)`)
            }
          },
        })
        // --json keys are snake_case (SPEC §3).
        const { siteJobs, ...counts } = result
        ctx.out.result(
          { ...counts, site_jobs: siteJobs },
          () =>
            `worker ${process.pid} stopped: ${result.jobs} job(s)` +
            `${result.attempts > result.jobs ? ` in ${result.attempts} attempts` : ''}, ` +
            `${result.done} done, ${result.retried} to retry, ${result.failed} failed` +
            `${result.siteJobs ? `; ${result.siteJobs} site job(s) from other machines` : ''}`,
        )
      })
    })

  const errorsCommand = program
    .command('errors')
    .description('the error log, newest first: failed steps and jobs with their full messages')
    .option('--tenant <name>', "only this tenant's errors")
  addPageFlags(errorsCommand, 'errors').action(async (_o, command: Command) => {
    const ctx = contextFor(command)
    const flags = command.opts<ErrorsFlags>()
    await ctx.withBench(async (bench) => {
      const { errorListing } = await import('./core.js')
      const listing = await errorListing(bench, { tenant: flags.tenant, ...pageOptions(flags, ctx.out) })
      await printListing(ctx.out, listing, {
        key: 'errors',
        form: ERRORS_FORM,
        empty: 'No errors recorded',
      })
    })
  })

  program
    .command('doctor')
    .description('find sites, rows, tenants and jobs that disagree; --fix repairs or removes them')
    .option('--fix', 'repair or remove what is found')
    .option('--adopt', 'register every intact site directory that has no registry row (rebuilds a lost registry)')
    .action(async (_o, command: Command) => {
      const ctx = contextFor(command)
      const flags = command.opts<DoctorFlags>()
      await ctx.withBench(async (bench) => {
        const { doctor } = await import('./core.js')
        const fix = Boolean(flags.fix)
        const result = await doctor(bench, {
          fix,
          adopt: Boolean(flags.adopt),
          onFinding: (f) => {
            if (ctx.out.json) return
            // A finding doctor will not repair says so as "nothing: what to do instead".
            const advice = f.fix.startsWith('nothing: ') ? f.fix.slice('nothing: '.length) : undefined
            if (f.fixed) ctx.out.success(`${f.problem}: fixed (${f.fix})`)
            else if (f.fix_error) {
              const failure = advice ? `${f.fix_error}; ${advice}` : `could not ${f.fix}: ${f.fix_error}`
              ctx.out.info(`${ctx.out.color.red('✖')} ${f.problem}: ${failure}`)
            } else ctx.out.info(`${ctx.out.color.yellow('!')} ${f.problem} (${advice ?? `--fix would ${f.fix}`})`)
          },
        })
        if (!ctx.out.json)
          for (const { site, host } of result.elsewhere)
            ctx.out.info(`site ${site} is on ${host}: not judged from this machine`)
        if (!ctx.out.json) {
          for (const { directory, age_s } of result.too_young) {
            ctx.out.info(
              `directory ${directory} is ${age_s} s old, too young to judge (a site may be on its way in): ` +
                'left alone; run "tenancy doctor" again in a minute',
            )
          }
        }
        ctx.out.result(result, () =>
          result.findings.length === 0
            ? 'Nothing wrong'
            : result.remaining === 0
              ? `Fixed ${result.fixed} problem(s)`
              : `${result.remaining} problem(s) remain` +
                // Suggested only when --fix would repair one of them ("nothing: …" ones it cannot).
                (fix || result.findings.every((f) => f.fixed || f.fix.startsWith('nothing: '))
                  ? ''
                  : '; run "tenancy doctor --fix"'),
        )
        if (result.remaining > 0) process.exitCode = EXIT_FAILED
      })
    })

  tenant
    .command('rename')
    .description("rename a tenant's site (as rename-site does); the tenant keeps its name")
    .argument('<name>', 'tenant name')
    .addHelpText(
      'after',
      '\nThe new site name is --site NEW.\nExample:\n  tenancy tenant rename acme --site acme.example.com',
    )
    .action(async (name: string, _o, command: Command) => {
      const ctx = contextFor(command)
      const site = ctx.opts.site
      if (!site) throw usageError(`"tenant rename" needs the new site name: tenancy tenant rename ${name} --site NEW`)
      await ctx.withBench(async (bench) => {
        const { renameTenantSite } = await import('./core.js')
        const result = await renameTenantSite(bench, name, site, { signal: ctx.signal })
        ctx.out.result(result, () => renderRename(result))
      })
    })
}
