"""Checkpoints: every file a turn changes is recorded, whichever tool changed it (Bash's
too), not only what the file tools' hooks saw (changes.py).

Before a turn's first tool that may change a file runs, `Checkpoints.take` records each
of the session's folders (its cwd and additional folders) as a tree in that folder's
shadow git repository (shadow_git.py, under `<stateDir>/checkpoints/`, .gitignore
honoured), or, where git is not installed, as a walk of its files by stat and hash
(walk_checkpoint.py: same bounds, same changes); a folder's first checkpoint in a
server run, which reads every file, starts with the turn, in the background. When the
turn ends, `Checkpoints.changes` records the folders again and gives the regular files
that differ as `FileChange`s (their earlier bytes from the checkpoint, kept under the
Snapshot rules; their bytes now from disk), which review.py merges with the file
tools' changes into the turn's one ChangeSet. A turn that runs no tool, or only reads,
takes no checkpoint; one whose tools were only reads and the file tools (which the
hooks already follow) skips the second record (`needs_scan`).

`TurnCheckpoint.before`, called before every tool runs (the backends' before-tool
hook, in every permission mode), starts the checkpoint and waits for it, at most
`timeoutSeconds`: a checkpoint not ready by then is not used for that turn (its tools
go on, and Bash's changes of that turn are not recorded: said in a status), and goes
on being made for the next turn (the first one of a big folder hashes every file;
later ones only read the files whose stat changed).

Bounds (`initializationOptions.checkpoints`, `CheckpointOptions`): a folder over
`maxFiles` files or `maxMegabytes` (counted, .gitignore honoured, the first time the
server checkpoints it and again every `RECHECK_SECONDS`; a walk counts every time),
and a folder whose git work (or walk) took over `HARD_FACTOR` times `timeoutSeconds`
(then killed), get no checkpoints for the server's life: said once, as a notice
(checkpoints are then off there, and the file tools' changes are still recorded).
Symlinks and nested repositories are not followed: a change through a link is recorded
where the link leads, when that is inside a session folder. The git work runs in
daemon threads, so a server that exits never waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import attrs

from dave_lsp import events as ev
from dave_lsp.paths import within
from dave_lsp.review.changes import FileChange, NotAFile, Snapshot, file_change, take_snapshot
from dave_lsp.review.shadow_git import GitError, OverBound, ShadowRepo
from dave_lsp.review.walk_checkpoint import WalkRepo
from dave_lsp.tools import catalog
from dave_lsp.tools.editor import TOOL_PREFIX as EDITOR_TOOLS

log = logging.getLogger(__name__)
_T = TypeVar("_T")

# How often a folder's size is counted again (the count walks the whole folder).
RECHECK_SECONDS = 300.0
# The git work of one checkpoint is killed after this many times `timeoutSeconds`.
HARD_FACTOR = 10
# Bytes of file contents one turn's checkpoint changes keep in memory; beyond it, sides
# are kept as hashes only (listed, not reverted): the change store keeps 8 MiB anyway.
TURN_KEEP_BYTES = 16 * 1024 * 1024

READS = frozenset(
    {
        *catalog.READ_ONLY,
        catalog.WEB_FETCH,
        catalog.WEB_SEARCH,
        "TodoWrite",
        "AskUserQuestion",
        "ExitPlanMode",
        f"mcp__{catalog.CLIENT_FILES_SERVER}__{catalog.READ}",  # an ACP client's Read
    }
)
"""The tools that change no file of the session's folders (and the editor's tools,
`reads`): no checkpoint is taken for them."""


def reads(tool_name: str) -> bool:
    """Whether the tool changes no file: no checkpoint is needed before it."""
    return tool_name in READS or tool_name.startswith(EDITOR_TOOLS)


def needs_scan(tool_names: Iterable[str] | None) -> bool:
    """Whether a turn that ran these tools (None: not known, say a failed turn) may
    have changed files the hooks did not see (the file tools' they do see)."""
    return tool_names is None or any(
        not reads(name) and name not in catalog.FILE_EDITS for name in tool_names
    )


@attrs.frozen
class CheckpointOptions:
    """`initializationOptions.checkpoints`."""

    enabled: bool = True
    max_files: int = 50_000
    max_megabytes: int = 200
    timeout_seconds: float = 10.0


@attrs.frozen
class Checkpoint:
    """The session's folders before a turn: a tree per folder (absolute, links
    resolved) that has one, and what the user is to be told (once per folder)."""

    trees: dict[str, str] = attrs.field(factory=dict)
    notices: tuple[str, ...] = ()


class _Folder:
    """One folder's shadow repository and what the server knows of it."""

    def __init__(self, repo: ShadowRepo | WalkRepo) -> None:
        self.repo = repo
        self.lock = threading.Lock()
        self.ready = False
        self.counted_at: float | None = None
        self.off: str | None = None  # why it gets no checkpoints
        self.told = False


class Checkpoints:
    """The server's checkpoints, one shadow repository per folder under `root`
    (`<stateDir>/checkpoints`); safe to use from several sessions at once."""

    def __init__(self, root: Path, options: CheckpointOptions | None = None) -> None:
        self.root = root
        self.options = options or CheckpointOptions()
        self._folders: dict[str, _Folder] = {}
        self._guard = threading.Lock()
        # Without git, each folder is walked instead (walk_checkpoint.py).
        self._git = shutil.which("git") is not None
        if not self._git and self.options.enabled:
            log.info("git was not found on PATH: checkpoints walk the session folders")
        # Notices of a checkpoint that finished after its turn had ended: the next turn
        # says them (only the event loop touches this).
        self.unsaid: list[str] = []

    def known(self, folders: Sequence[str]) -> bool:
        """Whether this server has checkpointed (or given up on) each of the folders
        before: a first checkpoint reads every file, a later one only what changed."""
        if not self.options.enabled:
            return True
        with self._guard:
            return all(folder in self._folders for folder in _distinct(folders))

    async def take(self, folders: Sequence[str]) -> Checkpoint:
        """The folders now (off the event loop). Never raises: a folder that cannot be
        recorded is left out, and said so once."""
        if not self.options.enabled:
            return Checkpoint()
        return await _in_thread(self._take, _distinct(folders))

    async def changes(self, checkpoint: Checkpoint) -> list[FileChange]:
        """The regular files that changed in the checkpoint's folders since it was
        taken (off the event loop); never raises."""
        if not checkpoint.trees:
            return []
        return await _in_thread(self._changes, checkpoint)

    # -- in a thread ------------------------------------------------------------------

    def _folder(self, folder: str) -> _Folder:
        with self._guard:
            known = self._folders.get(folder)
            if known is None:
                digest = hashlib.sha256(folder.encode("utf-8", "surrogateescape")).hexdigest()
                state = str(self.root.parent.resolve())
                inside = within(state, folder) and state != folder
                exclude = [os.path.relpath(state, folder)] if inside else []
                options = self.options
                repo: ShadowRepo | WalkRepo = (
                    ShadowRepo(self.root / digest[:32], folder, exclude)
                    if self._git
                    else WalkRepo(
                        self.root / f"{digest[:32]}.walk",
                        folder,
                        exclude,
                        options.max_files,
                        options.max_megabytes * 1024 * 1024,
                    )
                )
                known = self._folders[folder] = _Folder(repo)
            return known

    def _take(self, folders: list[str]) -> Checkpoint:
        options = self.options
        deadline = time.monotonic() + options.timeout_seconds * HARD_FACTOR
        trees: dict[str, str] = {}
        notices: list[str] = []
        for path in folders:
            folder = self._folder(path)
            with folder.lock:
                if folder.off is None:
                    try:
                        trees[path] = self._record(folder, deadline)
                    except OverBound as exc:
                        folder.off = (
                            f"{exc} (initializationOptions.checkpoints: maxFiles "
                            f"{options.max_files:,}, maxMegabytes {options.max_megabytes:,})"
                        )
                    except GitError as exc:
                        if time.monotonic() < deadline:
                            log.warning("no checkpoint of %s this turn: %s", path, exc)
                            continue
                        folder.off = (
                            f"its checkpoint took over {options.timeout_seconds * HARD_FACTOR:g}"
                            f" s (ten times initializationOptions.checkpoints.timeoutSeconds)"
                        )
                if folder.off is not None and not folder.told:
                    folder.told = True
                    message = (
                        f"checkpoints are off for {path}: {folder.off}; changes made there "
                        f"by Bash are not recorded (the file tools' changes are)"
                    )
                    log.warning("%s", message)
                    notices.append(message)
        return Checkpoint(trees, tuple(notices))

    def _record(self, folder: _Folder, deadline: float) -> str:
        repo = folder.repo
        if not folder.ready:
            repo.ensure(deadline)
            folder.ready = True
        now = time.monotonic()
        if folder.counted_at is None or now - folder.counted_at > RECHECK_SECONDS:
            options = self.options
            repo.check_bounds(options.max_files, options.max_megabytes * 1024 * 1024, deadline)
            folder.counted_at = now
        return repo.snapshot(deadline)

    def _changes(self, checkpoint: Checkpoint) -> list[FileChange]:
        deadline = time.monotonic() + self.options.timeout_seconds * HARD_FACTOR
        budget = [TURN_KEEP_BYTES]
        changes: list[FileChange] = []
        for path, before in checkpoint.trees.items():
            folder = self._folder(path)
            try:
                with folder.lock:
                    repo = folder.repo
                    entries = repo.changed_since(before, deadline)
                    blobs = repo.read(entries, deadline)
            except GitError as exc:
                log.warning("the changes in %s since the turn began are unknown: %s", path, exc)
                continue
            for entry in entries:
                absolute = os.path.join(path, entry.path)
                if os.path.realpath(absolute) != absolute:
                    continue  # a link on its way now: not a file of the folder's own
                try:
                    after = take_snapshot(absolute)
                except NotAFile as exc:
                    log.debug("not listing %s: %s", absolute, exc)
                    continue
                before_side = blobs.get(entry.before) if entry.before else None
                if entry.before and before_side is None:
                    continue
                sides = [_within(side, budget) for side in (before_side, after)]
                if not (sides[0] is None and sides[1] is None):
                    changes.append(file_change(absolute, sides[0], sides[1]))
        return [change for change in changes if not _same(change)]


class TurnCheckpoint:
    """One turn's checkpoint, taken when its first tool that may change a file is about
    to run (`before`, which waits for it): a turn that only answers, or only reads,
    costs nothing. A folder the server has not checkpointed yet is started at once, in
    the background. Its end asks what changed since (`changes`). Notices go to `emit` as
    `status` events. Call in the event loop."""

    def __init__(
        self, checkpoints: Checkpoints, folders: Sequence[str], emit: Callable[[ev.Event], None]
    ) -> None:
        self._checkpoints = checkpoints
        self._folders = tuple(folders)
        self._emit = emit
        self._late = False
        self._ended = False
        # Set once a tool that may change a file waited for the checkpoint: without one,
        # the turn's end has nothing to compare and must not wait for a first checkpoint
        # (a cancelled turn would stall on a big folder's).
        self._needed = False
        self._task: asyncio.Task[Checkpoint] | None = None
        unsaid, checkpoints.unsaid = checkpoints.unsaid, []
        for notice in unsaid:
            emit(ev.Status("working", notice))
        if not checkpoints.known(self._folders):
            # A folder's first checkpoint reads every file: start it now, alongside the
            # connecting and the model's answer (it is this turn's: no tool ran yet).
            self._start()

    def _start(self) -> asyncio.Task[Checkpoint]:
        if self._task is None:
            self._task = asyncio.create_task(self._checkpoints.take(self._folders))
            self._task.add_done_callback(self._tell)
        return self._task

    async def before(self, tool_name: str) -> None:
        """`tool_name` is about to run: the checkpoint is taken first (a tool waits at
        most `timeoutSeconds` for it)."""
        if reads(tool_name):
            return
        # Before any tool that could change a file: the file tools' earlier sides are
        # never older than the checkpoint's.
        self._needed = True
        await self._ready(self._start())

    def _tell(self, task: asyncio.Task[Checkpoint]) -> None:
        if task.cancelled():
            return
        if (error := task.exception()) is not None:
            log.error("the turn's checkpoint failed", exc_info=error)
            return
        if self._ended:  # the turn's reports are closed: the next turn says them
            self._checkpoints.unsaid += task.result().notices
            return
        for notice in task.result().notices:
            self._emit(ev.Status("working", notice))

    async def _ready(self, task: asyncio.Task[Checkpoint]) -> None:
        if self._late or task.done():
            return
        limit = self._checkpoints.options.timeout_seconds
        try:
            await asyncio.wait_for(asyncio.shield(task), limit)
        except TimeoutError:
            self._late = True
            message = (
                f"the checkpoint of this session's folders was not ready after {limit:g} s "
                f"(initializationOptions.checkpoints.timeoutSeconds), so this turn's "
                f"changes made by Bash are not recorded; it is still being made, for the "
                f"next turn"
            )
            log.warning("%s", message)
            self._emit(ev.Status("working", message))
        except Exception:  # not meant to happen (`take` never raises): logged by _tell
            return

    async def changes(self, tool_names: Iterable[str] | None) -> list[FileChange]:
        """What changed since the checkpoint, after a turn that ran `tool_names` (None:
        not known); nothing when those cannot change files unseen, or when the
        checkpoint was not ready in time. The turn ends with it."""
        try:
            return await self._changes(tool_names)
        finally:
            self._ended = True

    async def _changes(self, tool_names: Iterable[str] | None) -> list[FileChange]:
        task = self._task
        if task is None or self._late or not self._needed or not needs_scan(tool_names):
            return []  # (not needed: no tool that changes files ran)
        await self._ready(task)
        if not task.done() or task.cancelled() or task.exception() is not None:
            return []
        try:
            return await self._checkpoints.changes(task.result())
        except Exception:  # a bug here must not fail the turn: its file tools' changes stay
            log.exception("the changes since the turn's checkpoint are unknown")
            return []


async def _in_thread(work: Callable[..., _T], *args: Any) -> _T:
    """`work(*args)` in a daemon thread of its own (asyncio's default executor is joined
    when the loop closes: a server that exits would wait for a big checkpoint)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[_T] = loop.create_future()

    def run() -> None:
        try:
            outcome: tuple[_T | None, BaseException | None] = (work(*args), None)
        except BaseException as exc:  # handed to the awaiting task
            outcome = (None, exc)
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits any more
            loop.call_soon_threadsafe(_settle, future, *outcome)

    threading.Thread(target=run, name="checkpoint", daemon=True).start()
    return await future


def _settle(future: asyncio.Future[_T], result: _T | None, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)  # type: ignore[arg-type]


def _same(change: FileChange) -> bool:
    before, after = change.before, change.after
    return before is not None and before.same(after)


def _within(side: Snapshot | None, budget: list[int]) -> Snapshot | None:
    """`side`, as a hash only once the turn's budget of kept bytes is spent."""
    if side is None or side.data is None:
        return side
    if len(side.data) > budget[0]:
        return side.without_data()
    budget[0] -= len(side.data)
    return side


def _distinct(folders: Sequence[str]) -> list[str]:
    """The folders, resolved, without one that lies in another (its files are that
    one's)."""
    resolved = list(dict.fromkeys(os.path.realpath(folder) for folder in folders))
    return [
        folder
        for folder in resolved
        if not any(other != folder and within(folder, other) for other in resolved)
    ]
