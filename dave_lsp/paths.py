"""Resolving a tool's path against the session's folder, and whether it lies in it.

The folder is the trust boundary of what reaches the model unasked. `absolute` keeps
symlinks (what the user named, for labels and edits); `real` and `inside` resolve them on
both sides, so a link in the folder that points outside it is outside it, and a folder
reached through a link still holds its own files. Every module that resolves a path a
tool or a client names does it here, so `~` and `..` mean the same everywhere.

Also where Claude Code keeps the user's settings and transcripts (`claude_config_dir`):
the Claude backend reads its transcripts there, and the permission policy the user's
rules, whichever backend runs the session. And the server's state folder as a session's
environment names it (`state_dir`), where a backend keeps what it must remember."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Final

# What the model is told instead of a file's text it may only get by asking.
OUTSIDE = "outside the session's folder: read it with Read (asks)"


def absolute(path: str, cwd: str) -> str:
    """`path` made absolute against `cwd` (with `~` expanded), symlinks left alone."""
    return os.path.normpath(os.path.join(cwd, os.path.expanduser(path)))


def real(path: str, cwd: str) -> str:
    """`path` made absolute against `cwd` (with `~` expanded), every symlink followed."""
    return os.path.realpath(os.path.join(cwd, os.path.expanduser(path)))


def within(path: str, folder: str) -> bool:
    """Whether `path` is `folder` or below it, both already absolute (no resolving)."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def inside(path: str, folder: str) -> bool:
    """Whether `path` (absolute, or relative to `folder`) lies in `folder`."""
    return within(real(path, folder), os.path.realpath(folder))


def inside_any(path: str, folders: tuple[str, ...] | list[str]) -> bool:
    """Whether `path` (absolute, or relative to the first folder: the session's cwd)
    lies in any of the session's folders (its cwd, then ACP's additionalDirectories)."""
    if not folders:
        return False
    target = real(path, folders[0])
    return any(within(target, os.path.realpath(folder)) for folder in folders)


def claude_config_dir(env: Mapping[str, str]) -> Path:
    """Claude Code's config dir for a CLI run with `env` over the server's environment:
    `CLAUDE_CONFIG_DIR`, else `~/.claude` of that environment's HOME."""
    merged = {**os.environ, **env}
    if merged.get("CLAUDE_CONFIG_DIR"):
        return Path(merged["CLAUDE_CONFIG_DIR"]).expanduser()
    home = merged.get("HOME") or str(Path.home())
    return Path(home) / ".claude"


# The server's state folder (`stateDir`) in a session's environment: the session manager
# puts it there, so what a backend keeps in it is found from the `env` it is handed, as
# Claude Code's transcripts are found from CLAUDE_CONFIG_DIR.
STATE_DIR_ENV: Final = "DAVE_LSP_STATE_DIR"


def default_state_dir() -> Path:
    """`$XDG_STATE_HOME/dave-lsp`, else `~/.local/state/dave-lsp`."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return Path(base) / "dave-lsp"


def state_dir(env: Mapping[str, str]) -> Path:
    """The state folder of a session run with `env` (its `STATE_DIR_ENV`, else the
    default; the server's own environment is not asked, so a dave-lsp started by a
    session's command does not take that session's folder)."""
    named = env.get(STATE_DIR_ENV)
    return Path(named) if named else default_state_dir()
