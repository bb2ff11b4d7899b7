// Shell completion: `tenancy completion bash|zsh|fish` prints a small script that, on each Tab,
// asks `tenancy __complete SHELL -- WORDS...` what may come next. The answers are worked out
// here from the commander program itself (its commands, options, arguments and choices), so
// they never go stale; site, tenant and app names are read from the bench in the working
// directory, read-only (sites/completion-names.ts).
import { Argument, Command, Option } from 'commander'
import { Output } from '../output/output.js'
import type { CompletionNameKind } from '../sites/completion-names.js'
import { completionScript, SHELLS, type Shell } from './completion-scripts.js'

/** What a flag's value or a positional argument is, for completing it. */
type ValueKind = 'site' | 'tenant' | 'app' | 'file' | 'dir' | 'command' | 'text'

/**
 * The flags whose value names a site, tenant or app, or a path. Any other `--…-file` flag takes
 * a file; a flag with choices (`--db-type`) offers them; the rest take free text.
 */
export const FLAG_VALUES: Readonly<Record<string, ValueKind>> = {
  '--site': 'site',
  '--skip-site': 'site',
  '--tenant': 'tenant',
  '--app': 'app',
  '--install-app': 'app',
  '--config': 'file',
  '--path': 'file',
  '--from-backup': 'dir',
  '--backup-path': 'dir',
}

/**
 * The positional arguments that name an existing site, tenant or app, or a path, by command
 * (in order; the last stands for the rest of a variadic one). Arguments not listed (a new
 * site's name, an email, a key) take free text.
 */
export const ARGUMENT_VALUES: Readonly<Record<string, readonly ValueKind[]>> = {
  init: ['dir'],
  'drop-site': ['site'],
  'rename-site': ['site', 'text'],
  use: ['site'],
  'install-app': ['app'],
  'uninstall-app': ['app'],
  restore: ['site', 'dir'],
  execute: ['file'],
  provision: ['tenant'],
  'tenant show': ['tenant'],
  'tenant suspend': ['tenant'],
  'tenant resume': ['tenant'],
  'tenant update': ['tenant'],
  'tenant delete': ['tenant'],
  'tenant rename': ['tenant'],
  // commander's own `help [command]`, at any level.
  help: ['command'],
}

/** One candidate: what replaces the word being completed, and what it is (zsh and fish show it). */
export interface CompletionItem {
  value: string
  description?: string
}

/** What the shell should offer: these words, or the files or directories it completes itself. */
export interface Completion {
  mode: 'words' | 'files' | 'dirs'
  items: CompletionItem[]
}

/** Reads names from the bench; an unreadable bench gives none. */
export type NameSource = (kind: CompletionNameKind) => Promise<string[]>

const NAME_KIND: Record<'site' | 'tenant' | 'app', CompletionNameKind> = {
  site: 'sites',
  tenant: 'tenants',
  app: 'apps',
}

/** The full name of a command as typed: `tenant create`; '' for the program. */
function pathOf(chain: Command[]): string {
  return chain
    .slice(1)
    .map((c) => c.name())
    .join(' ')
}

/** A command's subcommands as typed, commander's implicit `help` included; hidden ones only with `hidden`. */
function subcommands(command: Command, hidden = false): Command[] {
  const visible = command.createHelp().visibleCommands(command)
  return hidden ? [...command.commands.filter((c) => !visible.includes(c)), ...visible] : visible
}

/** The options a command accepts: its own, then its parents' (the program's are global), the help flag included. */
function optionsOf(chain: Command[]): Option[] {
  return chain.toReversed().flatMap((command) => command.createHelp().visibleOptions(command))
}

function findOption(chain: Command[], flag: string): Option | undefined {
  return chain
    .toReversed()
    .flatMap((command) => [...command.options, ...command.createHelp().visibleOptions(command)])
    .find((o) => o.long === flag || o.short === flag)
}

const takesValue = (option: Option) => option.required || option.optional
const firstLine = (text: string) => text.split('\n')[0]!.trim()

/** What a flag's value is: its choices, else the table above, else a file for `--…-file`, else free text. */
function flagValue(option: Option): ValueKind | readonly string[] {
  if (option.argChoices) return option.argChoices
  const long = option.long ?? ''
  return FLAG_VALUES[long] ?? (long.endsWith('-file') ? 'file' : 'text')
}

