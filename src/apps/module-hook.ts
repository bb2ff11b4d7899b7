import { sql, type Kysely, type KyselyPlugin, type PluginTransformQueryArgs } from 'kysely'
import type { PluginTransformResultArgs, QueryResult, RootOperationNode, UnknownRow } from 'kysely'
import type { DbType } from '../config/config.js'
import { InterruptedError, TenancyError, messageOf } from '../errors.js'
import { importFunction } from '../util/import-function.js'
import { watchForBlocking, watchLeftover } from '../util/blocked-watchdog.js'
import { leaveRunning } from '../util/left-running.js'
import { forgetBlockedHook, recordBlockedHook, refuseBlockedHook, type HookIdentity } from './blocked-hooks.js'
import type { HookName, HookSpec } from './hook-spec.js'

/**
 * What a module hook is called with (SPEC §9). `db` is the site's database as the step that
 * runs the hook uses it: inside its transaction, so that on SQLite and PostgreSQL a hook that
 * throws leaves nothing of the step behind. It serves queries only while the call lasts.
 *
 * @example
 * // apps/crm/hooks/after_install.mjs, declared as {"after_install": {"module": "hooks/after_install.mjs"}}
 * export default async function afterInstall({ db, site }) {
 *   await db.insertInto('audit_log').values({ id: 'AUD-1', action: 'installed', detail: site }).execute()
 *   return `crm installed on ${site}` // a string returned is the hook's output
 * }
 */
export interface HookContext {
  db: Kysely<any>
  /** The site's name (for `after_rename`, the new one). */
  site: string
  /** `after_rename` only: the name the site had. */
  previousSite?: string
  /** The site's directory. */
  sitePath: string
  /** The app's name. */
  app: string
  dbType: DbType
  /** Aborted at the step's timeout (`provision.step_timeout`) and on Ctrl-C: pass it on to long waits. */
  signal: AbortSignal
  /** Kysely's `sql` tag, as migrations get it (an app's folder need not resolve `kysely`). */
  sql: typeof sql
}

/** A module hook's call, as `callModuleHook` makes it. */
export interface ModuleHookCall {
  app: string
  hook: HookName
  spec: Extract<HookSpec, { kind: 'module' }>
  /** How messages name the hook: `the after_install hook of app "crm" on site "acme.localhost"`. */
  what: string
  context: Omit<HookContext, 'signal' | 'sql'>
  timeoutSeconds: number
  signal?: AbortSignal
  /** Where a hook that blocked the process is recorded, so that it is refused until changed (apps/blocked-hooks.ts). */
  blocked?: HookIdentity
}

/**
 * Refuses the queries of a hook whose call has ended. A hook that ignored its timeout, or left
 * a promise running, would otherwise write through a connection whose transaction is gone:
 * on SQLite outside any transaction, after the step was rolled back.
 */
class CallWindow implements KyselyPlugin {
  #closed = false

  constructor(readonly what: string) {}

  close(): void {
    this.#closed = true
  }

  transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
    if (this.#closed)
      throw new TenancyError(
        `${this.what} queried the database after its call had ended (it timed out, or left a promise ` +
          `running); await every query before the hook returns`,
      )
    return args.node
  }

  async transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    return args.result
  }
}

/**
 * Imports a module hook once per process and calls its export with the context, inside the
 * timeout and `signal`: past the timeout the call is failed with "timed out after N s" (and
 * its signal aborted), on an abort with an interruption, and a throw fails it with the
 * hook's message; the app is named either way, so callers do not wrap it again. The hook
 * cannot be killed as a command can: one that ignores its signal is left running, its
 * database refused, and the CLI ends the process when the command is done; one that blocks
 * the thread (a synchronous loop) lets no timer run, so under the CLI the watchdog stops the
 * process soon after its timeout (util/blocked-watchdog.ts). Returns what the hook printed,
 * in effect: the string it returned (else empty).
 */
export async function callModuleHook(call: ModuleHookCall): Promise<{ output: string; durationMs: number }> {
  const { what, app, blocked } = call
  const listed = blocked !== undefined && refuseBlockedHook(blocked, what, call.spec.module, app)
  const started = performance.now()
  const controller = new AbortController()
  let fail!: (error: unknown) => void
  const stopped = new Promise<never>((_, reject) => (fail = reject))
  const timer = setTimeout(() => {
    const error = new TenancyError(`${what} timed out after ${call.timeoutSeconds} s`, { namedApp: app })
    controller.abort(error)
    fail(error)
  }, call.timeoutSeconds * 1000)
  const unwatch = watchForBlocking(
    call.timeoutSeconds,
    `${what} blocked the process past its timeout of ${call.timeoutSeconds} s (a synchronous loop, ` +
      'which in-process code cannot be interrupted from), so tenancy stopped where it was; make the hook ' +
      'await its work and return, or declare it as a command, then run the command again to go on',
    blocked && {
      entry: { path: blocked.record, key: blocked.key, file: blocked.file, site: call.context.site },
      write: () => recordBlockedHook(blocked, call.context.site),
    },
  )
  const onAbort = () => {
    const error = new InterruptedError(what)
    controller.abort(error)
    fail(error)
  }
  if (call.signal?.aborted) onAbort()
  else call.signal?.addEventListener('abort', onAbort, { once: true })
  const window = new CallWindow(what)
  let running: Promise<unknown> | undefined
  let settled = false
  try {
    running = (async () => {
      const fn = await importFunction(call.spec.file, call.spec.exportName, {
        what: `module "${call.spec.module}"`,
        choose: 'name one in the hook\'s "export" in app.json',
      })
      controller.signal.throwIfAborted()
      return fn({
        ...call.context,
        db: call.context.db.withPlugin(window),
        signal: controller.signal,
        sql,
      } as never)
    })()
    running.then(
      () => (settled = true),
      () => (settled = true),
    )
    const result = await Promise.race([running, stopped])
    const durationMs = performance.now() - started
    // Blocking the thread past its timeout, then finishing before the timer had a turn, is still past it.
    if (durationMs > call.timeoutSeconds * 1000) {
      const seconds = (durationMs / 1000).toFixed(1)
      throw new TenancyError(
        `${what} timed out after ${call.timeoutSeconds} s (it held the thread for ${seconds} s; a synchronous loop?)`,
        { namedApp: app },
      )
    }
    if (listed) forgetBlockedHook(blocked)
    return { output: typeof result === 'string' ? result.trim() : '', durationMs }
  } catch (error) {
    if (controller.signal.aborted) {
      // Left running (its later rejection, if any, is handled above and nobody's concern).
      if (!settled) {
        leaveRunning()
        // Should it block the thread later, when nothing else watches it, the watchdog still stops it.
        if (running) watchLeftover(what, call.timeoutSeconds, running, call.spec.file)
      }
      throw controller.signal.reason
    }
    if (error instanceof TenancyError && error.namedApp === app) throw error
    throw new TenancyError(`${what} failed: ${messageOf(error)}`, {
      cause: error,
      namedApp: app,
      exitCode: error instanceof TenancyError ? error.exitCode : undefined,
    })
  } finally {
    window.close()
    clearTimeout(timer)
    unwatch()
    call.signal?.removeEventListener('abort', onAbort)
  }
}
