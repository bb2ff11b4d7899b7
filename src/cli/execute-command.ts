import { isAbsolute, relative } from 'node:path'
import type { Command } from 'commander'
import { usageError } from '../errors.js'
import { usingProgress } from '../output/progress.js'
import { contextFor } from './context.js'
import { addFleetFlags, fleetOptions, setFleetExitCode, type FleetFlags } from './flags.js'
import { describeSiteExecution, renderExecuteSummary, sitesCounter } from './render.js'

interface ExecuteFlags extends FleetFlags {
  args?: string
}

/** `--args JSON`, parsed once: the value every call gets; an invalid one is exit 2 quoting it. */
function parseArgsFlag(text: string | undefined): unknown {
  if (text === undefined) return undefined
  try {
    return JSON.parse(text)
  } catch (error) {
    throw usageError(`invalid --args ${JSON.stringify(text)}: not JSON (${(error as Error).message})`)
  }
}

/**
 * Lines for `stream`, written at the next turn of the event loop (or once 64 KiB wait) rather than
 * at once: a thousand sites are a few writes, not a thousand. `flush` writes what waits now.
 */
function batched(stream: NodeJS.WritableStream): { write(line: string): void; flush(): void } {
  let waiting = ''
  let due: NodeJS.Immediate | undefined
  const flush = () => {
    if (due) clearImmediate(due)
    due = undefined
    if (waiting) stream.write(waiting)
    waiting = ''
  }
  return {
    write(line) {
      waiting += `${line}\n`
      if (waiting.length >= 65_536) flush()
      else due ??= setImmediate(flush)
    },
    flush,
  }
}

/** Registers `tenancy execute`. */
export function registerExecuteCommand(program: Command): void {
  const executeCommand = program
    .command('execute')
    .description("call a module's function on each site (--site S ..., or --site all) with a Kysely on its database")
    .argument('<module>', 'an ES module, relative to this directory: count.mjs (its default export) or count.mjs#name')
    .option('--args <json>', 'a JSON value handed to every call as args')
  addFleetFlags(executeCommand, '1').addHelpText(
    'after',
    '\nThe function gets { db, sql, site, sitePath, dbType, args, signal }, db a Kysely on the site as its own user,\n' +
      'and returns JSON data: one line "<site>: <json>" per site on stdout (--json: one document).\nExamples:\n' +
      '  tenancy execute apps/tenant_ops/scripts/count.mjs --site all\n' +
      `  tenancy execute apps/tenant_ops/scripts/api.mjs#apiUser --site acme.localhost --args '{"user":"ops@example.com"}' --json\n` +
      'Exit 1 if any site failed.',
  )
  executeCommand.action(async (spec: string, _o, command: Command) => {
    const ctx = contextFor(command)
    const flags = command.opts<ExecuteFlags>()
    const selection = fleetOptions(ctx.opts.sites, flags, ctx.signal)
    const args = parseArgsFlag(flags.args)
    const { executeOnSites, loadSiteFunction } = await import('./core.js')
    const { fn, exportName, file } = await loadSiteFunction(spec, process.cwd())
    await ctx.withBench(async (bench) => {
      // Other machines call the module from the same place in their bench (or the same absolute path).
      const inBench = relative(bench.root, file)
      const from = { module: inBench.startsWith('..') || isAbsolute(inBench) ? file : inBench, exportName }
      // The results are the command's output: stdout, one line a site, so a script can read them. On a
      // terminal each shows as its site finishes, above the progress line; otherwise they go out in batches.
      const result = await usingProgress(ctx.out, sitesCounter, (progress) => {
        const lines = ctx.out.stdout.isTTY
          ? { write: (line: string) => progress.print(line, ctx.out.stdout), flush() {} }
          : batched(ctx.out.stdout)
        return executeOnSites(bench, fn as never, {
          ...selection,
          args,
          from,
          onStart: (total) => progress.update(0, total),
          onSite: (r, done, total, thrown) => {
            if (ctx.out.json) return
            lines.write(`${r.site}: ${describeSiteExecution(r)}`)
            if (thrown instanceof Error && thrown.stack && ctx.out.verbose) {
              lines.flush()
              progress.print(ctx.out.color.dim(thrown.stack))
            }
            progress.update(done, total)
          },
        }).finally(() => lines.flush())
      })
      if (ctx.out.json) ctx.out.result(result)
      // Sites not started have a line too (onSite is called for them as the run ends).
      else ctx.out.info(renderExecuteSummary(result))
      setFleetExitCode(result)
    })
  })
}
