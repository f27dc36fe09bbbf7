"""The user's Claude Code permission rules, applied to the tools dave-lsp runs itself.

Claude Code enforces the `permissions.allow`, `ask` and `deny` rules of its settings
for its own tools. dave-lsp runs some tools in the CLI's place: an ACP client's file
system as the model's Read, Write and Edit (`mcp__acp__Read` to the CLI, which no
`Read(...)` rule matches), and every tool of the OpenAI agent. This module reads the
same rules and matches them, with Claude Code's syntax and precedence (deny, then ask,
then allow), so that the policy (permissions/policy.py) holds them for those tools too:

    Tool                      every use of the tool (`Edit` covers Write, MultiEdit,
                              NotebookEdit; `Read` covers Grep, Glob, LS)
    Bash(npm test)            that command (deny and ask also match one part of a
    Bash(npm test:*)          chained command); a prefix (also `npm test *`); a
    Bash(git * main)          pattern with `*` (deny and ask only)
    Read(pattern), Edit(...)  gitignore-style paths: `//abs` from the root, `~/` from
                              HOME, `/p` from the settings file's root (the folder
                              holding `.claude`), `./p` or `p` from the session's cwd;
                              `*`, `**`, `?`, `[...]`; a pattern without a slash
                              matches at any depth
    WebFetch(domain:host)     fetches from that host (`*.host` for its subdomains)
    mcp__server[__tool]       that MCP server's tools, or one of them

Where they come from: the managed settings (`/etc/claude-code/managed-settings.json`),
the user's settings (`settings.json` in `CLAUDE_CONFIG_DIR`, else `~/.claude`, with
HOME and CLAUDE_CONFIG_DIR taken from the session's env over the server's, as the CLI
runs with them), and, for a folder the user trusts only, the folder's
`.claude/settings.json` and `.claude/settings.local.json`. Files are read again when
they change.

An allow rule here is never broader than Claude Code's reading of it: it never covers
a chained command or an edit of a file that makes code run later (permissions/rules.py); deny and
ask rules are read broadly (any host a parser sees in a URL, the path with and without
its links resolved).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Literal

import attrs

from dave_lsp import paths
from dave_lsp.permissions import rules as allow_rules
from dave_lsp.tools.catalog import FILE_EDITS, READ_ONLY, file_path

log = logging.getLogger(__name__)

Behavior = Literal["deny", "ask", "allow"]
BEHAVIORS: Final[tuple[Behavior, ...]] = ("deny", "ask", "allow")
MANAGED: Final = (
    Path("/etc/claude-code/managed-settings.json"),
    Path("/Library/Application Support/ClaudeCode/managed-settings.json"),
)
MAX_SETTINGS_BYTES = 1 << 20
# What a `Read` rule covers besides Read (Claude Code: "best effort" for tools that read).
# Where a chained command splits: each part is matched by deny and ask rules on its own.
_CHAIN = re.compile(r"&&|\|\||[;&|\n]")
_SPEC = re.compile(r"^(?P<tool>[^()\s]+)(?:\((?P<content>.*)\))?$", re.DOTALL)


@attrs.frozen
class SettingsRule:
    """One rule of one settings file."""

    behavior: Behavior
    rule: str  # as written
    tool: str
    content: str | None
    source: str  # the settings file
    root: str  # the folder `/path` patterns start from


@attrs.frozen
class Match:
    """The rule that decides a tool use, and where it was written."""

    behavior: Behavior
    rule: str
    source: str


# path -> (mtime_ns, size, its rules): a file is parsed again only when it changes.
_CACHE: dict[str, tuple[int, int, tuple[SettingsRule, ...]]] = {}


def settings_files(env: Mapping[str, str], cwd: str, trusted: bool) -> list[tuple[Path, str]]:
    """The settings files whose rules apply, each with its root."""
    config = paths.claude_config_dir(env)
    files = [(path, "/") for path in MANAGED]
    files.append((config / "settings.json", str(config.parent)))
    if trusted:
        folder = os.path.abspath(cwd)
        for name in ("settings.json", "settings.local.json"):
            files.append((Path(folder, ".claude", name), folder))
    return files


def _read(path: Path, root: str) -> tuple[SettingsRule, ...]:
    try:
        stat = path.stat()
    except OSError:
        return ()
    # A FIFO or device named settings.json would block the read: regular files only.
    if not path.is_file() or stat.st_size > MAX_SETTINGS_BYTES:
        return ()
    key = str(path)
    cached = _CACHE.get(key)
    if cached is not None and cached[:2] == (stat.st_mtime_ns, stat.st_size):
        return cached[2]
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.warning("could not read the permission rules of %s: %s", path, exc)
        data = {}
    found = tuple(_rules_of(data, key, root))
    _CACHE[key] = (stat.st_mtime_ns, stat.st_size, found)
    return found


def _rules_of(data: Any, source: str, root: str) -> list[SettingsRule]:
    permissions = data.get("permissions") if isinstance(data, dict) else None
    if not isinstance(permissions, dict):
        return []
    found = []
    for behavior in BEHAVIORS:
        entries = permissions.get(behavior)
        for entry in entries if isinstance(entries, list) else []:
            match = _SPEC.match(entry.strip()) if isinstance(entry, str) else None
            if match is None:
                log.warning("%s: ignoring the permission rule %r", source, entry)
                continue
            content = match["content"]
            found.append(
                SettingsRule(behavior, entry.strip(), match["tool"], content or None, source, root)
            )
    return found


def load(env: Mapping[str, str], cwd: str, trusted: bool = False) -> list[SettingsRule]:
    """Every rule that applies to a session run with `env` in `cwd`."""
    return [rule for path, root in settings_files(env, cwd, trusted) for rule in _read(path, root)]


def match(
    tool_name: str,
    tool_input: dict[str, Any],
    cwd: str,
    env: Mapping[str, str],
    trusted: bool = False,
) -> Match | None:
    """The rule that decides this tool use: the first deny rule that matches, else the
    first ask rule, else the first allow rule; None when none matches."""
    found = load(env, cwd, trusted)
    if not found:
        return None
    home = {**os.environ, **env}.get("HOME") or os.path.expanduser("~")
    for behavior in BEHAVIORS:
        for rule in found:
            if rule.behavior == behavior and _matches(rule, tool_name, tool_input, cwd, home):
                return Match(behavior, rule.rule, rule.source)
    return None


def speaks(
    tool_name: str,
    tool_input: dict[str, Any],
    cwd: str,
    env: Mapping[str, str],
    trusted: bool = False,
) -> bool:
    """Whether a deny or ask rule matches: a backend that would run the tool without
    asking (its mode allows it) must hand it to the policy instead."""
    found = match(tool_name, tool_input, cwd, env, trusted)
    return found is not None and found.behavior != "allow"


def denial(found: Match) -> str:
    """What the model is told of a tool use a deny rule stopped."""
    return (
        f"The user's Claude Code settings deny this: the permission rule {found.rule} "
        f"in {found.source}. Do not try another way to do it; tell the user if you need it."
    )


# -- matching ----------------------------------------------------------------------------


def _tool_matches(rule_tool: str, tool_name: str) -> bool:
    if rule_tool == tool_name:
        return True
    if rule_tool == "Edit":
        return tool_name in FILE_EDITS
    if rule_tool == "Read":
        return tool_name in READ_ONLY
    if rule_tool.startswith("mcp__"):
        server = rule_tool.removesuffix("__*")
        return server.count("__") == 1 and tool_name.startswith(server + "__")
    return False


def _matches(
    rule: SettingsRule, tool_name: str, tool_input: dict[str, Any], cwd: str, home: str
) -> bool:
    if not _tool_matches(rule.tool, tool_name):
        return False
    content = rule.content
    if content is None:
        return True
    broad = rule.behavior != "allow"
    if tool_name == "Bash":
        command = tool_input.get("command")
        return isinstance(command, str) and _command_matches(content, command, broad)
    if tool_name == "WebFetch":
        return _fetch_matches(content, tool_input.get("url"), broad)
    if rule.tool in ("Read", "Edit") or tool_name in FILE_EDITS | READ_ONLY:
        return _path_rule_matches(rule, tool_name, tool_input, cwd, home, broad)
    return False  # a specifier dave-lsp cannot read (Agent(...), Skill(...)): not this use


def _command_matches(content: str, command: str, broad: bool) -> bool:
    prefix = allow_rules.prefix_of(content)
    if not broad:
        # Never broader than the session's own rules (permissions/rules.py): exact, or a prefix
        # with no operator, expansion or option that changes what runs.
        if prefix is not None:
            return allow_rules.prefix_covers(prefix, command)
        return "*" not in content and command == content
    parts = [command.strip(), *(part.strip() for part in _CHAIN.split(command))]
    if prefix is not None:
        return any(part == prefix or part.startswith(prefix + " ") for part in parts)
    if "*" in content:
        pattern = re.compile(".*".join(map(re.escape, content.split("*"))), re.DOTALL)
        return any(pattern.fullmatch(part) for part in parts)
    return any(part == content for part in parts)


def _fetch_matches(content: str, url: Any, broad: bool) -> bool:
    if not content.startswith("domain:"):
        return False
    domain = content.removeprefix("domain:").lower()
    hosts = allow_rules.url_hosts(url) if broad else {allow_rules.fetch_host(url)} - {""}
    if domain.startswith("*."):
        return any(host.endswith(domain[1:]) for host in hosts)
    return domain in hosts


def _target(tool_name: str, tool_input: dict[str, Any], cwd: str) -> str | None:
    """The path a tool use works on, absolute; the cwd for a search without a path."""
    value = file_path(tool_input) or tool_input.get("path")
    if not value and tool_name in READ_ONLY - {"Read"}:
        value = cwd
    if not isinstance(value, str) or not value:
        return None
    return paths.absolute(value, cwd)


def _path_rule_matches(
    rule: SettingsRule,
    tool_name: str,
    tool_input: dict[str, Any],
    cwd: str,
    home: str,
    broad: bool,
) -> bool:
    target = _target(tool_name, tool_input, cwd)
    if target is None:
        return False
    real = os.path.realpath(target)
    if not broad and tool_name in FILE_EDITS and allow_rules.runs_code_later(real, cwd):
        return False
    pattern = path_pattern(rule.content or "", cwd, rule.root, home)
    if pattern is None:
        return False
    # Deny and ask match the path as named or with its links resolved; allow only the
    # file the tool would really touch.
    candidates = {target, real} if broad else {real}
    return any(_pattern_matches(pattern, path) for path in candidates)


@attrs.frozen
class PathPattern:
    base: str  # an absolute folder
    regex: re.Pattern[str]  # matched against a path relative to `base`


def path_pattern(pattern: str, cwd: str, root: str, home: str) -> PathPattern | None:
    """A gitignore-style pattern of a Read or Edit rule, anchored where Claude Code
    anchors it."""
    if pattern.startswith("//"):
        base, rest, anchored = "/", pattern[2:], True
    elif pattern.startswith("~/"):
        base, rest, anchored = home, pattern[2:], True
    elif pattern.startswith("/"):
        base, rest, anchored = root, pattern[1:], True
    else:
        base, rest = cwd, pattern.removeprefix("./")
        # gitignore: a pattern with no slash but a trailing one matches at any depth.
        anchored = "/" in rest.rstrip("/")
    rest = rest.rstrip("/")
    if not rest:
        return None
    body = _glob(rest)
    if not anchored and not rest.startswith("**"):
        body = "(?:.*/)?" + body
    try:
        regex = re.compile(body, re.DOTALL)
    except re.error:  # a bracket the glob cannot hold ([z-a]): the rule matches nothing
        log.warning("ignoring the path pattern %r: it is not a valid pattern", pattern)
        return None
    return PathPattern(os.path.normpath(base), regex)


def _pattern_matches(pattern: PathPattern, path: str) -> bool:
    base = pattern.base
    if path == base:
        return False
    if base != os.sep and not path.startswith(base.rstrip(os.sep) + os.sep):
        return False
    relative = os.path.relpath(path, base)
    parts = relative.split(os.sep)
    # A pattern that matches a folder covers what is in it, as in gitignore.
    return any(pattern.regex.fullmatch("/".join(parts[:end])) for end in range(1, len(parts) + 1))


def _glob(pattern: str) -> str:
    out: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if pattern.startswith("**/", index):
            out.append("(?:.*/)?")
            index += 3
            continue
        if pattern.startswith("**", index):
            out.append(".*")
            index += 2
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[" and (close := pattern.find("]", index + 2)) != -1:
            inner = pattern[index + 1 : close]
            inner = "^" + inner[1:] if inner.startswith("!") else inner
            out.append(f"[{inner.replace(chr(92), chr(92) * 2)}]")
            index = close + 1
            continue
        else:
            out.append(re.escape(char))
        index += 1
    return "".join(out)
