"""Glob and Grep for the OpenAI agent: searches a hostile folder cannot stall.

A cloned repository chooses its own tree and the model chooses the pattern, so both
searches are bounded in every way that matters for a server that must keep answering:

- Time: a search stops after `SEARCH_SECONDS` and says so; it also stops at the next
  file or folder once its `Stop` is set (the turn was cancelled), so a cancelled search
  never keeps a thread busy.
- Links: the walk never descends into a symlinked folder, so `a -> .` (or any loop of
  links) is walked once; a symlinked file is listed or searched only when it resolves to
  a place inside the searched folder.
- Results: Glob stops at `MAX_LISTED` files; Grep keeps `MAX_LISTED` matching lines, each
  cut at `GREP_LINE_CHARS`, in at most `GREP_MAX_FILES` files of at most
  `GREP_MAX_FILE_BYTES` each.
- Regular expressions run on RE2 (google-re2), whose matching time is linear in the
  text: Python's backtracking `re` takes 2^n steps for `(a+)+$` on n a's, holding the
  interpreter (and so the event loop) all along. RE2 has no backreferences and no
  lookaround; such a pattern is refused with one line saying so.

Glob patterns: `/`-separated components matched as Python's glob matches them (`*`, `?`,
`[...]` within a name; `**` alone for any number of folders; a wildcard does not match a
name that starts with `.` unless the component does). Only files are listed.
"""

from __future__ import annotations

import fnmatch
import os
import stat
import threading
import time
from collections.abc import Iterator
from typing import Any, Final

import re2  # untyped: mypy sees Any (ignore_missing_imports)

from dave_lsp import paths
from dave_lsp.review.files import decode_text

SEARCH_SECONDS: Final = 10.0
MAX_LISTED: Final = 200
GREP_LINE_CHARS: Final = 300
GREP_MAX_FILES: Final = 20_000
GREP_MAX_FILE_BYTES: Final = 1024 * 1024
# Folders no search should descend into: version control and dependency trees.
SKIPPED_DIRS: Final = frozenset({".git", ".hg", ".svn", "node_modules", "__pycache__", ".venv"})

RE2_SYNTAX: Final = (
    "Grep uses RE2 syntax (linear time): no backreferences (\\1) and no lookaround"
    " ((?=, (?!, (?<=, (?<!); write \\Z as \\z"
)


class SearchError(ValueError):
    """The pattern cannot be searched for; the message is for the model."""


class Stop:
    """When a search must end: its deadline, or `cancel()` from the turn's task."""

    def __init__(self, seconds: float = SEARCH_SECONDS) -> None:
        self.seconds = seconds
        self._deadline = time.monotonic() + seconds
        self._cancelled = threading.Event()

    def cancel(self) -> None:
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def __bool__(self) -> bool:
        """True once the search must end."""
        return self._cancelled.is_set() or time.monotonic() > self._deadline

    def note(self) -> str:
        """The line that ends a result cut short by this stop."""
        if self.cancelled:
            return "… stopped: the turn was cancelled"
        return f"… stopped after {self.seconds:g} s; narrow the pattern or path"


# ---------------------------------------------------------------- Glob


def _components(pattern: str, root: str) -> list[str] | None:
    """The pattern's components relative to `root`; None when it leads out of it."""
    if os.path.isabs(pattern):
        relative = os.path.relpath(os.path.normpath(pattern), root)
        if relative == ".." or relative.startswith(".." + os.sep):
            return None
        pattern = relative
    parts = [part for part in pattern.split("/") if part not in ("", ".")]
    if ".." in parts:
        return None
    return parts


def _hidden(name: str) -> bool:
    return name.startswith(".")


def _matches(name: str, part: str) -> bool:
    # As Python's glob: a wildcard never matches a leading dot the pattern does not spell.
    if _hidden(name) and not _hidden(part):
        return False
    return fnmatch.fnmatchcase(name, part)


def _closure(parts: list[str], states: set[int]) -> frozenset[int]:
    """`states` with every position after a `**` added (it may match no folder)."""
    out = set(states)
    for state in states:
        while state < len(parts) and parts[state] == "**":
            state += 1
            out.add(state)
    return frozenset(out)


def _step(parts: list[str], states: frozenset[int], name: str, is_dir: bool) -> frozenset[int]:
    """Where the pattern can be after matching one more path component."""
    after: set[int] = set()
    for state in states:
        if state == len(parts):
            continue
        part = parts[state]
        if part == "**":
            if _hidden(name):
                continue
            if is_dir:
                after.add(state)  # `**` takes this folder and may take more
            if state + 1 == len(parts):
                after.add(state + 1)  # a final `**` matches the files too
        elif _matches(name, part):
            after.add(state + 1)
    return _closure(parts, after)


