"""`preflight completion bash|zsh|fish`: a completion script written from the argparse tree, so it
names every subcommand, option and choice the parser has, with no dependency and no hook at runtime.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass

SHELLS = ("bash", "zsh", "fish")


@dataclass(frozen=True)
class Option:
    flags: tuple[str, ...]  # -r, --recursive
    help: str
    takes_value: bool
    choices: tuple[str, ...]
    repeatable: bool


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    options: tuple[Option, ...]
    positional_choices: tuple[str, ...]  # a positional with choices (completion's SHELL)
    takes_files: bool  # a positional without choices: a file, a folder, a URL


def commands_of(parser: argparse.ArgumentParser) -> list[Command]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {a.dest: a.help or "" for a in sub._choices_actions}
    found = []
    for name, command in sub.choices.items():
        options: list[Option] = []
        choices: tuple[str, ...] = ()
        files = False
        for action in command._actions:
            if action.help == argparse.SUPPRESS:
                continue
            if action.option_strings:
                options.append(
                    Option(
                        tuple(action.option_strings),
                        _short(action.help or ""),
                        action.nargs != 0,
                        tuple(map(str, action.choices or ())),
                        isinstance(action, argparse._AppendAction),
                    )
                )
            elif action.choices:
                choices = tuple(map(str, action.choices))
            else:
                files = True
        found.append(Command(name, _short(helps.get(name, "")), tuple(options), choices, files))
    return found


def _short(text: str) -> str:
    # A menu shows one short line: the help up to its first clause, on one line.
    text = re.split(r";\s|:\s|\s\(", " ".join(text.split()), maxsplit=1)[0].strip(" ,.")
    return text if len(text) <= 60 else text[:59] + "…"


def script(shell: str, parser: argparse.ArgumentParser) -> str:
    commands = commands_of(parser)
    return {"bash": _bash, "zsh": _zsh, "fish": _fish}[shell](commands)


def _bash(commands: list[Command]) -> str:
    cases = []
    for c in commands:
        valued = [o for o in c.options if o.takes_value]
        lines = [f"        {c.name})", '            case "$prev" in']
        for o in valued:
            words = " ".join(o.choices)
            reply = f'compgen -W "{words}" -- "$cur"' if o.choices else 'compgen -f -- "$cur"'
            lines.append(f"                {'|'.join(o.flags)}) COMPREPLY=($({reply})); return ;;")
        lines.append("            esac")
        flags = " ".join(f for o in c.options for f in o.flags)
        rest = " ".join(c.positional_choices)
        other = (
            f'compgen -W "{rest}" -- "$cur"'
            if c.positional_choices
            else 'compgen -f -- "$cur"'
            if c.takes_files
            else "true"
        )
        lines += [
            '            if [[ "$cur" == -* ]]; then',
            f'                COMPREPLY=($(compgen -W "{flags}" -- "$cur"))',
            "            else",
            f"                COMPREPLY=($({other}))",
            "            fi",
            "            ;;",
        ]
        cases.append("\n".join(lines))
    names = " ".join(c.name for c in commands)
    body = "\n".join(cases)
    return f"""# bash completion for preflight: eval "$(preflight completion bash)" in ~/.bashrc
_preflight() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" prev="${{COMP_WORDS[COMP_CWORD-1]}}" cmd="" i
    for ((i = 1; i < COMP_CWORD; i++)); do
        if [[ "${{COMP_WORDS[i]}}" != -* ]]; then cmd="${{COMP_WORDS[i]}}"; break; fi
    done
    COMPREPLY=()
    case "$cmd" in
        "") COMPREPLY=($(compgen -W "{names} --help --version" -- "$cur")) ;;
{body}
    esac
}}
complete -o filenames -o bashdefault -F _preflight preflight
"""


def _zsh_text(text: str) -> str:
    # Inside '…[help]…' of _arguments: no quote, brackets or colons of its own.
    return text.replace("'", "’").replace("[", "(").replace("]", ")").replace(":", " -")


def _zsh(commands: list[Command]) -> str:
    menu = "\n".join(f"        '{c.name}:{_zsh_text(c.help)}'" for c in commands)
    cases = []
    for c in commands:
        specs = []
        for o in c.options:
            value = ""
            if o.takes_value:
                action = f"({' '.join(o.choices)})" if o.choices else "_files"
                value = f":{o.flags[-1].lstrip('-')}:{action}"
            for flag in o.flags:
                star = "*" if o.repeatable else ""
                specs.append(f"'{star}{flag}[{_zsh_text(o.help)}]{value}'")
        if c.positional_choices:
            specs.append(f"':{c.name}:({' '.join(c.positional_choices)})'")
        elif c.takes_files:
            specs.append("'*:source:_files'")
        joined = "".join(f" \\\n                {spec}" for spec in specs)
        cases.append(f"        {c.name})\n            _arguments -s{joined}\n            ;;")
    body = "\n".join(cases)
    return f"""#compdef preflight
# zsh completion for preflight: source <(preflight completion zsh) after compinit in ~/.zshrc
_preflight() {{
    local -a commands
    commands=(
{menu}
    )
    if (( CURRENT == 2 )); then
        _describe -t commands 'preflight command' commands
        return
    fi
    local cmd=$words[2]
    shift words
    (( CURRENT-- ))
    case $cmd in
{body}
    esac
}}
compdef _preflight preflight
"""


def _fish_text(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _fish(commands: list[Command]) -> str:
    lines = [
        "# fish completion for preflight: preflight completion fish | source",
        "# (or save it as ~/.config/fish/completions/preflight.fish)",
        "complete -c preflight -f",
    ]
    names = " ".join(c.name for c in commands)
    for c in commands:
        lines.append(
            f"complete -c preflight -n 'not __fish_seen_subcommand_from {names}' "
            f"-a {c.name} -d {_fish_text(c.help)}"
        )
    for c in commands:
        when = f"-n '__fish_seen_subcommand_from {c.name}'"
        for o in c.options:
            flags = " ".join(
                f"-l {f[2:]}" if f.startswith("--") else f"-s {f[1:]}" for f in o.flags
            )
            value = ""
            if o.takes_value:
                value = f" -x -a '{' '.join(o.choices)}'" if o.choices else " -r -F"
            lines.append(f"complete -c preflight {when} {flags}{value} -d {_fish_text(o.help)}")
        if c.positional_choices:
            lines.append(f"complete -c preflight {when} -a '{' '.join(c.positional_choices)}'")
        elif c.takes_files:
            lines.append(f"complete -c preflight {when} -F")
    return "\n".join(lines) + "\n"
