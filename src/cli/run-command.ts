import type { Command } from 'commander'
import type { OutputStream } from '../fleet/run.js'
import { usageError } from '../errors.js'
import { usingProgress } from '../output/progress.js'
import { contextFor } from './context.js'
import { addFleetFlags, fleetOptions, integerFlag, setFleetExitCode, type FleetFlags } from './flags.js'
import { describeSiteRun, renderRunSummary, sitesCounter } from './render.js'

interface RunFlags extends FleetFlags {
  timeout?: number
  shell?: string
}

/**
 * The words after the first `--` of the command line, when the operands commander gave are
 * exactly those: the command to run is always after `--`, so none of its flags can be read as
 * tenancy's (`tenancy run --site a -- grep --site x` runs `grep --site x`).
 */
function commandAfterDashes(command: Command, operands: string[]): string[] {
  let root = command
  while (root.parent) root = root.parent
  const raw = (root as Command & { rawArgs?: string[] }).rawArgs ?? []
  const dashes = raw.indexOf('--')
  const after = dashes === -1 ? [] : raw.slice(dashes + 1)
  if (operands.length > 0 && (after.length !== operands.length || after.some((word, i) => word !== operands[i])))
    throw usageError(
      `put the command after "--": tenancy run --site S -- ${operands.join(' ')} (so its flags are not read as tenancy's)`,
    )
  return operands
}

/** Registers `tenancy run`. */
export function registerRunCommand(program: Command): void {
  const runCommand = program
    .command('run')
    .description('run a command once per site (--site S ..., or --site all) in the bench, the site in its environment')
    .argument('[command...]', 'the program and its arguments, after "--"; passed on untouched, no shell')
  addFleetFlags(runCommand, '1')
    .option(
      '--timeout <seconds>',
      "seconds each site's command may take; then it is stopped with everything it started (default run.timeout: 3600)",
      integerFlag('--timeout', { min: 1, max: 604_800, unit: 'seconds' }),
    )
    .option('--shell <cmd>', 'run this command line with /bin/sh -c instead of a command after "--"')
    .addHelpText(
      'after',
      '\nThe command runs with stdin closed, in the bench directory, with TENANCY_SITE, TENANCY_SITE_PATH, ' +
        'TENANCY_DB_TYPE,\nTENANCY_BENCH_PATH and TENANCY_LIB set and no secret in its environment. Each line it prints ' +
        'is shown as "<site>: line";\n--json gives each site\'s exit_code, stdout and stderr (the last 64 KiB) instead.\n' +
        'Examples:\n  tenancy run --site all -- ls -l sites\n' +
        '  tenancy run --site all --concurrency 4 --skip-failing -- node apps/tenant_ops/scripts/hours.mjs --month 2026-01\n' +
        '  tenancy run --site acme.localhost --shell \'du -sh "$TENANCY_SITE_PATH"\'\n' +
        'Exit 1 if any site failed, 130 when interrupted.',
    )
    .action(async (operands: string[], _o, command: Command) => {
      const ctx = contextFor(command)
      const flags = command.opts<RunFlags>()
      const argv = commandAfterDashes(command, operands)
      const selection = fleetOptions(ctx.opts.sites, flags, ctx.signal)
      const json = ctx.out.json
      // A terminal gets the site in colour; a file or a pipe gets it plain.
      const prefix = (stream: NodeJS.WriteStream, site: string) =>
        stream.isTTY ? ctx.out.color.cyan(`${site}:`) : `${site}:`
      // Sites whose lines came as they were printed; another machine's come with its result.
      const streamed = new Set<string>()
      await ctx.withBench(async (bench) => {
        const { runOnSites } = await import('./core.js')
        // The commands' lines go above the progress line on a terminal, so it never cuts into them.
        const result = await usingProgress(ctx.out, sitesCounter, (progress) => {
          // One write per whole line, so the lines of sites running at once never mix.
          const print = (site: string, name: OutputStream, line: string) => {
            const stream = name === 'stdout' ? ctx.out.stdout : ctx.out.stderr
            progress.print(`${prefix(stream, site)} ${line}`, stream)
          }
          return runOnSites(bench, {
            command: argv,
            shell: flags.shell,
            ...selection,
            timeoutSeconds: flags.timeout,
            keepOutput: json,
            onStart: (total) => progress.update(0, total),
            onLine: json
              ? undefined
              : (site, name, line) => {
                  streamed.add(site)
                  print(site, name, line)
                },
            onSite: (r, done, total) => {
              if (json) return
              if (!streamed.has(r.site))
                for (const name of ['stdout', 'stderr'] as const)
                  for (const line of r[name].split('\n').filter((l, i, all) => l !== '' || i < all.length - 1))
                    print(r.site, name, line)
              if (r.status !== 'succeeded') progress.print(`${prefix(ctx.out.stderr, r.site)} ${describeSiteRun(r)}`)
              progress.update(done, total)
            },
          })
        })
        // The children's output is on stdout: the summary goes to stderr, and --json gives the document.
        if (json) ctx.out.result(result)
        else ctx.out.info(renderRunSummary(result))
        setFleetExitCode(result)
      })
    })
}
