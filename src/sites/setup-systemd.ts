import { userInfo } from 'node:os'
import { dirname, join } from 'node:path'
import type { Bench } from '../bench.js'
import type { BenchConfig } from '../config/config.js'
import {
  assertOneLine,
  benchOwner,
  defaultScope,
  installFile,
  setupName,
  shellQuote,
  userConfigDir,
  type SetupOptions,
  type SetupResult,
} from './setup.js'

/** Seconds systemd waits past the longest step before it kills a stopping worker. */
const STOP_MARGIN_SECONDS = 30

/** The PATH systemd gives services: a Node elsewhere (nvm) is put first, for the `node` that hooks call. */
const SERVICE_PATH = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin']

/**
 * How long a stopping worker may take: on SIGTERM it claims nothing more and lets each running
 * job finish its current step, so the longest a step may run (`provision.step_timeout`, or a
 * `run` step's own `timeout`), plus a margin for requeueing.
 */
export function workerStopSeconds(config: BenchConfig): number {
  const steps = (config.provision.steps ?? []).map((step) =>
    typeof step === 'string' ? 0 : (step.timeout ?? config.provision.step_timeout),
  )
  return Math.max(config.provision.step_timeout, ...steps) + STOP_MARGIN_SECONDS
}

/** The database services the bench's registry and sites live on, for `After=` (a missing one orders nothing). */
function databaseUnits(config: BenchConfig): string[] {
  const units = new Set<string>()
  if (/^postgres(ql)?:\/\//.test(config.registry) || config.db.type === 'postgres') units.add('postgresql.service')
  if (config.db.type === 'mariadb') units.add('mariadb.service')
  return [...units]
}

// systemd expands %-specifiers in every value and $VARIABLES in command lines.
const specifiers = (value: string) => value.replace(/%/g, '%%')
/** One word of a unit's command line: plain, or in double quotes with `\` and `"` escaped. */
const execWord = (word: string) =>
  specifiers(/^[A-Za-z0-9_@+=:,./-]+$/.test(word) ? word : `"${word.replace(/[\\"]/g, '\\$&')}"`).replace(/\$/g, '$$$$')

/**
 * The unit that runs `tenancy worker` for the bench: restarted on failure, stopped with SIGTERM
 * (the worker's graceful stop; children keep running to the end of their step, `KillMode=mixed`)
 * within `TimeoutStopSec`, in the bench directory, this Node and this tenancy by absolute path.
 * A system unit runs as the bench's owner after the network and the database servers it uses.
 */
export function workerUnit(bench: Bench, options: Pick<SetupOptions, 'node' | 'bin' | 'scope'>): string {
  const scope = options.scope ?? defaultScope()
  const root = assertOneLine(bench.root, 'the bench directory')
  const node = assertOneLine(options.node, 'node')
  const bin = assertOneLine(options.bin, 'the tenancy bin')
  const owner = scope === 'system' ? benchOwner(bench) : undefined
  const after = ['network-online.target', ...databaseUnits(bench.config)]
  const nodeDir = dirname(node)
  const path = SERVICE_PATH.includes(nodeDir)
    ? []
    : [`Environment=${execWord(`PATH=${[nodeDir, ...SERVICE_PATH].join(':')}`)}`]
  return [
    `# Written by "tenancy setup systemd": the tenancy worker of the bench ${specifiers(root)}.`,
    '[Unit]',
    `Description=tenancy worker (${specifiers(root)})`,
    // A user's manager cannot order itself after the machine's units.
    ...(scope === 'system' ? ['Wants=network-online.target', `After=${after.join(' ')}`] : []),
    '',
    '[Service]',
    'Type=simple',
    ...(owner && owner.uid !== 0 ? [`User=${owner.name}`] : []),
    `WorkingDirectory=${specifiers(root)}`,
    '# Secrets the worker needs (TENANCY_DB_ROOT_PASSWORD=...), one VAR=value a line, in a file only its user reads:',
    `EnvironmentFile=-${specifiers(join(root, '.tenancy', 'worker.env'))}`,
    ...path,
    `ExecStart=${[node, bin, 'worker'].map(execWord).join(' ')}`,
    'Restart=on-failure',
    'RestartSec=5',
    '# On SIGTERM the worker claims no more jobs, lets each running one finish its step and requeues it,',
    '# then exits 130: a clean stop. Only then are its children (hooks, run steps) killed.',
    'KillSignal=SIGTERM',
    'KillMode=mixed',
    `TimeoutStopSec=${workerStopSeconds(bench.config)}`,
    'SuccessExitStatus=130',
    '',
    '[Install]',
    `WantedBy=${scope === 'system' ? 'multi-user.target' : 'default.target'}`,
    '',
  ].join('\n')
}

/**
 * `tenancy setup systemd`: the worker's unit and, with `write`, installed as
 * `/etc/systemd/system/tenancy-worker-<name>.service` (`system`, root's default) or in the
 * user's `~/.config/systemd/user/`, or at `path`; a different file there is refused (exit 2)
 * without `force`. `next` is what to run then.
 */
export function setupSystemd(bench: Bench, options: SetupOptions): SetupResult {
  const scope = options.scope ?? defaultScope()
  const unit = `tenancy-worker-${setupName(bench, options.name)}.service`
  const file =
    options.path ??
    (scope === 'system' ? join('/etc/systemd/system', unit) : join(userConfigDir(), 'systemd', 'user', unit))
  const content = workerUnit(bench, { ...options, scope })
  const result = { kind: 'systemd' as const, scope, content, target: file, written: false, changed: false }
  if (!options.write) return { ...result, next: [] }
  const changed = installFile(file, content, { force: options.force, mode: 0o644, what: 'unit' })
  const systemctl = scope === 'system' ? 'systemctl' : 'systemctl --user'
  const next =
    options.path === undefined
      ? [`${systemctl} daemon-reload && ${systemctl} enable --now ${unit}`]
      : [`${systemctl} enable --now ${shellQuote(file)}`]
  // A user's units run only while the user is logged in, unless lingering is on.
  if (scope === 'user') next.push(`loginctl enable-linger ${shellQuote(userInfo().username)}`)
  return { ...result, written: true, changed, next }
}
