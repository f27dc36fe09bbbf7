"""Change sets on disk, so review and revert survive eviction and restarts.

`ChangeStore` keeps each turn's change set as one JSON file,
`<root>/<hash of sessionId>/<turn>.json` (root: `<stateDir>/changes`), written
atomically. Bounds: per session the last `MAX_TURNS` (20) turns that changed files and
`MAX_SESSION_BYTES` (8 MiB on disk), oldest turns dropped first. A single turn over the
byte bound keeps its largest sides as hashes only, until it fits (`fit`). The file's
format is the store's own (`_FORMAT`), not the wire's. The store also holds the
server's `Checkpoints` (checkpoints.py), the other half of what review keeps on disk.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import attrs

from dave_lsp.fsio import write_atomic
from dave_lsp.review.changes import ChangeSet, FileChange, Snapshot
from dave_lsp.review.checkpoints import CheckpointOptions, Checkpoints

log = logging.getLogger(__name__)

MAX_TURNS = 20
MAX_SESSION_BYTES = 8 * 1024 * 1024
_FORMAT = 1


def _snapshot_data(side: Snapshot) -> dict[str, Any]:
    data: dict[str, Any] = {"size": side.size, "sha256": side.sha256, "mode": side.mode}
    text = side.text
    if text is not None:
        data["text"] = text
    elif side.data is not None:
        data["base64"] = base64.b64encode(side.data).decode("ascii")
    return data


def _snapshot(data: dict[str, Any]) -> Snapshot:
    content: bytes | None = None
    if isinstance(data.get("text"), str):
        content = data["text"].encode("utf-8")
    elif isinstance(data.get("base64"), str):
        content = base64.b64decode(data["base64"])
    return Snapshot(int(data["size"]), str(data["sha256"]), int(data["mode"]), content)


def _change_data(change: FileChange) -> dict[str, Any]:
    return {
        "path": change.path,
        "real": change.real,
        "before": _snapshot_data(change.before) if change.before else None,
        "after": _snapshot_data(change.after) if change.after else None,
        "added": change.added,
        "removed": change.removed,
    }


def _change(data: dict[str, Any]) -> FileChange:
    before, after = data.get("before"), data.get("after")
    return FileChange(
        path=str(data["path"]),
        real=str(data["real"]),
        before=_snapshot(before) if isinstance(before, dict) else None,
        after=_snapshot(after) if isinstance(after, dict) else None,
        added=int(data.get("added", 0)),
        removed=int(data.get("removed", 0)),
    )


def stored(change_set: ChangeSet) -> dict[str, Any]:
    """`change_set` in the store's format."""
    return {
        "format": _FORMAT,
        "sessionId": change_set.session_id,
        "turn": change_set.turn,
        "cwd": change_set.cwd,
        "createdAt": change_set.created_at,
        "files": [_change_data(change) for change in change_set.files],
    }


def from_stored(data: dict[str, Any]) -> ChangeSet:
    """A change set read back from the store's format."""
    return ChangeSet(
        session_id=str(data["sessionId"]),
        turn=int(data["turn"]),
        cwd=str(data["cwd"]),
        files=tuple(_change(entry) for entry in data["files"]),
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
        self,
        root: Path,
        checkpoints: CheckpointOptions | None = None,
        max_turns: int = MAX_TURNS,
        max_bytes: int = MAX_SESSION_BYTES,
    ) -> None:
        self.root = root
        self.max_turns = max_turns
        self.max_bytes = max_bytes
        # The session folders' checkpoints, beside the change sets (`stateDir/checkpoints`).
        self.checkpoints = Checkpoints(root.parent / "checkpoints", checkpoints)

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
            data = json.dumps(stored(change_set), ensure_ascii=False).encode()
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
            change_set = from_stored(data)
        except (OSError, ValueError, TypeError, KeyError) as exc:
            log.warning("could not load the changes of %s: %s", session_id, exc)
            return None
        return change_set if change_set.session_id == session_id else None

    def drop_turns(self, session_id: str, first: int) -> None:
        """Forget the change sets of turn `first` and later (dave/rewind)."""
        for turn, path in self._files(session_id):
            if turn >= first:
                with contextlib.suppress(OSError):
                    path.unlink()

    def delete_session(self, session_id: str) -> None:
        for _, path in self._files(session_id):
            with contextlib.suppress(OSError):
                path.unlink()
        with contextlib.suppress(OSError):
            self._folder(session_id).rmdir()
