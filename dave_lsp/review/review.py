"""Review of a session's changes: the session-side glue between the backend's tool
hooks, the user's accepted edits, and the change store.

- Before a file tool runs (the backend's PreToolUse hook, in every permission mode),
  `before_tool` snapshots its file in the running turn's `ChangeRecorder`.
- When the user accepted an edited version of a proposal (`editedContent`), the tool
  still runs as the model asked; `after_tool` (the PostToolUse hook) then writes the
  user's version over it, atomically, and returns what the model is told in the same
  turn (diff.edited_feedback), so it never believes its own version landed.
- `before_tool` (the backend's hook before every tool, in every mode) takes a
  checkpoint of the session's folders before the turn's first tool that may change a
  file (checkpoints.py), so whatever a tool does, Bash included, happens after it.
- `finish_turn` turns the recorder's snapshots, and the files that differ from the
  checkpoint, into the turn's `ChangeSet` (one change per file: a file both saw keeps
  the checkpoint's earlier side), kept by the `ChangeStore` for `dave/changes` and
  `dave/revertChanges`.

Paths are the files a tool's path leads to, links followed (files.resolved_path): a
proposal, the user's version, the change record and a revert all concern a link's
target, and the link stays a link.

File work runs in a thread: a snapshot reads up to a megabyte and hashes it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import attrs

from dave_lsp import events as ev
from dave_lsp.fsio import write_atomic
from dave_lsp.review.change_store import ChangeStore
from dave_lsp.review.changes import ChangeRecorder, ChangeSet, FileChange, file_change, same_file
from dave_lsp.review.checkpoints import TurnCheckpoint
from dave_lsp.review.diff import edited_feedback
from dave_lsp.review.files import FileText
from dave_lsp.tools.catalog import FILE_EDITS
from dave_lsp.tools.summaries import display_path

log = logging.getLogger(__name__)


@attrs.frozen
class AcceptedEdit:
    """The user's version of a proposal, to land once its tool has run."""

    path: str
    proposed: str
    edited: str


class Review:
    """One session's running turn of changes, and its store."""

    def __init__(
        self, session_id: str, cwd: str, store: ChangeStore, folders: Sequence[str] = ()
    ) -> None:
        self.session_id = session_id
        self.cwd = cwd
        self.store = store
        self.folders = tuple(folders) or (cwd,)
        self._recorder: ChangeRecorder | None = None
        self._checkpoint: TurnCheckpoint | None = None
        self._edits: dict[str, AcceptedEdit] = {}

    def start_turn(self, emit: Callable[[ev.Event], None] = lambda _event: None) -> None:
        """Begin a turn: from now on its file tools are followed, and a checkpoint of the
        folders is taken before its first tool that may change a file (`before_tool`);
        what the user is to be told about it goes to `emit` (call in the event loop)."""
        self._recorder = ChangeRecorder(self.cwd)
        self._edits.clear()
        self._checkpoint = TurnCheckpoint(self.store.checkpoints, self.folders, emit)

    async def before_tool(self, tool_name: str, tool_input: dict[str, Any]) -> None:
        """Any tool is about to run: the turn's checkpoint is taken first; a file tool's
        file is snapshot."""
        if self._checkpoint is not None:
            await self._checkpoint.before(tool_name)
        recorder = self._recorder
        if recorder is not None and tool_name in FILE_EDITS:
            await asyncio.to_thread(recorder.before_tool, tool_name, tool_input)

    def before_text(self, path: str) -> FileText | None:
        """What `path` held before the running turn's tools changed it (None: untouched)."""
        return self._recorder.before_text(path) if self._recorder is not None else None

    def accept_edit(self, tool_use_id: str, edit: AcceptedEdit) -> None:
        self._edits[tool_use_id] = edit

    async def after_tool(self, tool_use_id: str) -> str | None:
        """Land the user's version of this tool's file, if they edited the proposal;
        returns what the model is to be told, or None."""
        edit = self._edits.pop(tool_use_id, None)
        if edit is None:
            return None
        label = display_path(edit.path, self.cwd)
        try:
            await asyncio.to_thread(_write, edit.path, edit.edited)
        except OSError as exc:
            log.warning("could not write the user's version of %s: %s", edit.path, exc)
            return (
                f"The user edited your proposed change to {label} before accepting it, but "
                f"their version could not be written ({exc}); the file holds your version."
            )
        return edited_feedback(edit.proposed, edit.edited, label) or None

    async def finish_turn(
        self, turn: int, tool_names: Iterable[str] | None = None
    ) -> ChangeSet | None:
        """The turn's changes, stored (None when it changed no file). `tool_names`: the
        tools the turn ran (None: not known), to skip the checkpoint's second record
        after a turn whose tools cannot have changed files unseen."""
        recorder, self._recorder = self._recorder, None
        task, self._checkpoint = self._checkpoint, None
        self._edits.clear()
        found = await task.changes(tool_names) if task is not None else []
        if recorder is None or not (recorder.touched or found):
            return None
        files = _merged(await asyncio.to_thread(recorder.finish), found)
        if not files:
            return None
        change_set = ChangeSet(self.session_id, turn, self.cwd, tuple(files))
        await asyncio.to_thread(self.store.save, change_set)
        return change_set


def _merged(tools: list[FileChange], found: list[FileChange]) -> list[FileChange]:
    """One change per file: the file tools' in the order they touched them, then the
    others the checkpoint found; a file both saw keeps the checkpoint's earlier side
    (a Bash command may have changed it before a file tool did)."""
    earlier = {change.path: change for change in found}
    merged = []
    for change in tools:
        seen = earlier.pop(change.path, None)
        if seen is None:
            merged.append(change)
        elif not same_file(seen.before, change.after):
            merged.append(file_change(change.path, seen.before, change.after))
    return merged + list(earlier.values())


def _write(path: str, text: str) -> None:
    # Resolved again: write_atomic replaces what is at the path, and a link put there since
    # the proposal must stay a link.
    path = os.path.realpath(path)
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        mode = 0o644
    write_atomic(path, text.encode("utf-8"), mode)