def glob(pattern: str, root: str, stop: Stop) -> tuple[list[str], str]:
    """Up to MAX_LISTED + 1 files under `root` matching `pattern` (absolute paths), and
    the note to end the listing with ("" when the walk finished)."""
    parts = _components(pattern, root)
    if not parts:
        return [], ""
    found: list[str] = []
    # Depth first, an explicit stack: a deep tree costs memory for its width, not frames.
    stack = [(root, _closure(parts, {0}))]
    while stack:
        if stop:
            return found, stop.note()
        folder, states = stack.pop()
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda entry: entry.name, reverse=True)
        except OSError:
            continue  # unreadable, or gone since it was listed
        for entry in entries:
            try:
                # follow_symlinks=False: a symlinked folder is never walked into.
                real_dir = entry.is_dir(follow_symlinks=False)
                is_file = not real_dir and entry.is_file()
            except OSError:
                continue
            if real_dir and entry.name in SKIPPED_DIRS:
                continue
            after = _step(parts, states, entry.name, real_dir)
            if real_dir and any(state < len(parts) for state in after):
                stack.append((entry.path, after))
            elif is_file and len(parts) in after and paths.inside(entry.path, root):
                found.append(entry.path)
                if len(found) > MAX_LISTED:
                    return found, f"… stopped at {MAX_LISTED} files; narrow the pattern or path"
    return found, ""


def newest_first(paths: list[str]) -> list[str]:
    def mtime(path: str) -> float:
        try:
            return os.path.getmtime(path)
        except OSError:
            return 0.0

    return sorted(paths, key=mtime, reverse=True)


# ---------------------------------------------------------------- Grep


def compile_regex(pattern: str) -> Any:
    """The pattern on RE2; SearchError in one line when RE2 cannot take it."""
    options = re2.Options()
    options.log_errors = False  # RE2 would write every bad pattern to stderr
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        detail = exc.args[0] if exc.args else exc
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        raise SearchError(f"pattern is not supported: {detail}. {RE2_SYNTAX}") from None


def files_under(root: str, stop: Stop) -> Iterator[str]:
    """The files under `root` (or `root` itself), in name order, lazily, never through a
    symlinked folder; ends when `stop` says so."""
    if os.path.isfile(root):
        yield root
        return
    for folder, dirs, files in os.walk(root):  # followlinks=False: links are not walked
        if stop:
            return
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
        for name in sorted(files):
            yield os.path.join(folder, name)


def grep(regex: Any, root: str, only: str, cwd: str, stop: Stop) -> tuple[list[str], int, str]:
    """(the first MAX_LISTED lines under `root` that `regex` matches, as `path:line: text`
    with paths relative to `cwd`; how many lines matched; the note to end with, "" when
    the search finished). `only`: a glob the file's name or path must match."""
    hits: list[str] = []
    total = scanned = 0
    for path in files_under(root, stop):
        if not paths.inside(path, root):
            continue  # a symlink out of the folder the permission covered
        rel = _shown(path, cwd)
        if only and not any(fnmatch.fnmatch(n, only) for n in (os.path.basename(path), rel)):
            continue
        scanned += 1
        if scanned > GREP_MAX_FILES:
            return hits, total, f"… stopped after {GREP_MAX_FILES} files; narrow path or glob"
        if stop:
            return hits, total, stop.note()
        text = _text_of(path)
        if text is None:
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            if regex.search(line):
                total += 1
                if len(hits) < MAX_LISTED:
                    shown = line if len(line) <= GREP_LINE_CHARS else line[:GREP_LINE_CHARS] + "…"
                    hits.append(f"{rel}:{number}: {shown}")
    # The walk ends early, and quietly, when the search must stop.
    return hits, total, stop.note() if stop else ""


def _text_of(path: str) -> str | None:
    """The file's text; None when it is too large, binary or unreadable."""
    try:
        info = os.stat(path)
        # Only regular files: opening a FIFO a folder holds would block the thread forever.
        if not stat.S_ISREG(info.st_mode) or info.st_size > GREP_MAX_FILE_BYTES:
            return None
        with open(path, "rb") as handle:
            return decode_text(handle.read(GREP_MAX_FILE_BYTES + 1))
    except OSError:
        return None


def _shown(path: str, cwd: str) -> str:
    relative = os.path.relpath(path, cwd)
    return path if relative.startswith("..") else relative
