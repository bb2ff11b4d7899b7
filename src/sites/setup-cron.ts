import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import type { Bench } from '../bench.js'
import { TenancyError, usageError } from '../errors.js'
import { writeFileAtomic } from '../util/json-file.js'
import {
  assertOneLine,
  benchOwner,
  defaultScope,
  installFile,
  replaceBlock,
  setupName,
  shellQuote,
  type SetupOptions,
  type SetupResult,
} from './setup.js'

/** The bench's recurring work: when (crontab time fields), the command and its log. */
const JOBS = [
  { when: '*/5 * * * *', args: ['pending-create'], log: 'pending-create', what: 'keep the pending pool full' },
  { when: '30 2 * * *', args: ['backup', '--site', 'all'], log: 'backup', what: 'back every site up nightly' },
  {
    when: '15 3 * * 0',
    args: ['pending-clear', '--older-than-days', '7'],
    log: 'pending-clear',
    what: 'clear pending tenants older than a week, weekly',
  },
] as const

// The directories cron's own PATH has: a Node elsewhere (nvm, /usr/local) leads PATH for the
// commands tenancy runs in turn (hooks and run steps calling `node`).
const CRON_PATH = ['/usr/bin', '/bin']

/**
 * The block of crontab lines for the bench, between `# BEGIN tenancy <bench>` and
 * `# END tenancy <bench>`: each job `cd`s to the bench and runs this Node and this tenancy by
 * absolute path (cron's PATH is `/usr/bin:/bin`), appending to `<bench>/logs/<job>.log`. With
 * `user`, each line carries the user field of /etc/cron.d files.
 */
export function cronBlock(bench: Bench, options: Pick<SetupOptions, 'node' | 'bin'>, user?: string): string {
  const root = assertOneLine(bench.root, 'the bench directory')
  const node = assertOneLine(options.node, 'node')
  const bin = assertOneLine(options.bin, 'the tenancy bin')
  const nodeDir = dirname(node)
  const path = CRON_PATH.includes(nodeDir) ? '' : `PATH=${shellQuote(nodeDir)}:"$PATH" `
  // cron turns an unescaped % into a line break.
  const cron = (command: string) => command.replace(/%/g, '\\%')
  const lines = JOBS.map((job) => {
    const log = join(root, 'logs', `${job.log}.log`)
    const command =
      `cd ${shellQuote(root)} && mkdir -p logs && ${path}${shellQuote(node)} ${shellQuote(bin)} ` +
      `${job.args.join(' ')} >> ${shellQuote(log)} 2>&1`
    return `# ${job.what}\n${job.when}${user ? ` ${user}` : ''} ${cron(command)}`
  })
  return [
    `# BEGIN tenancy ${root}`,
    '# Written by "tenancy setup cron"; "tenancy setup cron --write" replaces only this block.',
    '# cron passes none of your environment: secrets the bench needs (TENANCY_DB_ROOT_PASSWORD, ...) are not here.',
    ...lines,
    `# END tenancy ${root}`,
    '',
  ].join('\n')
}

/**
 * `tenancy setup cron`: the crontab lines for the bench and, with `write`, installed. The
 * user's crontab (through `crontab -l` / `crontab -`) gets the marked block merged in, the
 * rest of it kept as it was; as root (`system`), `/etc/cron.d/tenancy-<name>` is the whole
 * file. `path` writes either form to a file instead. A block or file of ours that differs
 * is refused (exit 2) without `force`.
 */
export function setupCron(bench: Bench, options: SetupOptions): SetupResult {
  const scope = options.scope ?? defaultScope()
  const name = setupName(bench, options.name)
  const block = cronBlock(bench, options, scope === 'system' ? benchOwner(bench).name : undefined)
  const markers = { begin: block.split('\n')[0]!, end: `# END tenancy ${bench.root}`, force: options.force }
  if (scope === 'system') {
    const file = options.path ?? `/etc/cron.d/tenancy-${name}`
    const result = { kind: 'cron' as const, scope, content: block, target: file, written: false, changed: false }
    if (!options.write) return { ...result, next: [] }
    // cron ignores a cron.d file that others may write.
    const changed = installFile(file, block, { force: options.force, mode: 0o644, what: 'cron file' })
    const next = options.path ? [`install -m 0644 ${shellQuote(file)} /etc/cron.d/tenancy-${name}`] : []
    return { ...result, written: true, changed, next }
  }
  if (options.path !== undefined) {
    const file = options.path
    const result = { kind: 'cron' as const, scope, content: block, target: file, written: false, changed: false }
    if (!options.write) return { ...result, next: [] }
    const text = existsSync(file) ? readFileSync(file, 'utf8') : ''
    const merged = replaceBlock(text, block, { ...markers, where: file })
    if (merged !== undefined) writeFileAtomic(file, merged, 0o600)
    return { ...result, written: true, changed: merged !== undefined, next: [`crontab ${shellQuote(file)}`] }
  }
  const target = 'the crontab of the current user'
  const result = { kind: 'cron' as const, scope, content: block, target, written: false, changed: false }
  if (!options.write) return { ...result, next: [] }
  const merged = replaceBlock(readCrontab(), block, { ...markers, where: 'your crontab' })
  if (merged !== undefined) writeCrontab(merged)
  return { ...result, written: true, changed: merged !== undefined, next: [] }
}

/** Runs the `crontab` program; its absence is a usage error naming the ways around it. */
function crontab(args: string[], input?: string) {
  const run = spawnSync('crontab', args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'] })
  if (run.error) {
    if ((run.error as NodeJS.ErrnoException).code === 'ENOENT')
      throw usageError(
        'no "crontab" program here; install cron, or write the lines to a file with --path FILE (or --system as root)',
      )
    throw new TenancyError(`cannot run crontab: ${run.error.message}`, { cause: run.error })
  }
  return run
}

/** The current user's crontab; empty when there is none yet. */
function readCrontab(): string {
  const run = crontab(['-l'])
  if (run.status === 0) return run.stdout
  // `crontab -l` exits 1 both for "no crontab for USER" and for real failures; only its message
  // tells them apart, and taking a failure for "none" would replace the user's entries with ours.
  if (/no crontab/i.test(run.stderr)) return ''
  throw new TenancyError(`crontab -l failed: ${run.stderr.trim() || `exit ${run.status}`}; your crontab is unchanged`)
}

function writeCrontab(text: string): void {
  const run = crontab(['-'], text)
  if (run.status !== 0)
    throw new TenancyError(`crontab - failed: ${run.stderr.trim() || `exit ${run.status}`}; your crontab is unchanged`)
}
