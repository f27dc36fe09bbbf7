"""Folder trust: whose Claude Code project settings may load, and what they would run.

A folder's project settings run code the moment a Claude Code CLI starts in it: the
hooks, `env` and `apiKeyHelper` of `.claude/settings.json` and
`.claude/settings.local.json`, and the MCP servers of `.mcp.json` (the CLI reads the
`.mcp.json` of every folder above the cwd too: probed, docs/architecture.md). So they
load only for a trusted folder: one at or under a folder of `trustedFolders` (for the
server's run) or of `dave/trustFolder` (remembered in the state folder's `trust.json`).
In any other folder the Claude backend runs with the user's own settings only
(`setting_sources=["user"]`, backends/claude/session.py).

`check` lists what a folder's settings would run if trusted, for the question a client
asks. It reads the files the CLI would read and counts a file it cannot read whole (not
JSON, too large, not a regular file) as running code: the CLI may make more of it.
The answer only informs the question: what loads is decided by trust alone, never by
this reading, so a file changed after the check cannot slip anything in.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import shlex
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import attrs

from dave_lsp.fsio import write_atomic

log = logging.getLogger(__name__)

FILE_NAME = "trust.json"
SETTINGS_FILES = (".claude/settings.json", ".claude/settings.local.json")
MCP_FILE = ".mcp.json"
# A settings file larger than this is not read; it counts as running code.
MAX_FILE_BYTES = 1 << 20
# Settings that change nothing that runs (permission rules that only take away,
# display, the model). Any other key is listed: a setting the CLI learns later may run
# something, and a question that says too much is safer than one that says too little.
_HARMLESS = frozenset(
    {
        "$schema",
        "model",
        "includeCoAuthoredBy",
        "cleanupPeriodDays",
        "outputStyle",
        "spinnerTipsEnabled",
        "alwaysThinkingEnabled",
        "language",
        "theme",
        "verbose",
        "respectGitignore",
        "disableAllHooks",
        "companyAnnouncements",
        "enableAllProjectMcpServers",
        "enabledMcpjsonServers",
        "disabledMcpjsonServers",
    }
)
_COMMAND_SETTINGS = (
    "apiKeyHelper",
    "awsAuthRefresh",
    "awsCredentialExport",
    "otelHeadersHelper",
    "gcpAuthRefresh",
)
_KINDS = {"hook": ("hook", "hooks"), "mcp": ("MCP server", "MCP servers")}


class TrustError(ValueError):
    """A path that cannot be trusted or checked; the message says why."""


@attrs.frozen
class FolderCheck:
    """What a folder's project settings would run if it were trusted."""

    path: str
    items: tuple[tuple[str, str], ...]  # (kind, line): kind is hook, mcp, env or setting

    @property
    def would_run(self) -> list[str]:
        return [line for _, line in self.items]

    @property
    def runs_code(self) -> bool:
        return bool(self.items)

    def summary(self) -> str:
        """`2 hooks, 1 MCP server, env: FOO` (every other setting counted)."""
        parts: list[str] = []
        for kind, (one, many) in _KINDS.items():
            count = sum(1 for k, _ in self.items if k == kind)
            if count:
                parts.append(f"{count} {one if count == 1 else many}")
        parts += [line for kind, line in self.items if kind == "env"]
        others = sum(1 for k, _ in self.items if k == "setting")
        if others:
            parts.append(f"{others} other setting{'s' if others != 1 else ''}")
        return ", ".join(parts)

    def untrusted_notice(self) -> str | None:
        """The status line of a session's first turn in this folder while untrusted."""
        if not self.items:
            return None
        return (
            f"this folder's Claude Code settings were not loaded (not trusted): "
            f"{self.summary()}; trust it to load them"
        )


def folder(path: str) -> str:
    """`path` as trust knows folders: `~` expanded, absolute, links resolved;
    TrustError for a relative path."""
    if not isinstance(path, str) or not path:
        raise TrustError("must be a folder's absolute path")
    expanded = os.path.expanduser(path)
    if not os.path.isabs(expanded):
        raise TrustError(f"must be an absolute path, got {path!r}")
    return os.path.realpath(expanded)


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip(os.sep) + os.sep)


