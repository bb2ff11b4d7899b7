// What `tenancy setup cron` and `tenancy setup systemd` share: who and where (user or system,
// the bench's name and owner), quoting paths for the shell, and installing a file without
// overwriting one that is not ours. The crontab is in setup-cron.ts, the unit in setup-systemd.ts.
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs'
import { userInfo } from 'node:os'
import { basename, dirname, resolve } from 'node:path'
import type { Bench } from '../bench.js'
import { usageError } from '../errors.js'
import { writeFileAtomic } from '../util/json-file.js'

/** Where a setup goes: the user's own crontab and systemd manager, or the machine's (root). */
export type SetupScope = 'user' | 'system'

export interface SetupOptions {
  /** The absolute path of the Node that runs tenancy (`process.execPath`): cron's PATH is small. */
  node: string
  /** The absolute path of tenancy's bin script. */
  bin: string
  /** Default: `system` when run as root, else `user`. */
  scope?: SetupScope
  /** The name in the installed file's name (`tenancy-worker-NAME.service`); default: the bench directory's. */
  name?: string
  /** Install it, rather than only return it. */
  write?: boolean
  /** Where `write` puts it instead of where the system expects it (a file). */
  path?: string
  /** Replace an installed one that differs. */
  force?: boolean
}

/** What a setup command made, and what (if anything) it wrote. */
export interface SetupResult {
  kind: 'cron' | 'systemd'
  scope: SetupScope
  /** The crontab lines (a marked block) or the unit file. */
  content: string
  /** Where `write` puts it: a file, or `crontab of USER`. */
  target: string
  written: boolean
  /** With `write`: false when the same content was there already. */
  changed: boolean
  /** Commands the operator runs next, if any. */
  next: string[]
}

/** The default scope: the machine's when running as root. */
export function defaultScope(): SetupScope {
  return process.getuid?.() === 0 ? 'system' : 'user'
}

const NAME = /^[A-Za-z0-9_-]{1,64}$/

/**
 * The name a bench's installed files carry: `--name`, else its directory's name with every
 * character cron.d and systemd would refuse (run-parts skips a cron.d file with a dot) made `-`.
 */
export function setupName(bench: Bench, given?: string): string {
  if (given !== undefined) {
    if (!NAME.test(given)) throw usageError(`invalid --name "${given}": use letters, digits, "_" and "-" (at most 64)`)
    return given
  }
  const name = basename(bench.root)
    .replace(/[^A-Za-z0-9_-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 64)
  return name || 'bench'
}

/** Refuses a path cron or systemd cannot carry on one line. */
export function assertOneLine(path: string, what: string): string {
  if (/[\n\r]/.test(path)) throw usageError(`${what} "${path}" holds a line break; move it to a path without one`)
  return path
}

/** A word for /bin/sh: as it is when it is plain, else in single quotes (a path with spaces). */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`
}

/**
 * The user the system's cron entry or unit runs as: the owner of the bench directory, so a
 * root-installed job writes files its owner can still read; the current user when that owner
 * has no name here.
 */
export function benchOwner(bench: Bench): { name: string; uid: number } {
  const uid = statSync(bench.root).uid
  const me = userInfo()
  if (uid === me.uid) return { name: me.username, uid }
  try {
    for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
      const [name, , id] = line.split(':')
      if (name && Number(id) === uid) return { name, uid }
    }
  } catch {
    // No passwd file to read (a container): the current user, below.
  }
  return { name: me.username, uid: me.uid }
}

/** The current user's home-relative config directory (`XDG_CONFIG_HOME`, else `~/.config`). */
export function userConfigDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.XDG_CONFIG_HOME && env.XDG_CONFIG_HOME.startsWith('/')
    ? env.XDG_CONFIG_HOME
    : resolve(userInfo().homedir, '.config')
}

/**
 * Installs a whole file of ours: written atomically (its directory made), the same content
 * already there is no change, and a different file there is refused (exit 2) unless `force`.
 */
export function installFile(
  file: string,
  content: string,
  options: { force?: boolean; mode: number; what: string },
): boolean {
  if (existsSync(file)) {
    const existing = readFileSync(file, 'utf8')
    if (existing === content) return false
    if (!options.force)
      throw usageError(
        `${file} exists and is not the ${options.what} tenancy would write; ` +
          `pass --force to replace it, or --path FILE to write elsewhere`,
      )
  }
  mkdirSync(dirname(file), { recursive: true })
  writeFileAtomic(file, content, options.mode)
  return true
}

/** The lines of `text` between `begin` and `end` (both included) replaced by `block`, or `block` added at the end. */
export function replaceBlock(
  text: string,
  block: string,
  markers: { begin: string; end: string; where: string; force?: boolean },
): string | undefined {
  const lines = text.split('\n')
  const start = lines.indexOf(markers.begin)
  if (start === -1) {
    const kept = text.replace(/\n*$/, '')
    return `${kept ? `${kept}\n\n` : ''}${block}`
  }
  const stop = lines.indexOf(markers.end, start)
  if (stop === -1)
    throw usageError(`${markers.where} has "${markers.begin}" without "${markers.end}"; fix it by hand, then run again`)
  const existing = `${lines.slice(start, stop + 1).join('\n')}\n`
  if (existing === block) return undefined
  if (!markers.force)
    throw usageError(
      `${markers.where} holds another tenancy block for this bench (changed by hand, or by another tenancy); ` +
        `pass --force to replace it`,
    )
  return [...lines.slice(0, start), ...block.replace(/\n$/, '').split('\n'), ...lines.slice(stop + 1)].join('\n')
}
