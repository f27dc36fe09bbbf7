"""Allow-always rules: what "allow always" covers, and whether a rule covers a tool use.

A rule covers what the user saw, never a whole tool. Its text follows Claude Code's
rule syntax, so a person reads it as they would in Claude Code's settings:

    Bash(rm -f one.txt)        that exact command
    Bash(npm test:*)           commands that are `npm test` or start with `npm test `,
                               and hold no shell operator (; & | ` $( < > newline)
    WebFetch(domain:host)      fetches from that host
    Edit(/abs/folder/**)       file edits (Edit, Write, MultiEdit, NotebookEdit) of files
                               under that folder
    Edit(/abs/file)            edits of that one file
    Tool({"json": "input"})    that tool with exactly that input

The backend's own suggestions for the request are taken where they fit these forms
(the Claude Code CLI suggests the exact command for Bash, the domain for WebFetch, and
acceptEdits mode for file edits, which becomes an edit rule for the session's folder);
otherwise the rule is worked out here from the tool's input, the same way for every
backend. Rules live in the session's record (store.py), not in any settings file.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import attrs

log = logging.getLogger(__name__)

FILE_TOOLS = frozenset({"Edit", "Write", "MultiEdit", "NotebookEdit"})
# A prefix rule must not allow `safe-cmd && anything`: a command with any of these is
# never covered by a prefix rule (an exact rule still covers it, since the user saw it).
_SHELL_OPERATORS = re.compile(r"[;&|`<>\n\r]|\$\(")
_RULE = re.compile(r"^(?P<tool>[^()\s]+)\((?P<content>.*)\)$", re.DOTALL)


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


def file_path(tool_input: dict[str, Any]) -> str:
    value = tool_input.get("file_path") or tool_input.get("notebook_path") or ""
    return value if isinstance(value, str) else ""


def _real(path: str, cwd: str) -> str:
    # realpath: a symlink inside the folder that points outside it is outside it.
    return os.path.realpath(os.path.join(cwd, os.path.expanduser(path)))


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _canonical(tool_input: dict[str, Any]) -> str:
    return json.dumps(tool_input, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _host(url: Any) -> str:
    if not isinstance(url, str):
        return ""
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


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
    if tool == "Edit" and tool_name in FILE_TOOLS:
        path = file_path(tool_input)
        if not path:
            return False
        target = _real(path, cwd)
        if content.endswith("/**"):
            return _inside(target, os.path.realpath(content[:-3] or os.sep))
        return target == os.path.realpath(content)
    if tool != tool_name:
        return False
    if tool == "Bash":
        command = tool_input.get("command")
        if not isinstance(command, str):
            return False
        if content.endswith(":*"):
            prefix = content[:-2]
            starts = command == prefix or command.startswith(prefix + " ")
            return starts and not _SHELL_OPERATORS.search(command)
        return command == content
    if tool == "WebFetch" and content.startswith("domain:"):
        return _host(tool_input.get("url")) == content.removeprefix("domain:").lower()
    return content == _canonical(tool_input)


def propose(
    tool_name: str, tool_input: dict[str, Any], suggestions: Sequence[Suggestion], cwd: str
) -> Rule:
    """The rule that "allow always" on this request would add."""
    for suggestion in suggestions:
        if suggestion.kind != "addRules" or suggestion.behavior not in (None, "allow"):
            continue
        for tool, content in suggestion.rules:
            if tool != tool_name or not content:
                continue
            if tool == "Bash" and content.strip():
                if content.endswith(":*"):
                    return Rule(f"Bash({content})", f"commands starting with `{content[:-2]}`")
                return Rule(f"Bash({content})", "this exact command")
            if tool == "WebFetch" and content.startswith("domain:") and len(content) > 7:
                return Rule(f"WebFetch({content})", f"fetches from {content[7:]}")
    if tool_name in FILE_TOOLS and (path := file_path(tool_input)):
        folder = os.path.realpath(cwd)
        target = _real(path, cwd)
        if _inside(target, folder):
            return Rule(f"Edit({folder}/**)", "all file edits in this session's folder")
        return Rule(f"Edit({target})", f"edits of {target}")
    if tool_name == "Bash" and isinstance(command := tool_input.get("command"), str) and command:
        return Rule(f"Bash({command})", "this exact command")
    if tool_name == "WebFetch" and (host := _host(tool_input.get("url"))):
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