class TrustStore:
    """The trusted folders: those given for this run, and those remembered on disk.

    The file is read on each question, so a folder trusted by another server (the same
    state folder) counts here at the next session start too."""

    def __init__(self, state_dir: Path, given: Iterable[str] = ()) -> None:
        self.path = state_dir / FILE_NAME
        self.given = [folder(p) for p in given]

    def remembered(self) -> list[str]:
        try:
            data = json.loads(self.path.read_text("utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            log.warning("ignoring %s: %s", self.path, exc)
            return []
        folders = data.get("folders") if isinstance(data, dict) else None
        if not isinstance(folders, list):
            return []
        return [f for f in folders if isinstance(f, str) and os.path.isabs(f)]

    def is_trusted(self, path: str) -> bool:
        try:
            where = folder(path)
        except TrustError:
            return False
        return any(_under(where, top) for top in [*self.given, *self.remembered()])

    def remember(self, path: str, trusted: bool) -> str:
        """Trust `path` (or take back a trust `remember` gave); its normalized form.
        TrustError for a path that is not a folder (when trusting) or a disk failure."""
        where = folder(path)
        if trusted and not os.path.isdir(where):
            raise TrustError(f"{path} is not a folder")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with _locked(self.path.with_suffix(".lock")):
                kept = [f for f in self.remembered() if f != where]
                self._write([*kept, where] if trusted else kept)
        except OSError as exc:
            raise TrustError(f"could not write {self.path}: {exc.strerror or exc}") from None
        return where

    def _write(self, folders: list[str]) -> None:
        data = json.dumps({"folders": folders}, indent=1).encode()
        write_atomic(self.path, data, prefix=".tmp-trust-", suffix=".json")


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Two servers sharing a state folder do not lose each other's changes."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# -- what a folder's settings would run -------------------------------------------------


def check(path: str) -> FolderCheck:
    """What the project settings of the folder `path` would run if it were trusted.
    TrustError for a path that is not an absolute path of a folder."""
    where = folder(path)
    if not os.path.isdir(where):
        raise TrustError(f"{path} is not a folder")
    items: list[tuple[str, str]] = []
    for name in SETTINGS_FILES:
        file = os.path.join(where, name)
        data = _read(file, items, name)
        if data is not None:
            items += _settings_items(data, name)
    # The CLI reads the .mcp.json of the cwd and of every folder above it.
    current = where
    while True:
        file = os.path.join(current, MCP_FILE)
        label = MCP_FILE if current == where else file
        data = _read(file, items, label)
        if data is not None:
            items += _mcp_items(data.get("mcpServers"), "" if current == where else file)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    return FolderCheck(where, tuple(items))


def _read(file: str, items: list[tuple[str, str]], label: str) -> dict[str, Any] | None:
    """A settings file's object; None when it is absent. One that exists but cannot be
    read whole is listed as a setting (it may run anything the CLI makes of it). Never
    blocks: a FIFO or a device is not opened for reading."""
    try:
        fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        items.append(("setting", f"{label}: cannot be read ({exc.strerror})"))
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            items.append(("setting", f"{label}: not a regular file"))
            return None
        if info.st_size > MAX_FILE_BYTES:
            items.append(("setting", f"{label}: too large to check ({info.st_size} bytes)"))
            return None
        with os.fdopen(os.dup(fd), "rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        items.append(("setting", f"{label}: cannot be read ({exc.strerror})"))
        return None
    finally:
        os.close(fd)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):
        items.append(("setting", f"{label}: not JSON that dave-lsp can check"))
        return None
    if not isinstance(data, dict):
        items.append(("setting", f"{label}: not a JSON object"))
        return None
    return data


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _settings_items(data: dict[str, Any], name: str) -> list[tuple[str, str]]:
    items: list[tuple[str, str]] = []
    for key, value in data.items():
        if key in _HARMLESS:
            continue
        if key == "hooks":
            items += _hook_items(value)
        elif key == "env":
            names = list(value) if isinstance(value, dict) else [_text(value)]
            if names:
                items.append(("env", "env: " + ", ".join(map(str, names))))
        elif key in _COMMAND_SETTINGS:
            items.append(("setting", f"{key}: {_text(value)}"))
        elif key == "statusLine" and isinstance(value, dict) and "command" in value:
            items.append(("setting", f"statusLine: {_text(value['command'])}"))
        elif key == "mcpServers":
            items += _mcp_items(value, name)
        elif key == "permissions" and isinstance(value, dict):
            items += _permission_items(value)
        else:
            items.append(("setting", f"{key}: {_text(value)}"))
    return items


def _hook_items(hooks: Any) -> list[tuple[str, str]]:
    if not isinstance(hooks, dict):
        return [("hook", f"hooks: {_text(hooks)}")]
    items: list[tuple[str, str]] = []
    for event, groups in hooks.items():
        for group in groups if isinstance(groups, list) else [groups]:
            entries = group.get("hooks") if isinstance(group, dict) else None
            if not isinstance(entries, list):
                items.append(("hook", f"hook {event}: {_text(group)}"))
                continue
            matcher = group.get("matcher")
            where = f"{event}({matcher})" if isinstance(matcher, str) and matcher else event
            for hook in entries:
                what = hook.get("command") if isinstance(hook, dict) else None
                items.append(("hook", f"hook {where}: {_text(what if what else hook)}"))
    return items


def _mcp_items(servers: Any, source: str) -> list[tuple[str, str]]:
    if servers is None:
        return []
    origin = f" (from {source})" if source else ""
    if not isinstance(servers, dict):
        return [("mcp", f"MCP servers{origin}: {_text(servers)}")]
    items: list[tuple[str, str]] = []
    for name, spec in servers.items():
        if isinstance(spec, dict) and isinstance(spec.get("command"), str):
            args = spec.get("args")
            listed = [_text(arg) for arg in args] if isinstance(args, list) else []
            line = shlex.join([spec["command"], *listed])
            env = spec.get("env")
            if isinstance(env, dict) and env:
                line = f"{line} (env {', '.join(map(str, env))})"
        elif isinstance(spec, dict) and isinstance(spec.get("url"), str):
            line = f"{spec.get('type') or 'http'} {spec['url']}"
        else:
            line = _text(spec)
        items.append(("mcp", f"MCP server {name}{origin}: {line}"))
    return items


def _permission_items(permissions: dict[str, Any]) -> list[tuple[str, str]]:
    """Rules that let a tool run unasked, and a mode that asks less: the model's Bash
    then runs what the folder's author chose. Deny and ask rules only take away."""
    items: list[tuple[str, str]] = []
    for key, value in permissions.items():
        if key in ("deny", "ask"):
            continue
        if key == "allow" and isinstance(value, list):
            items += [("setting", f"allow rule: {_text(rule)}") for rule in value]
        elif key == "defaultMode" and value in ("default", "plan"):
            continue
        else:
            items.append(("setting", f"permissions.{key}: {_text(value)}"))
    return items


def normalized(paths: Iterable[str]) -> list[str]:
    """`trustedFolders` checked: TrustError naming the first that is not absolute."""
    checked = []
    for index, path in enumerate(paths):
        try:
            checked.append(folder(path))
        except TrustError as exc:
            raise TrustError(f"[{index}]: {exc}") from None
    return checked
