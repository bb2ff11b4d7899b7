// The completion scripts `tenancy completion SHELL` prints. Each is only glue: it hands the
// words typed so far to `tenancy __complete SHELL -- WORDS...` (cli/completion.ts) and offers
// what comes back. The first line of the answer says what to offer: `words` (the candidates
// follow, one a line), or `files` / `dirs` (the shell's own path completion).

export const SHELLS = ['bash', 'zsh', 'fish'] as const
export type Shell = (typeof SHELLS)[number]

// The command the user typed (`tenancy`, or a path to it) runs the engine, so the script
// follows whichever tenancy is on the PATH, and never goes stale after an upgrade.
const BASH = `# bash completion for tenancy. Install: echo 'source <(tenancy completion bash)' >> ~/.bashrc
_tenancy_complete() {
    local cur=\${COMP_WORDS[COMP_CWORD]} IFS=$'\\n'
    local -a answer
    answer=($("\${COMP_WORDS[0]}" __complete bash -- "\${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null))
    # bash splits --site=acme at the "=": the word being completed is what follows it.
    [[ $cur == = ]] && cur=
    COMPREPLY=()
    case \${answer[0]} in
        files) compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -f -- "$cur")) ;;
        dirs) compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -d -- "$cur")) ;;
        words) COMPREPLY=("\${answer[@]:1}") ;;
    esac
    return 0
}
complete -F _tenancy_complete tenancy
`

const ZSH = `#compdef tenancy
# zsh completion for tenancy. Install: echo 'source <(tenancy completion zsh)' >> ~/.zshrc (after compinit),
# or save it as _tenancy in a directory of $fpath.
_tenancy() {
    local -a answer candidates
    answer=("\${(@f)$("\${words[1]}" __complete zsh -- "\${(@)words[2,CURRENT]}" 2>/dev/null)}")
    case $answer[1] in
        files) _files ;;
        dirs) _files -/ ;;
        words)
            candidates=("\${(@)answer[2,-1]}")
            (( $#candidates )) && _describe -t values tenancy candidates ;;
    esac
}
if [[ $funcstack[1] == _tenancy ]]; then
    _tenancy "$@"
else
    compdef _tenancy tenancy
fi
`

const FISH = `# fish completion for tenancy. Install: tenancy completion fish > ~/.config/fish/completions/tenancy.fish
function __tenancy_complete
    set -l typed (commandline -opc)
    set -l current (commandline -ct)
    set -l answer ($typed[1] __complete fish -- $typed[2..-1] "$current" 2>/dev/null)
    switch "$answer[1]"
        case files
            __fish_complete_path "$current"
        case dirs
            __fish_complete_directories "$current"
        case words
            printf '%s\\n' $answer[2..-1]
    end
end
complete -c tenancy -f -a '(__tenancy_complete)'
`

/** The script `tenancy completion SHELL` prints. */
export function completionScript(shell: Shell): string {
  switch (shell) {
    case 'bash':
      return BASH
    case 'zsh':
      return ZSH
    case 'fish':
      return FISH
    default:
      return shell satisfies never
  }
}
