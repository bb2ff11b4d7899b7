import { readFileSync } from 'node:fs'
import { getConfigPath } from '../config/config.js'
import { NODE } from '../error-codes.js'
import { usageError } from '../errors.js'

/** Where a secret may come from, in the SPEC's order: flag file, environment, config, prompt. */
export interface SecretSources {
  /** What the secret is, for messages: "admin password". */
  label: string
  /** The `--…-file` flag's name and the path it was given (absent where the command has no such flag). */
  fileFlag?: string
  filePath?: string
  /** The plain password flag (`--db-root-password`) and the value it was given; the CLI warns when it is used. */
  flag?: string
  flagValue?: string
  envVar: string
  env?: NodeJS.ProcessEnv
  /** The config key, dotted for a nested one (`provision.notify.secret`). */
  configKey?: string
  config?: Record<string, unknown>
  /** Asks on a TTY; absent when stdin is not a terminal. `allowEmpty`: an empty answer is the value ''. */
  prompt?: (message: string, options?: { allowEmpty?: boolean }) => Promise<string | undefined>
  /** An empty password is a real one (MariaDB's root often has none): the prompt takes an empty answer. */
  emptyAllowed?: boolean
  /** Added to the prompt, e.g. "leave empty to generate one". */
  promptHint?: string
}

export interface ResolvedSecret {
  value: string
  source: 'file' | 'flag' | 'env' | 'config' | 'prompt'
  /** Where it came from, for messages: "TENANCY_ADMIN_PASSWORD". */
  where: string
  warning?: string
}

/**
 * Finds a secret in the SPEC's order. An environment variable that is set but empty is an
 * empty secret (MariaDB's root often has no password). Returns `undefined` when nothing
 * gave one; `requireSecret` turns that into an error naming every place looked.
 */
export async function resolveSecret(sources: SecretSources): Promise<ResolvedSecret | undefined> {
  const env = sources.env ?? process.env
  if (sources.filePath !== undefined) {
    let text: string
    try {
      text = readFileSync(sources.filePath, 'utf8')
    } catch (error) {
      throw usageError(
        `cannot read ${sources.label} from ${sources.fileFlag} "${sources.filePath}": ` +
          `${unreadable((error as NodeJS.ErrnoException).code) ?? (error as Error).message}`,
      )
    }
    return { value: text.replace(/\r?\n$/, ''), source: 'file', where: `${sources.fileFlag} ${sources.filePath}` }
  }
  if (sources.flagValue !== undefined)
    return { value: sources.flagValue, source: 'flag', where: sources.flag ?? 'the command line' }
  const fromEnv = env[sources.envVar]
  if (fromEnv !== undefined) return { value: fromEnv, source: 'env', where: sources.envVar }
  const configured = sources.configKey && sources.config ? getConfigPath(sources.config, sources.configKey) : undefined
  if (sources.configKey && typeof configured === 'string') {
    return {
      value: configured,
      source: 'config',
      where: `"${sources.configKey}" in tenancy.config.json`,
      warning:
        `${sources.label} is read from "${sources.configKey}" in tenancy.config.json; ` +
        `move it to the environment (${sources.envVar})${sources.fileFlag ? ` or a ${sources.fileFlag}` : ''}`,
    }
  }
  if (sources.prompt) {
    const answer = await sources.prompt(
      `${sources.label[0]!.toUpperCase()}${sources.label.slice(1)}` +
        `${sources.promptHint ? ` (${sources.promptHint})` : ''}:`,
      { allowEmpty: sources.emptyAllowed === true },
    )
    if (answer !== undefined) return { value: answer, source: 'prompt', where: 'the prompt' }
  }
  return undefined
}

/** The sentence for a secret that is needed and found nowhere. */
export function missingSecretError(sources: SecretSources): Error {
  const places = [
    ...(sources.fileFlag ? [`${sources.fileFlag} FILE`] : []),
    `the ${sources.envVar} environment variable`,
  ]
  if (sources.configKey) places.push(`"${sources.configKey}" in tenancy.config.json`)
  places.push(sources.prompt ? 'the prompt (left empty)' : 'an interactive prompt (stdin is not a terminal)')
  return usageError(`missing ${sources.label}: looked in ${places.join(', ')}; set one of them`)
}

/** Why a secret's file could not be read, in words (the code stays for the rest). */
function unreadable(code: string | undefined): string | undefined {
  if (code === NODE.ENOENT) return 'no such file; check the path'
  if (code === NODE.EACCES) return 'permission denied; make it readable by this user'
  if (code === NODE.EISDIR) return 'it is a directory; name the file in it'
  return code
}
