"""Allow-always rules: what "allow always" covers, and whether a rule covers a tool use.

A rule covers what the user saw, never a whole tool, and exactly what its label says.
Its text follows Claude Code's rule syntax, so a person reads it as they would in
Claude Code's settings:

    Bash(rm -f one.txt)        that exact command
    Bash(npm test:*)           commands that start with `npm test` (the CLI's own
    Bash(npm test *)           suggestions use the second spelling): no shell operator,
                               no expansion, no option that changes what runs
                               (--prefix, -c, -e, ...); never for an interpreter or a
                               shell (python3, node, bash, env, sudo, ...), whose
                               prefix covers any code
    WebFetch(domain:host)      fetches from that host, of a URL both Python and a
                               browser read the same way (no userinfo, no backslash)
    Edit(/abs/folder/**)       file edits (Edit, Write, MultiEdit, NotebookEdit) of files
                               under that folder, except files that make code run later
                               (.git/, .vscode/, .envrc, .claude/, .mcp.json, ...: those
                               ask each time)
    Edit(/abs/file)            edits of that one file (same exception)
    Tool({"json": "input"})    that tool with exactly that input

The backend's own suggestions for the request are taken where they fit these forms
and cover the request shown (the Claude Code CLI suggests `Bash(git push *)` for
`git push origin main`, the domain for WebFetch, and acceptEdits mode for file edits,
which becomes an edit rule for the session's folder); otherwise the rule is worked
out here from the tool's input, the same way for every backend. Rules live in the
session's record (session/store.py), not in any settings file.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

import attrs

from dave_lsp import paths
from dave_lsp.tools.catalog import FILE_EDITS, file_path

log = logging.getLogger(__name__)

_RULE = re.compile(r"^(?P<tool>[^()\s]+)\((?P<content>.*)\)$", re.DOTALL)

# -- what a Bash prefix rule may cover ---------------------------------------------------

# A prefix rule must not allow `safe-cmd && anything`, nor anything the shell would
# expand into other words (`$X`, `{a,b}`, globs that match a file named `--prefix=..`,
# backslash escapes): a command with any of these is never covered by a prefix rule (an
# exact rule still covers it, since the user saw it).
_NOT_FOR_PREFIX = re.compile(r"[;&|`<>\n\r$(){}*?\[\]\\!]")
# Commands that run whatever code their arguments hold: a prefix of them covers any
# code, so they get exact rules only. Matched on the first word's base name.
INTERPRETERS = frozenset(
    {
        "python", "python2", "python3", "pypy", "pypy3", "node", "nodejs", "deno", "bun",
        "bash", "sh", "zsh", "dash", "ash", "fish", "ksh", "mksh", "csh", "tcsh", "busybox",
        "pwsh", "powershell", "perl", "ruby", "irb", "php", "lua", "luajit", "tclsh", "wish",
        "julia", "R", "Rscript", "ghci", "runghc", "osascript", "awk", "gawk", "mawk", "nawk",
        "sed", "npx", "pnpx", "bunx", "uvx", "pipx", "env", "xargs", "sudo", "doas", "su",
        "runuser", "exec", "eval", "command", "builtin", "source", ".", "nohup", "nice",
        "ionice", "timeout", "time", "watch", "setsid", "stdbuf", "unbuffer", "flock",
        "taskset", "chroot", "strace", "ltrace", "gdb", "script", "expect", "parallel",
        "nix-shell", "firejail", "ssh",
    }
)  # fmt: skip
_VERSIONED_INTERPRETER = re.compile(r"^(python|pypy|ruby|perl|php|node|lua)[0-9.]+$")
# Two words that run whatever follows them (`uv run anything`).
RUNNERS = frozenset(
    {
        ("uv", "run"), ("uv", "tool"), ("npm", "exec"), ("npm", "x"), ("pnpm", "exec"),
        ("pnpm", "dlx"), ("yarn", "exec"), ("yarn", "dlx"), ("yarn", "node"), ("poetry", "run"),
        ("pipenv", "run"), ("pdm", "run"), ("hatch", "run"), ("conda", "run"),
        ("mamba", "run"), ("bundle", "exec"), ("go", "run"), ("docker", "run"),
        ("docker", "exec"), ("podman", "run"), ("podman", "exec"), ("kubectl", "exec"),
        ("git", "-c"),
    }
)  # fmt: skip
# Options that change what a command runs or where its code comes from: a prefix rule
# never covers a command that adds one. Long options also match an abbreviation (npm's
# and argparse's parsers take `--pref` for `--prefix`) and `--opt=value`.
RUN_OPTIONS = (
    "--prefix", "--script-shell", "--node-options", "--eval", "--require", "--import",
    "--loader", "--experimental-loader", "--exec", "--exec-path", "--upload-pack",
    "--receive-pack", "--config", "--userconfig", "--globalconfig", "--registry",
    "--rcfile", "--init-file", "--git-dir", "--work-tree", "--manifest-path", "--makefile",
    "--file", "--shell", "--interpreter", "--preload", "--cwd", "--chdir", "--directory",
    "--rootdir", "--plugin", "--config-file", "--ext-diff", "--output", "--cmd",
    "--command", "--pre-command", "--run", "--script",
)  # fmt: skip
# Short options that do so, alone or with their value joined (`-cfoo`), and find's.
_RUN_SHORT = ("-c", "-e", "-C")
_RUN_FIND = frozenset({"-exec", "-execdir", "-ok", "-okdir", "-delete", "-fprint", "-fls"})

# -- what an edit rule may cover ---------------------------------------------------------

# Files whose content makes code run later (git hooks and config, editor tasks and
# settings, direnv, Claude Code's own settings and MCP servers, CI): an edit rule never
# covers them, anywhere in the tree; editing one asks each time.
_CODE_DIRS = frozenset({".git", ".vscode", ".idea", ".claude", ".husky", ".devcontainer"})
_CODE_FILES = frozenset({".envrc", ".mcp.json", ".npmrc", ".yarnrc", ".yarnrc.yml"})


@attrs.frozen
class Suggestion:
    """A backend's proposal for "allow always", in a backend-neutral form.

    `kind` is "addRules" (with `rules`: (tool name, rule content or None) pairs) or
    "setMode" (with `mode`)."""

    kind: str
    rules: tuple[tuple[str, str | None], ...] = ()
    mode: str | None = None
    behavior: str | None = None


@attrs.frozen
class Rule:
    """One allow-always rule of a session."""

    rule: str
    label: str
    created_at: str = ""

    def to_json(self) -> dict[str, str]:
        return {"rule": self.rule, "label": self.label, "createdAt": self.created_at}


def _canonical(tool_input: dict[str, Any]) -> str:
    return json.dumps(tool_input, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def runs_code_later(path: str, cwd: str) -> bool:
    """Whether `path` (absolute, links resolved) is a file that makes code run later
    (a git hook or config, editor tasks, .envrc, .env*, Claude Code's settings,
    .mcp.json, a CI workflow): named by its parts below the session's folder, or by
    all of its parts when it lies outside."""
    folder = os.path.realpath(cwd)
    below = os.path.relpath(path, folder) if paths.within(path, folder) else path
    parts = [p.casefold() for p in below.split(os.sep) if p and p != "."]
    for index, part in enumerate(parts):
        if part in _CODE_DIRS or part in _CODE_FILES or part.startswith(".env"):
            return True
        if part == ".github" and parts[index + 1 : index + 2] == ["workflows"]:
            return True
    return False


# -- URLs --------------------------------------------------------------------------------

_CONTROL_OR_SPACE = re.compile(r"[\x00-\x20\x7f]")
_C0_OR_SPACE = "".join(map(chr, range(0x21)))


def _python_host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def _whatwg_host(url: str) -> str:
    """The host a browser (the WHATWG URL parser) reads in an http(s) URL: `\\` counts
    as `/`, any number of slashes may follow the scheme, and the userinfo ends at the
    authority's last `@`. Other schemes: ""."""
    # The parser trims C0 controls and spaces at both ends, and drops tabs and newlines.
    text = re.sub(r"[\t\n\r]", "", url.strip(_C0_OR_SPACE))
    scheme, colon, rest = text.partition(":")
    if not colon or scheme.lower() not in ("http", "https"):
        return ""
    authority = re.split(r"[/\\?#]", rest.lstrip("/\\"), maxsplit=1)[0]
    host = authority.rpartition("@")[2]
    if host.startswith("["):
        host = host[: host.find("]") + 1]
    else:
        host = host.partition(":")[0]
    return unquote(host).lower()


