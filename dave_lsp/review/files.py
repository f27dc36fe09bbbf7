"""Reading a file as the text tools see it, and where a tool's path leads.

Text is UTF-8 only: a file with a NUL byte or bytes that are not UTF-8 is binary
(`FileText.text` None). A file tool works on the file its path leads to, every symlink
on the way followed (`resolved_path`); `link_note` tells the user where a write through
a link goes.
"""

from __future__ import annotations

import os
import stat
from typing import Any

import attrs

from dave_lsp import paths

# The CLI refuses to edit a file above 10 MiB; nothing above it is read here.
MAX_READ_BYTES = 10 * 1024 * 1024


@attrs.frozen
class FileText:
    """A file as a text tool sees it. `text` is None for a binary or unreadable file."""

    exists: bool
    text: str | None
    size: int = 0

    @property
    def binary(self) -> bool:
        return self.exists and self.text is None


def decode_text(data: bytes) -> str | None:
    """The UTF-8 text of `data`, or None when it is binary (a NUL byte, or not UTF-8)."""
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def read_text(path: str, limit: int = MAX_READ_BYTES) -> FileText | None:
    """The file at `path`; None when it is not a regular file (a directory, a FIFO we
    must not block on), cannot be read, or is larger than `limit`."""
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return FileText(exists=False, text="")
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
        return None
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError:
        return None
    if len(data) > limit:
        return None
    return FileText(exists=True, text=decode_text(data), size=len(data))


def resolved_path(path: str, cwd: str) -> str:
    """The file a tool naming `path` works on: absolute, every symlink on the way followed
    (a link to a missing file gives the file it would create)."""
    return os.path.realpath(paths.absolute(path, cwd))


def link_target(path: str, cwd: str) -> str | None:
    """Where `path` leads when a symlink on its way (inside `cwd`, or anywhere for a path
    outside it) makes that another file; None when it leads to itself. A `cwd` that is
    itself reached through a link does not count."""
    absolute = paths.absolute(path, cwd)
    resolved = os.path.realpath(absolute)
    relative = os.path.relpath(absolute, cwd)
    if relative != ".." and not relative.startswith(".." + os.sep):
        plain = os.path.normpath(os.path.join(os.path.realpath(cwd), relative))
    else:
        plain = absolute
    return None if resolved == plain else resolved


def link_note(tool_input: dict[str, Any], cwd: str) -> str:
    """` → ../outside/target.txt` when the file tool's path is a link to another file
    ("" otherwise), for the permission question: the user sees where the write goes.
    The target is shown relative to the folder while at most one `..` leads to it."""
    raw = tool_input.get("file_path") or tool_input.get("notebook_path")
    if not isinstance(raw, str) or not raw:
        return ""
    target = link_target(raw, cwd)
    if target is None:
        return ""
    relative = os.path.relpath(target, os.path.realpath(cwd))
    shown = target if relative.startswith(os.path.join("..", "..")) else relative
    return f" → {shown}"
