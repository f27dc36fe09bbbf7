"""Revert: restore what a turn changed, whole files or chosen hunks, never
overwriting work.

A file whose bytes are not exactly the turn's result (the user or a later turn changed
it) is a conflict and is left alone; a hunk is applied in reverse only where its new
side is found exactly. Writes are atomic (a temp file in the same folder, then rename,
keeping the file's mode). Revert writes to the real file a change was recorded under,
replacing it (a link stays a link), and only while the path still leads there: if a
link on the path changed, it is a conflict and nothing is written, so a revert never
writes through a link to a place the turn did not change.

Hunks (`dave/revertChanges` `hunks: [{path, index}]`): `index` counts from 0 the `@@`
hunks of that file's `diff` in `dave/changes`; `path` is absolute or relative to the
session's cwd. Only a modified text file has hunks: a created or deleted file is
reverted whole.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import attrs

from dave_lsp.fsio import write_atomic
from dave_lsp.paths import absolute as absolute_path
from dave_lsp.review.changes import (
    KEEP_BYTES,
    ChangeSet,
    FileChange,
    NotAFile,
    Snapshot,
    same_file,
    take_snapshot,
)
from dave_lsp.review.diff import split_lines
from dave_lsp.tools.summaries import display_path


@attrs.frozen
class HunkRef:
    """One hunk to revert: `index` into the `@@` hunks of `path`'s diff."""

    path: str
    index: int


@attrs.frozen
class Conflict:
    path: str
    message: str


@attrs.frozen
class RevertResult:
    reverted: tuple[str, ...]
    conflicts: tuple[Conflict, ...]


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
    except NotAFile as exc:
        raise _Refused(f"{label} cannot be read ({exc}); nothing was written.") from exc


def _changed_since(label: str, turn: int) -> str:
    return (
        f"{label} has changed since turn {turn} (edited by you or a later turn), so it "
        f"was left as it is; revert the later turns first, or undo this change by hand."
    )


def _revert_file(change: FileChange, label: str, turn: int) -> None:
    current = _current(change, label, turn)
    if same_file(current, change.before):
        return  # already as it was
    if not same_file(current, change.after):
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