def fetch_host(url: Any) -> str:
    """The host of a URL a WebFetch rule may match: only when it has no userinfo, no
    backslash, no control character or space, and Python's and the WHATWG parser read
    the same host (the CLI checks the URL with one and fetches with the other); else "",
    which no rule matches, so the request asks."""
    if not isinstance(url, str) or "\\" in url or _CONTROL_OR_SPACE.search(url):
        return ""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    if parts.scheme.lower() not in ("http", "https") or "@" in parts.netloc:
        return ""
    python = _python_host(url)
    return python if python and python == _whatwg_host(url) else ""


def url_hosts(url: Any) -> set[str]:
    """Every host some parser reads in `url` (for rules that deny: any of them counts)."""
    if not isinstance(url, str):
        return set()
    return {host for host in (_python_host(url), _whatwg_host(url)) if host}


# -- Bash --------------------------------------------------------------------------------


def prefix_of(content: str) -> str | None:
    """The command prefix of a prefix rule's content (`npm test:*` and the CLI's
    `npm test *` both give `npm test`), or None for an exact rule."""
    for suffix in (":*", " *"):
        if content.endswith(suffix) and content[: -len(suffix)].strip():
            return content[: -len(suffix)].strip()
    return None


def _words(command: str) -> list[str] | None:
    try:
        return shlex.split(command)
    except ValueError:
        return None


def runs_any_code(prefix_words: Sequence[str]) -> bool:
    """Whether a prefix made of these words runs whatever follows it (an interpreter, a
    shell, a wrapper such as env or sudo, `uv run`, an environment assignment)."""
    if not prefix_words:
        return True
    first = os.path.basename(prefix_words[0])
    if "=" in prefix_words[0] or first in INTERPRETERS or _VERSIONED_INTERPRETER.match(first):
        return True
    return (first, *prefix_words[1:2]) in RUNNERS


