import { hostname } from 'node:os'
import { dirname, isAbsolute, join, relative, resolve } from 'node:path'
import { resolveConfig, type BenchConfig } from './config/config.js'
import { usageError } from './errors.js'
import { assertHostName } from './names.js'
import { defaultSite, type PasswordFlags } from './config/find-config.js'
import { readJsonFile } from './util/json-file.js'
import { Registry } from './registry/registry.js'
import { verifiedSecretBox } from './registry/key-check.js'
import type { SecretBox } from './secrets/secret-box.js'
import { siteDirectories } from './util/site-directories.js'

export { CONFIG_FILE, findConfigFile, type BenchOptions, type PasswordFlags } from './config/find-config.js'

/** What the opener of a bench for a command adds to it (the session opener, src/session.ts). */
export interface BenchHooks {
  /**
   * Runs once, right after the registry first opens, before the call that opened it returns
   * (the session opener finishes half-done pool pulls here). It may use the registry through
   * `bench.registry()`, which then returns it without running the hook again.
   */
  afterRegistryOpen?: (bench: Bench) => Promise<void>
  /**
   * Site-job commands of the layers above the bench's fleet commands (the pool's `pull`), by
   * name: what this machine's worker runs when another machine sends it one (SPEC §10).
   */
  siteJobCommands?: Record<string, SiteJobCommand>
}

/** How one machine runs a command another machine sent it, over `over.sites`, here only. */
export type SiteJobCommand = (
  bench: Bench,
  payload: Record<string, any>,
  over: {
    sites: string[]
    local: true
    signal: AbortSignal
    onSite: (result: { site: string; status: string; error: string | null }) => void
  },
) => Promise<unknown>

/**
 * An open bench: paths, validated config, and (opened on first use) the registry and the
 * secret box. Open one per command with the session's `usingBench` (src/session.ts), which
 * always closes it and finishes half-done pulls when the registry opens; a Bench made with
 * `new Bench(...)` does that only when given the same hook (`BenchHooks`).
 */
export class Bench {
  readonly root: string
  readonly configFile: string
  readonly rawConfig: Record<string, unknown>
  readonly config: BenchConfig
  readonly env: NodeJS.ProcessEnv
  readonly passwordFlags: PasswordFlags | undefined
  #registry: Promise<Registry> | undefined
  #hooks: BenchHooks
  #hooked = false
  #secretBox: Promise<SecretBox> | undefined

  constructor(
    configFile: string,
    env: NodeJS.ProcessEnv = process.env,
    passwordFlags?: PasswordFlags,
    hooks: BenchHooks = {},
  ) {
    this.configFile = configFile
    this.#hooks = hooks
    this.root = dirname(configFile)
    this.env = env
    this.passwordFlags = passwordFlags
    const raw = readJsonFile(configFile)
    // resolveConfig refuses anything but an object (`null` included) with exit 2.
    this.config = resolveConfig(raw, configFile, env)
    this.rawConfig = raw as Record<string, unknown>
  }

  /** Absolute path of a config path (relative ones are relative to the bench). */
  path(relative: string): string {
    return isAbsolute(relative) ? relative : resolve(this.root, relative)
  }

  get sitesPath(): string {
    return this.path(this.config.sites_path)
  }

  get appsPath(): string {
    return this.path(this.config.apps_path)
  }

  /** The site commands act on when none is given: `TENANCY_SITE`, else `tenancy use`'s; undefined when neither. */
  get defaultSite(): string | undefined {
    return defaultSite(this.root, this.env)
  }

  get archivePath(): string {
    return this.path(join('archived', 'sites'))
  }

  get stateDir(): string {
    return this.path('.tenancy')
  }

  /**
   * This machine's name, the home recorded on the sites it makes: `TENANCY_HOST`, else `host` in the
   * config, else the hostname.
   */
  get host(): string {
    const configured = this.rawConfig.host
    if (this.env.TENANCY_HOST) return assertHostName(this.env.TENANCY_HOST, 'TENANCY_HOST')
    if (configured !== undefined && configured !== null && configured !== '')
      return assertHostName(configured as string, '"host" in the config')
    return hostname()
  }

  sitePath(site: string): string {
    return join(this.sitesPath, site)
  }

  /**
   * The registry, opened on first use. The first opener also runs the `afterRegistryOpen`
   * hook: in a session, that finishes any pool pull a killed process left half-done.
   * A registry that is missing or empty while site directories exist is refused (exit 2)
   * without creating anything, unless `adopt` (`doctor --adopt`, which rebuilds it from them).
   */
  async registry(options: { adopt?: boolean } = {}): Promise<Registry> {
    this.#registry ??= Registry.open(this.config.registry, this.root, {
      onEmpty: (registry, state) => {
        if (options.adopt) return
        const sites = siteDirectories(this.sitesPath).length
        if (sites === 0) return
        const where = relative(this.root, this.sitesPath)
        const shown = where && !where.startsWith('..') ? `${where}/` : `${this.sitesPath}/`
        throw usageError(
          `registry ${registry} is ${state} but ${shown} holds ${sites} site${sites === 1 ? '' : 's'}; ` +
            `run "tenancy doctor --adopt" to rebuild it from them`,
        )
      },
    })
    const registry = await this.#registry
    if (!this.#hooked) {
      this.#hooked = true
      await this.#hooks.afterRegistryOpen?.(this)
    }
    return registry
  }

  /** Whether this command has opened the registry (so work on it costs no new connection). */
  /** The site-job command `name` the session gave this bench (see `BenchHooks.siteJobCommands`). */
  siteJobCommand(name: string): SiteJobCommand | undefined {
    return Object.hasOwn(this.#hooks.siteJobCommands ?? {}, name) ? this.#hooks.siteJobCommands![name] : undefined
  }

  get registryOpen(): boolean {
    return this.#registry !== undefined
  }

  /**
   * The secret box, the only way to reach the bench's key: checked against the registry on
   * first use (a wrong or lost key is exit 2), so no command can read or write a secret with
   * another key. Commands that write a secret get it before they change anything.
   */
  async secretBox(): Promise<SecretBox> {
    // The registry first: opening it may finish a pull (the session's hook), which itself asks for the box.
    const registry = await this.registry()
    this.#secretBox ??= verifiedSecretBox(registry, join(this.stateDir, 'secret.key'), this.env)
    return this.#secretBox
  }

  async close(): Promise<void> {
    const registry = this.#registry
    this.#registry = undefined
    if (registry) await (await registry.catch(() => undefined))?.close()
  }
}