/** What the positional argument at `index` of the command is. */
function argumentValue(chain: Command[], index: number): ValueKind | readonly string[] {
  const command = chain.at(-1)!
  const declared: readonly Argument[] = command.registeredArguments
  const last = declared.at(-1)
  const argument = declared[index] ?? (last?.variadic ? last : undefined)
  if (!argument) return 'text'
  if (argument.argChoices) return argument.argChoices
  const kinds = ARGUMENT_VALUES[command.name() === 'help' ? 'help' : pathOf(chain)] ?? []
  return kinds[Math.min(index, kinds.length - 1)] ?? 'text'
}

/** The candidates of a kind of value that start with `partial`, each with `prefix` before it (`--site=`). */
async function values(
  kind: ValueKind | readonly string[],
  partial: string,
  chain: Command[],
  names: NameSource,
  prefix = '',
): Promise<Completion> {
  const words = (list: CompletionItem[]): Completion => ({
    mode: 'words',
    items: list
      .filter((item) => item.value.startsWith(partial))
      .map((item) => ({ ...item, value: prefix + item.value })),
  })
  if (typeof kind !== 'string') return words(kind.map((value) => ({ value })))
  switch (kind) {
    case 'file':
      return { mode: 'files', items: [] }
    case 'dir':
      return { mode: 'dirs', items: [] }
    case 'text':
      return { mode: 'words', items: [] }
    case 'command':
      // `help COMMAND`: the commands beside it.
      return words(
        subcommands(chain.at(-2) ?? chain[0]!)
          .filter((c) => c.name() !== 'help')
          .map((c) => ({ value: c.name(), description: firstLine(c.description()) })),
      )
    case 'site':
    case 'tenant':
    case 'app': {
      const found = (await names(NAME_KIND[kind]).catch(() => [])).map((value) => ({ value }))
      // The fleet commands (those with --skip-site) also take `--site all`.
      const fleet = kind === 'site' && chain.at(-1)!.options.some((o) => o.long === '--skip-site')
      return words(fleet ? [{ value: 'all', description: 'every site' }, ...found] : found)
    }
    default:
      return kind satisfies never
  }
}

/**
 * What may stand in the last of `words` (the words typed after `tenancy`, the last one being
 * completed, '' for a new one), parsed as commander parses them: global flags anywhere,
 * subcommands before positional arguments, a flag's value after it or after `=`, `--` ending
 * the flags. Bash splits `--site=acme` into `--site`, `=`, `acme`; zsh and fish do not.
 */
export async function complete(program: Command, words: string[], names: NameSource): Promise<Completion> {
  const typed = words.slice(0, -1)
  let current = words.at(-1) ?? ''
  const chain: Command[] = [program]
  let positional = 0
  let pending: Option | undefined
  let flagsEnded = false
  for (const word of typed) {
    if (pending) {
      // bash's `--site = acme`: the `=` is part of the flag, the next word its value.
      if (word === '=') continue
      const optionalValue = pending.optional && !pending.required
      pending = undefined
      if (!(optionalValue && word.startsWith('-'))) continue
    }
    if (!flagsEnded && word === '--') {
      flagsEnded = true
      continue
    }
    if (!flagsEnded && word.startsWith('-') && word !== '-') {
      if (word.startsWith('--')) {
        const option = findOption(chain, word.split('=')[0]!)
        if (option && takesValue(option) && !word.includes('=')) pending = option
      } else {
        // `-yv`, or `-c 3` / `-c3`: the first flag that takes a value takes the rest (or the next word).
        for (const [i, letter] of [...word.slice(1)].entries()) {
          const option = findOption(chain, `-${letter}`)
          if (option && takesValue(option)) {
            if (i === word.length - 2) pending = option
            break
          }
        }
      }
      continue
    }
    const command = chain.at(-1)!
    const sub =
      positional === 0 && !flagsEnded
        ? subcommands(command, true).find((c) => c.name() === word || c.aliases().includes(word))
        : undefined
    if (sub) chain.push(sub)
    else positional++
  }
  if (pending && !(pending.optional && !pending.required)) {
    return values(flagValue(pending), current === '=' ? '' : current, chain, names)
  }
  if (!flagsEnded && current.startsWith('--') && current.includes('=')) {
    const [flag] = current.split('=', 1) as [string]
    const option = findOption(chain, flag)
    if (!option || !takesValue(option)) return { mode: 'words', items: [] }
    return values(flagValue(option), current.slice(flag.length + 1), chain, names, `${flag}=`)
  }
  if (!flagsEnded && current.startsWith('-')) {
    const seen = new Set<string>()
    const items = optionsOf(chain)
      .filter((o) => o.long && !seen.has(o.long) && seen.add(o.long))
      .map((o) => ({ value: o.long!, description: firstLine(o.description) }))
      .filter((item) => item.value.startsWith(current))
    return { mode: 'words', items }
  }
  const command = chain.at(-1)!
  if (positional === 0 && command.commands.length > 0) {
    current = current.trim()
    return {
      mode: 'words',
      items: subcommands(command)
        .flatMap((c) => [c.name(), ...c.aliases()].map((value) => ({ value, description: firstLine(c.description()) })))
        .filter((item) => item.value.startsWith(current)),
    }
  }
  return values(argumentValue(chain, positional), current, chain, names)
}

