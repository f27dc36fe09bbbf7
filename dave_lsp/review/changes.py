"""A turn's file changes: what the file tools changed, kept so the user can review and
revert them.

- `ChangeRecorder` watches one turn. `before(path)` (from a PreToolUse hook, before a
  Write, Edit, MultiEdit or NotebookEdit runs) snapshots a file the first time the turn
  touches it, absence included; `finish()` reads each touched file again and gives the
  turn's `FileChange`s, files that ended as they began left out. Changes made by Bash
  are not seen unless the caller snapshots those paths too.
- `ChangeStore` keeps each turn's change set as one JSON file,
  `<root>/<hash of sessionId>/<turn>.json` (root: `<stateDir>/changes`), written
  atomically, so review and revert survive eviction and restarts. Bounds: a side (the
  file before, or after) is kept when it is at most `KEEP_BYTES` (1 MiB), else only
  its size and SHA-256 (the change is listed, never reverted); per session the last
  `MAX_TURNS` (20) turns that changed files and `MAX_SESSION_BYTES` (8 MiB on disk),
  oldest turns dropped first. A single turn over the byte bound keeps its largest
  sides as hashes only, until it fits.
- `revert` restores what a turn changed, whole files or chosen hunks. It never
  overwrites work: a file whose bytes are not exactly the turn's result (the user or a
  later turn changed it) is a conflict and is left alone; a hunk is applied in reverse
  only where its new side is found exactly. Writes are atomic (a temp file in the same
  folder, then rename, keeping the file's mode).

Symlinks: a change is recorded under the file the tool's path led to when the tool was
about to run, every link followed (`path`, and `real`: where it led when the turn
ended), the file a write through a link changes; a `path` given to find or revert a
change may name the link or the target. Revert writes to that real file, replacing it
(a link stays a link), and only while the path still leads there: if a link on the
path changed, it is a conflict and nothing is written, so a revert never writes through
a link to a place the turn did not change.

Hunks (`dave/revertChanges` `hunks: [{path, index}]`): `index` counts from 0 the `@@`
hunks of that file's `diff` in `dave/changes`; `path` is absolute or relative to the
session's cwd. Only a modified text file has hunks: a created or deleted file is
reverted whole.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import stat
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import attrs

# `paths` names a parameter below, hence the import of the function alone.
from dave_lsp.fsio import write_atomic
from dave_lsp.paths import absolute as absolute_path
from dave_lsp.permissions.rules import FILE_TOOLS, file_path
from dave_lsp.review.proposals import (
    MAX_DIFF_BYTES,
    MAX_SIDE_BYTES,
    FileText,
    Hunk,
    cut_diff,
    decode_text,
    diff_hunks,
    resolved_path,
    split_lines,
    unified_diff,
)
from dave_lsp.tools.summaries import display_path

log = logging.getLogger(__name__)

KEEP_BYTES = 1024 * 1024
MAX_TURNS = 20
MAX_SESSION_BYTES = 8 * 1024 * 1024
_FORMAT = 1
_CHUNK = 1024 * 1024


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class _NotAFile(Exception):
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

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"size": self.size, "sha256": self.sha256, "mode": self.mode}
        text = self.text
        if text is not None:
            data["text"] = text
        elif self.data is not None:
            data["base64"] = base64.b64encode(self.data).decode("ascii")
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Snapshot:
        content: bytes | None = None
        if isinstance(data.get("text"), str):
            content = data["text"].encode("utf-8")
        elif isinstance(data.get("base64"), str):
            content = base64.b64decode(data["base64"])
        return cls(int(data["size"]), str(data["sha256"]), int(data["mode"]), content)

    def without_data(self) -> Snapshot:
        return attrs.evolve(self, data=None)


def take_snapshot(path: str) -> Snapshot | None:
    """The file at `path` now; None when there is none. _NotAFile for a directory, a
    FIFO or an unreadable file (the FIFO is never opened: it would block)."""
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise _NotAFile(str(exc)) from exc
    if not stat.S_ISREG(info.st_mode):
        raise _NotAFile("not a regular file")
    digest = hashlib.sha256()
    chunks: list[bytes] = []
    size = 0
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
                if size <= KEEP_BYTES:
                    chunks.append(chunk)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _NotAFile(str(exc)) from exc
    data = b"".join(chunks) if size <= KEEP_BYTES else None
    return Snapshot(size, digest.hexdigest(), stat.S_IMODE(info.st_mode), data)


def _same(a: Snapshot | None, b: Snapshot | None) -> bool:
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

    def summary_json(self) -> dict[str, Any]:
        """The entry of a turn result's `changes`."""
        data: dict[str, Any] = {
            "path": self.path,
            "status": self.status,
            "added": self.added,
            "removed": self.removed,
        }
        return self._flags(data)

    def detail_json(self, cwd: str) -> dict[str, Any]:
        """The entry of `dave/changes` `files`: whole texts within MAX_SIDE_BYTES."""
        texts = self.texts()
        diff, cut = cut_diff(self.diff(cwd), MAX_DIFF_BYTES)
        data: dict[str, Any] = {
            "path": self.path,
            "status": self.status,
            "added": self.added,
            "removed": self.removed,
        }
        too_big = texts is not None and max(len(t.encode("utf-8")) for t in texts) > MAX_SIDE_BYTES
        if texts is None or too_big or cut:
            data["before"] = data["after"] = None
        else:
            data["before"] = texts[0] if self.before is not None else None
            data["after"] = texts[1] if self.after is not None else None
        data["diff"] = diff
        data = self._flags(data)
        if too_big or cut:
            data["truncated"] = True
        return data

    def _flags(self, data: dict[str, Any]) -> dict[str, Any]:
        if self.binary:
            data["binary"] = True
        if not self.kept:
            data["truncated"] = True
        return data

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "real": self.real,
            "before": self.before.to_json() if self.before else None,
            "after": self.after.to_json() if self.after else None,
            "added": self.added,
            "removed": self.removed,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FileChange:
        before, after = data.get("before"), data.get("after")
        return cls(
            path=str(data["path"]),
            real=str(data["real"]),
            before=Snapshot.from_json(before) if isinstance(before, dict) else None,
            after=Snapshot.from_json(after) if isinstance(after, dict) else None,
            added=int(data.get("added", 0)),
            removed=int(data.get("removed", 0)),
        )


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
        except _NotAFile as exc:
            log.debug("not tracking %s: %s", absolute, exc)

    def before_tool(self, tool_name: str, tool_input: dict[str, Any]) -> None:
        """`before` for a file tool's target; other tools are ignored."""
        if tool_name in FILE_TOOLS and (path := file_path(tool_input)):
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
            except _NotAFile as exc:
                log.warning("could not read %s after the turn: %s", path, exc)
                continue
            if not _same(before, after):
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

    def summary_json(self) -> list[dict[str, Any]]:
        """The turn result's `changes`."""
        return [change.summary_json() for change in self.files]

    def to_json(self) -> dict[str, Any]:
        """The `dave/changes` result."""
        return {
            "sessionId": self.session_id,
            "turn": self.turn,
            "files": [change.detail_json(self.cwd) for change in self.files],
        }

    def find(self, path: str) -> FileChange | None:
        """The change of `path`, named as listed or by a link that leads to it."""
        absolute = absolute_path(path, self.cwd)
        named = next((change for change in self.files if change.path == absolute), None)
        if named is not None:
            return named
        resolved = os.path.realpath(absolute)
        return next((change for change in self.files if change.path == resolved), None)

    def store_json(self) -> dict[str, Any]:
        return {
            "format": _FORMAT,
            "sessionId": self.session_id,
            "turn": self.turn,
            "cwd": self.cwd,
            "createdAt": self.created_at,
            "files": [change.to_json() for change in self.files],
        }

    @classmethod
    def from_store_json(cls, data: dict[str, Any]) -> ChangeSet:
        return cls(
            session_id=str(data["sessionId"]),
            turn=int(data["turn"]),
            cwd=str(data["cwd"]),
            files=tuple(FileChange.from_json(entry) for entry in data["files"]),
            created_at=str(data.get("createdAt", "")),
        )


