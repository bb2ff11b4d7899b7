import { readFileSync } from 'node:fs'
import { childEnvironment } from './run-command.js'

/**
 * Set in the environment of a process started with its secrets on stdin (`handOverSecrets`):
 * the secrets themselves are never in a child's environment, where `/proc/PID/environ` and
 * `ps e` show them for as long as it runs (a detached worker runs for hours).
 */
export const SECRETS_ON_STDIN = 'TENANCY_SECRETS_ON_STDIN'

/**
 * `env` split for a child process: what it may see in its environment (anything that does not
 * look like a secret, as hooks and steps get it) and the secrets (`TENANCY_ADMIN_PASSWORD`, a
 * registry URL with a password, `*_TOKEN`, …), to hand over on its stdin. `environment` names
 * `SECRETS_ON_STDIN` when there are any.
 */
export function handOverSecrets(env: NodeJS.ProcessEnv): { environment: Record<string, string>; secrets?: string } {
  const kept = childEnvironment(env, {})
  const secrets = Object.fromEntries(
    Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined && !Object.hasOwn(kept, e[0])),
  )
  if (Object.keys(secrets).length === 0) return { environment: kept }
  return { environment: { ...kept, [SECRETS_ON_STDIN]: '1' }, secrets: JSON.stringify(secrets) }
}

/**
 * In a process started by `handOverSecrets`' caller: reads the secrets from stdin (to its end)
 * into `env`, where they are as they were in the parent's environment. A variable already set
 * wins. Nothing to read (the parent died first) is no secrets: commands then say what is missing.
 */
export function takeHandedSecrets(env: NodeJS.ProcessEnv = process.env): void {
  if (env[SECRETS_ON_STDIN] !== '1') return
  delete env[SECRETS_ON_STDIN]
  let handed: unknown
  try {
    handed = JSON.parse(readFileSync(0, 'utf8'))
  } catch {
    return
  }
  if (typeof handed !== 'object' || handed === null) return
  for (const [name, value] of Object.entries(handed))
    if (typeof value === 'string' && env[name] === undefined) env[name] = value
}