/** The engine's answer as a shell reads it: the mode on the first line, then one candidate a line. */
export function formatCompletion(shell: Shell, completion: Completion): string {
  const clean = (text: string) => text.replace(/[\t\n\r]+/g, ' ')
  const lines = completion.items.map(({ value, description }) => {
    if (shell === 'bash' || !description) return shell === 'zsh' ? value.replace(/:/g, '\\:') : value
    return shell === 'zsh' ? `${value.replace(/:/g, '\\:')}:${clean(description)}` : `${value}\t${clean(description)}`
  })
  return [completion.mode, ...lines].join('\n')
}

/** The names completion reads, loaded only when asked (the rest of the CLI never needs them). */
const readNames: NameSource = async (kind) => {
  const { completionNames } = await import('../sites/completion-names.js')
  return completionNames(kind)
}

/** The kinds `--names` prints (each a `CompletionNameKind`; listed here so --help loads no bench code). */
const NAME_KINDS = ['sites', 'tenants', 'apps'] as const satisfies readonly CompletionNameKind[]

interface CompletionFlags {
  names?: CompletionNameKind
}

/**
 * `tenancy completion bash|zsh|fish` (the script), and the hidden pieces the scripts call:
 * `tenancy __complete SHELL -- WORDS...` and `tenancy completion --names sites|tenants|apps`.
 * Neither opens the bench as a command does: no output but the answer, nothing written, and
 * nothing at all (exit 0) outside a bench or when its registry cannot be read.
 */
export function registerCompletionCommand(program: Command): void {
  program
    .command('completion')
    .description('print a shell completion script (commands, flags, and the bench’s sites, tenants and apps)')
    .addArgument(new Argument('[shell]', 'the shell the script is for').choices(SHELLS))
    .addOption(new Option('--names <kind>', 'print the names of the bench, one a line').choices(NAME_KINDS).hideHelp())
    .addHelpText(
      'after',
      '\nInstall:\n' +
        "  bash: echo 'source <(tenancy completion bash)' >> ~/.bashrc\n" +
        "  zsh:  echo 'source <(tenancy completion zsh)' >> ~/.zshrc   (after compinit)\n" +
        '  fish: tenancy completion fish > ~/.config/fish/completions/tenancy.fish',
    )
    .action(async (shell: Shell | undefined, flags: CompletionFlags, command: Command) => {
      const out = new Output({})
      if (flags.names) {
        const names = await readNames(flags.names).catch(() => [])
        out.result(null, () => names.join('\n') || undefined)
        return
      }
      if (!shell) command.error('error: completion needs a shell: tenancy completion bash|zsh|fish', { exitCode: 2 })
      out.result(null, () => completionScript(shell!))
    })

  program
    .command('__complete', { hidden: true })
    .description('what may come next on a tenancy command line (the completion scripts call it)')
    .addArgument(new Argument('<shell>').choices(SHELLS))
    .argument('[words...]', 'the words typed after "tenancy", the last one being completed')
    .action(async (shell: Shell, words: string[]) => {
      const completion = await complete(program, words.length > 0 ? words : [''], readNames)
      new Output({}).result(null, () => formatCompletion(shell, completion))
    })
}