def _encoded_size(side: Snapshot) -> int:
    text = side.text
    if text is not None:
        return len(json.dumps(text, ensure_ascii=False).encode("utf-8"))
    return 4 * ((side.size + 2) // 3) if side.data is not None else 0


def fit(change_set: ChangeSet, budget: int) -> ChangeSet:
    """`change_set` with its largest sides kept as hashes only, until their contents
    take at most `budget` bytes of JSON."""
    sides = [
        (_encoded_size(side), index, which)
        for index, change in enumerate(change_set.files)
        for which, side in (("before", change.before), ("after", change.after))
        if side is not None and side.kept
    ]
    total = sum(size for size, _, _ in sides)
    files = list(change_set.files)
    for size, index, which in sorted(sides, reverse=True):
        if total <= budget:
            break
        side = getattr(files[index], which)
        files[index] = attrs.evolve(files[index], **{which: side.without_data()})
        total -= size
    return attrs.evolve(change_set, files=tuple(files))


class ChangeStore:
    """Change sets on disk; every method is safe to call when the disk fails."""

    def __init__(
        self, root: Path, max_turns: int = MAX_TURNS, max_bytes: int = MAX_SESSION_BYTES
    ) -> None:
        self.root = root
        self.max_turns = max_turns
        self.max_bytes = max_bytes

    def _folder(self, session_id: str) -> Path:
        digest = hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        return self.root / digest

    def _files(self, session_id: str) -> list[tuple[int, Path]]:
        try:
            entries = list(self._folder(session_id).glob("*.json"))
        except OSError:
            return []
        turns = [(int(path.stem), path) for path in entries if path.stem.isdigit()]
        return sorted(turns)

    def save(self, change_set: ChangeSet) -> ChangeSet:
        """Keep `change_set` (nothing when it changed no file), dropping the session's
        oldest turns past the bounds. Returns what was kept (see `fit`)."""
        if not change_set.files:
            return change_set
        # Leave room for paths and hashes, which are not counted in the budget.
        change_set = fit(change_set, self.max_bytes * 15 // 16)
        folder = self._folder(change_set.session_id)
        try:
            data = json.dumps(change_set.store_json(), ensure_ascii=False).encode()
            write_atomic(
                folder / f"{change_set.turn:08d}.json", data, prefix=".tmp-", suffix=".part"
            )
        except OSError as exc:
            log.warning("could not save the changes of %s: %s", change_set.session_id, exc)
            return change_set
        self._prune(change_set.session_id, change_set.turn)
        return change_set

    def _prune(self, session_id: str, newest: int) -> None:
        files = []
        for turn, path in self._files(session_id):
            with contextlib.suppress(OSError):
                files.append((turn, path, path.stat().st_size))
        total = sum(size for _, _, size in files)
        while files and files[0][0] != newest:
            if len(files) <= self.max_turns and total <= self.max_bytes:
                break
            _, path, size = files.pop(0)
            with contextlib.suppress(OSError):
                path.unlink()
            total -= size

    def turns(self, session_id: str) -> list[int]:
        """The session's kept turns that changed files, oldest first."""
        return [turn for turn, _ in self._files(session_id)]

    def load(self, session_id: str, turn: int | None = None) -> ChangeSet | None:
        """The change set of `turn`, by default the last turn that changed files."""
        files = self._files(session_id)
        if turn is not None:
            files = [entry for entry in files if entry[0] == turn]
        if not files:
            return None
        try:
            data = json.loads(files[-1][1].read_text("utf-8"))
            change_set = ChangeSet.from_store_json(data)
        except (OSError, ValueError, TypeError, KeyError) as exc:
            log.warning("could not load the changes of %s: %s", session_id, exc)
            return None
        return change_set if change_set.session_id == session_id else None

    def delete_session(self, session_id: str) -> None:
        for _, path in self._files(session_id):
            with contextlib.suppress(OSError):
                path.unlink()
        with contextlib.suppress(OSError):
            self._folder(session_id).rmdir()


# ---------------------------------------------------------------- revert


@attrs.frozen
class HunkRef:
    """One hunk to revert: `index` into the `@@` hunks of `path`'s diff."""

    path: str
    index: int

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HunkRef:
        path, index = data.get("path"), data.get("index")
        if not isinstance(path, str) or not isinstance(index, int) or isinstance(index, bool):
            raise ValueError("a hunk is {path: string, index: integer}")
        return cls(path, index)


@attrs.frozen
class Conflict:
    path: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message}


@attrs.frozen
class RevertResult:
    reverted: tuple[str, ...]
    conflicts: tuple[Conflict, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "reverted": list(self.reverted),
            "conflicts": [conflict.to_json() for conflict in self.conflicts],
        }


def _find(lines: list[str], block: tuple[str, ...], expected: int) -> int | None:
    """Where `block` is in `lines`: at `expected` when it is there, else its only
    place; None when it is nowhere or in more than one place."""
    size = len(block)
    if size == 0:
        return 0 if not lines else None
    if list(block) == lines[expected : expected + size]:
        return expected
    places = [i for i in range(len(lines) - size + 1) if list(block) == lines[i : i + size]]
    return places[0] if len(places) == 1 else None


class _Refused(Exception):
    pass


def _current(change: FileChange, label: str, turn: int) -> Snapshot | None:
    if os.path.realpath(change.path) != change.real:
        raise _Refused(
            f"{label} now leads somewhere else than in turn {turn} (a symbolic link on its "
            f"path changed), so nothing was written; revert it by hand."
        )
    try:
        return take_snapshot(change.real)
    except _NotAFile as exc:
        raise _Refused(f"{label} cannot be read ({exc}); nothing was written.") from exc


def _changed_since(label: str, turn: int) -> str:
    return (
        f"{label} has changed since turn {turn} (edited by you or a later turn), so it "
        f"was left as it is; revert the later turns first, or undo this change by hand."
    )


def _revert_file(change: FileChange, label: str, turn: int) -> None:
    current = _current(change, label, turn)
    if _same(current, change.before):
        return  # already as it was
    if not _same(current, change.after):
        raise _Refused(_changed_since(label, turn))
    if change.before is None:
        os.unlink(change.real)
        return
    if change.before.data is None:
        raise _Refused(
            f"{label} was too large (over {KEEP_BYTES // (1024 * 1024)} MiB) for dave-lsp "
            f"to keep a copy; undo turn {turn}'s change with git or by hand."
        )
    mode = current.mode if current is not None else change.before.mode
    write_atomic(change.real, change.before.data, mode)


def _revert_hunks(change: FileChange, indices: Sequence[int], label: str, turn: int) -> None:
    if change.status != "modified" or change.texts() is None:
        what = change.status if change.texts() is not None else "binary or too large"
        raise _Refused(f"{label} ({what} in turn {turn}) has no hunks; revert the whole file.")
    hunks = change.hunks()
    wrong = [index for index in indices if not 0 <= index < len(hunks)]
    if wrong:
        raise _Refused(
            f"{label} has {len(hunks)} hunks in turn {turn}; there is no hunk {wrong[0]}."
        )
    current = _current(change, label, turn)
    text = current.text if current is not None else None
    if current is None or text is None:
        raise _Refused(_changed_since(label, turn))
    lines = split_lines(text)
    # Last hunk first, so the places of the earlier ones do not move.
    for index in sorted(set(indices), key=lambda i: hunks[i].after_start, reverse=True):
        hunk = hunks[index]
        place = _find(lines, hunk.after_lines, hunk.after_start)
        if place is None:
            raise _Refused(
                f"{label}: hunk {index} of turn {turn} no longer matches the file (it was "
                f"changed or already reverted), so the file was left as it is; undo that "
                f"hunk by hand."
            )
        lines[place : place + len(hunk.after_lines)] = hunk.before_lines
    write_atomic(change.real, "".join(lines).encode("utf-8"), current.mode)


def revert(
    change_set: ChangeSet,
    paths: Iterable[str] | None = None,
    hunks: Iterable[HunkRef] | None = None,
) -> RevertResult:
    """Restore what `change_set`'s turn changed: every file when neither `paths` nor
    `hunks` is given, else the files in `paths` whole and the hunks in `hunks` (of files
    not in `paths`). A file counts as reverted when it is as it was before the turn."""
    selected: dict[str, list[int] | None] = {}
    unknown: list[str] = []
    if paths is None and hunks is None:
        selected = {change.path: None for change in change_set.files}
    for path in paths or ():
        change = change_set.find(path)
        if change is None:
            unknown.append(path)
        else:
            selected[change.path] = None
    for ref in hunks or ():
        change = change_set.find(ref.path)
        if change is None:
            unknown.append(ref.path)
            continue
        chosen = selected.setdefault(change.path, [])
        if chosen is not None:
            chosen.append(ref.index)
    reverted: list[str] = []
    conflicts: list[Conflict] = []
    for path in dict.fromkeys(unknown):
        label = display_path(absolute_path(path, change_set.cwd), change_set.cwd)
        conflicts.append(Conflict(path, f"{label} was not changed by turn {change_set.turn}."))
    for path, indices in selected.items():
        change = change_set.find(path)
        assert change is not None
        label = display_path(path, change_set.cwd)
        try:
            if indices is None:
                _revert_file(change, label, change_set.turn)
            else:
                _revert_hunks(change, indices, label, change_set.turn)
        except _Refused as exc:
            conflicts.append(Conflict(path, str(exc)))
        except OSError as exc:
            conflicts.append(
                Conflict(path, f"{label} could not be written ({exc}); it was left as it is.")
            )
        else:
            reverted.append(path)
    return RevertResult(tuple(reverted), tuple(conflicts))
