// The session opener: opens a bench for one command (or one library call) with what every
// command does on the way in. It sits above the pool and doctor, so the bench itself never
// imports them; the CLI (cli/core.ts) and the library (index.ts) open benches only here.
import { Bench, findConfigFile, type BenchHooks, type BenchOptions } from './bench.js'
import { recoverRenames } from './pool/recover-renames.js'
import { POOL_SITE_JOB_COMMANDS } from './pool/pull.js'
import { finishStatusChanges } from './provisioning/tenant-status.js'

/**
 * What every command does when it first opens the registry: finish any rename (a pool pull is
 * one) that a killed process left half-done (its registry part committed, its site not yet
 * wholly moved), so no command sees a site between two names, and any suspend or resume whose
 * site config was not yet written. One index probe each when there is none; neither throws for
 * one site or tenant (failures are logged or left to doctor, which reports them).
 */
const SESSION_HOOKS: BenchHooks = {
  afterRegistryOpen: async (bench) => {
    await recoverRenames(bench)
    await finishStatusChanges(bench)
  },
  // What this machine's worker runs for a pull another machine claimed of a site homed here.
  siteJobCommands: POOL_SITE_JOB_COMMANDS,
}

/** Opens the bench found from `options`; its registry, once opened, has no half-done rename left. */
export async function openBench(options: BenchOptions = {}): Promise<Bench> {
  return new Bench(findConfigFile(options), options.env, options.passwordFlags, SESSION_HOOKS)
}

/** Opens the bench, runs `fn`, and closes the bench whatever happens. */
export async function usingBench<T>(options: BenchOptions, fn: (bench: Bench) => Promise<T>): Promise<T> {
  const bench = await openBench(options)
  try {
    return await fn(bench)
  } finally {
    await bench.close()
  }
}
