"""A turn's file changes, as the user reviews them.

- `ChangeRecorder` watches one turn. `before(path)` (from a PreToolUse hook, before a
  Write, Edit, MultiEdit or NotebookEdit runs) snapshots a file the first time the turn
  touches it, absence included; `finish()` reads each touched file again and gives the
  turn's `FileChange`s, files that ended as they began left out. Changes made by Bash
  are not seen unless the caller snapshots those paths too.
- A `Snapshot` keeps a file's bytes while it is at most `KEEP_BYTES` (1 MiB), else only
  its size and SHA-256 (the change is listed, never reverted).
- A `ChangeSet` is what one turn changed; change_store.py keeps it on disk, revert.py
  undoes it, and each front end shows it in its own wire types.

Symlinks: a change is recorded under the file the tool's path led to when the tool was
about to run, every link followed (`path`, and `real`: where it led when the turn
ended), the file a write through a link changes; a `path` given to find a change may
name the link or the target.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import time
from typing import Any, BinaryIO

import attrs

# `paths` names a parameter below, hence the import of the function alone.
from dave_lsp.paths import absolute as absolute_path
from dave_lsp.review.diff import Hunk, diff_hunks, unified_diff
from dave_lsp.review.files import FileText, decode_text, resolved_path
from dave_lsp.tools.catalog import FILE_EDITS, file_path
from dave_lsp.tools.summaries import display_path

log = logging.getLogger(__name__)

KEEP_BYTES = 1024 * 1024
_CHUNK = 1024 * 1024


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class NotAFile(Exception):
    """The path holds something that is not a regular file, or cannot be read."""


@attrs.frozen
class Snapshot:
    """A file's bytes at one moment. `data` is None when the file was over KEEP_BYTES:
    then only its size and hash are known."""

    size: int
    sha256: str
    mode: int
    data: bytes | None

    @property
    def kept(self) -> bool:
        return self.data is not None

    @property
    def text(self) -> str | None:
        return decode_text(self.data) if self.data is not None else None

    def same(self, other: Snapshot | None) -> bool:
        return other is not None and (self.size, self.sha256) == (other.size, other.sha256)

    def without_data(self) -> Snapshot:
        return attrs.evolve(self, data=None)


def take_snapshot(path: str) -> Snapshot | None:
    """The file at `path` now; None when there is none. NotAFile for a directory, a
    FIFO or an unreadable file (the FIFO is never opened: it would block)."""
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise NotAFile(str(exc)) from exc
    if not stat.S_ISREG(info.st_mode):
        raise NotAFile("not a regular file")
    try:
        with open(path, "rb") as handle:
            size, sha256, data = read_kept(handle)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise NotAFile(str(exc)) from exc
    return Snapshot(size, sha256, stat.S_IMODE(info.st_mode), data)


def read_kept(handle: BinaryIO) -> tuple[int, str, bytes | None]:
    """The rest of `handle`: its size, its SHA-256 and its bytes (None past KEEP_BYTES)."""
    digest = hashlib.sha256()
    chunks: list[bytes] = []
    size = 0
    while chunk := handle.read(_CHUNK):
        digest.update(chunk)
        size += len(chunk)
        if size <= KEEP_BYTES:
            chunks.append(chunk)
    return size, digest.hexdigest(), b"".join(chunks) if size <= KEEP_BYTES else None


def same_file(a: Snapshot | None, b: Snapshot | None) -> bool:
    return (a is None and b is None) or (a is not None and a.same(b))


@attrs.frozen
class FileChange:
    """One file a turn changed. `path` is absolute, links resolved when the tool ran;
    `real` is where it led when the turn ended. A side is None when the file did not
    exist."""

    path: str
    real: str
    before: Snapshot | None
    after: Snapshot | None
    added: int = 0
    removed: int = 0

    @property
    def status(self) -> str:
        if self.before is None:
            return "created"
        return "deleted" if self.after is None else "modified"

    @property
    def kept(self) -> bool:
        """Whether both sides' contents are known (else diff and revert are not)."""
        return all(side is None or side.kept for side in (self.before, self.after))

    @property
    def binary(self) -> bool:
        return self.kept and self.texts() is None

    def texts(self) -> tuple[str, str] | None:
        """(before, after) as text, "" for a missing side; None when binary or not kept."""
        sides = []
        for side in (self.before, self.after):
            text = "" if side is None else side.text
            if text is None:
                return None
            sides.append(text)
        return sides[0], sides[1]

    def hunks(self) -> list[Hunk]:
        texts = self.texts()
        return diff_hunks(*texts) if texts is not None else []

    def diff(self, cwd: str) -> str:
        texts = self.texts()
        if texts is None:
            return ""
        label = display_path(self.path, cwd)
        created, deleted = self.status == "created", self.status == "deleted"
        return unified_diff(*texts, label, created=created, deleted=deleted)


def file_change(path: str, before: Snapshot | None, after: Snapshot | None) -> FileChange:
    """The change from `before` to `after`, with its line counts when both are text."""
    change = FileChange(path, os.path.realpath(path), before, after)
    hunks = change.hunks()
    return attrs.evolve(
        change,
        added=sum(hunk.added for hunk in hunks),
        removed=sum(hunk.removed for hunk in hunks),
    )


class ChangeRecorder:
    """The files one turn's file tools touch, and what each held before."""

    def __init__(self, cwd: str) -> None:
        self.cwd = cwd
        self._before: dict[str, Snapshot | None] = {}

    def before(self, path: str) -> None:
        """Snapshot `path` (absolute or relative to the cwd; links followed: a write
        through a link changes its target) unless the turn already has: call it before
        a tool changes the file."""
        absolute = resolved_path(path, self.cwd)
        if absolute in self._before:
            return
        try:
            self._before[absolute] = take_snapshot(absolute)
        except NotAFile as exc:
            log.debug("not tracking %s: %s", absolute, exc)

    def before_tool(self, tool_name: str, tool_input: dict[str, Any]) -> None:
        """`before` for a file tool's target; other tools are ignored."""
        if tool_name in FILE_EDITS and (path := file_path(tool_input)):
            self.before(path)

    def before_text(self, path: str) -> FileText | None:
        """What the absolute `path` held before the turn's tools changed it (text None:
        binary or over KEEP_BYTES); None when no tool of the turn touched it."""
        path = os.path.realpath(path)
        if path not in self._before:
            return None
        snapshot = self._before[path]
        if snapshot is None:
            return FileText(exists=False, text="")
        return FileText(exists=True, text=snapshot.text, size=snapshot.size)

    @property
    def touched(self) -> list[str]:
        return list(self._before)

    def finish(self) -> list[FileChange]:
        """The turn's changes, in the order the files were first touched."""
        changes = []
        for path, before in self._before.items():
            try:
                after = take_snapshot(path)
            except NotAFile as exc:
                log.warning("could not read %s after the turn: %s", path, exc)
                continue
            if not same_file(before, after):
                changes.append(file_change(path, before, after))
        return changes


@attrs.frozen
class ChangeSet:
    """What one turn of a session changed."""

    session_id: str
    turn: int
    cwd: str
    files: tuple[FileChange, ...]
    created_at: str = attrs.field(factory=_now_iso)

    def find(self, path: str) -> FileChange | None:
        """The change of `path`, named as listed or by a link that leads to it."""
        absolute = absolute_path(path, self.cwd)
        named = next((change for change in self.files if change.path == absolute), None)
        if named is not None:
            return named
        resolved = os.path.realpath(absolute)
        return next((change for change in self.files if change.path == resolved), None)