def _changes_what_runs(word: str) -> bool:
    lowered = word.lower().replace("_", "-")
    if lowered.startswith("--"):
        name = lowered.split("=", 1)[0]
        return len(name) > 3 and any(option.startswith(name) for option in RUN_OPTIONS)
    if word in _RUN_FIND:
        return True
    return any(word.startswith(short) for short in _RUN_SHORT)


def prefix_covers(prefix: str, command: str) -> bool:
    """Whether a prefix rule for `prefix` covers `command`: the command's words start
    with the prefix's, it has no shell operator or expansion, the prefix is not an
    interpreter's, and no word after the prefix changes what runs."""
    if _NOT_FOR_PREFIX.search(command):
        return False
    words, start = _words(command), _words(prefix)
    if not words or not start or words[: len(start)] != start or runs_any_code(start):
        return False
    return not any(_changes_what_runs(word) for word in words[len(start) :])


# -- rules -------------------------------------------------------------------------------


def parse(rule: str) -> tuple[str, str] | None:
    """(tool, content) of a rule, or None for a rule without content (a bare tool name,
    which earlier versions stored and which no longer covers anything)."""
    match = _RULE.match(rule)
    if match is None or not match["content"]:
        return None
    return match["tool"], match["content"]


def covers(rule: str, tool_name: str, tool_input: dict[str, Any], cwd: str) -> bool:
    """Whether `rule` allows this tool use."""
    parsed = parse(rule)
    if parsed is None:
        return False
    tool, content = parsed
    if tool == "Edit" and tool_name in FILE_EDITS:
        path = file_path(tool_input)
        if not path:
            return False
        target = paths.real(path, cwd)
        if runs_code_later(target, cwd):
            return False
        if content.endswith("/**"):
            return paths.within(target, os.path.realpath(content[:-3] or os.sep))
        return target == os.path.realpath(content)
    if tool != tool_name:
        return False
    if tool == "Bash":
        command = tool_input.get("command")
        if not isinstance(command, str):
            return False
        prefix = prefix_of(content)
        return command == content if prefix is None else prefix_covers(prefix, command)
    if tool == "WebFetch" and content.startswith("domain:"):
        host = fetch_host(tool_input.get("url"))
        return bool(host) and host == content.removeprefix("domain:").lower()
    return content == _canonical(tool_input)


def propose(
    tool_name: str, tool_input: dict[str, Any], suggestions: Sequence[Suggestion], cwd: str
) -> Rule | None:
    """The rule that "allow always" on this request would add; None when no rule can
    cover it (an edit of a file that makes code run later asks each time)."""
    command = tool_input.get("command") if tool_name == "Bash" else None
    for suggestion in suggestions:
        if suggestion.kind != "addRules" or suggestion.behavior not in (None, "allow"):
            continue
        for tool, content in suggestion.rules:
            if tool != tool_name or not content:
                continue
            if tool == "Bash" and isinstance(command, str):
                prefix = prefix_of(content)
                # Offered only when it covers the command shown (else the exact one).
                if prefix is not None and prefix_covers(prefix, command):
                    label = f"commands that start with `{prefix}`"
                    return Rule(f"Bash({content})", label)
            if tool == "WebFetch" and content.startswith("domain:") and len(content) > 7:
                if fetch_host(tool_input.get("url")) == content[7:].lower():
                    return Rule(f"WebFetch({content})", f"fetches from {content[7:]}")
    if tool_name in FILE_EDITS and (path := file_path(tool_input)):
        folder = os.path.realpath(cwd)
        target = paths.real(path, cwd)
        if runs_code_later(target, cwd):
            return None
        if paths.within(target, folder):
            return Rule(f"Edit({folder}/**)", "all file edits in this session's folder")
        return Rule(f"Edit({target})", f"edits of {target}")
    if isinstance(command, str) and command:
        return Rule(f"Bash({command})", "this exact command")
    if tool_name == "WebFetch" and (host := fetch_host(tool_input.get("url"))):
        return Rule(f"WebFetch(domain:{host})", f"fetches from {host}")
    return Rule(f"{tool_name}({_canonical(tool_input)})", f"this exact {tool_name} input")


def load(entries: Any, session_id: str) -> list[Rule]:
    """Rules from a stored record. Earlier versions stored bare tool names, which
    allowed every use of the tool: those are dropped, with a log line."""
    rules: list[Rule] = []
    for entry in entries if isinstance(entries, list) else []:
        rule = entry.get("rule") if isinstance(entry, dict) else entry
        if isinstance(entry, dict) and isinstance(rule, str) and parse(rule) is not None:
            label, created = entry.get("label"), entry.get("createdAt")
            rules.append(Rule(rule, str(label or ""), str(created or "")))
            continue
        log.warning(
            "session %s: dropped the stored rule %r: it allowed every use of a tool; "
            "allow always again to add a rule for one command or folder",
            session_id,
            rule,
        )
    return rules
