"""Checkpoints where git is missing: a bounded walk of one folder, each regular file
recorded by its stat and SHA-256, with the same methods as shadow_git.py's `ShadowRepo`,
so checkpoints.py treats both alike (and gives the same `FileChange`s).

- What is walked: every regular file below the folder, symlinks never followed (nor
  listed), skipping `SKIPPED` directories wherever they are (`.git`, `node_modules`,
  `.venv`, caches: what a checkpoint of a repository without git would mostly take
  in vain), dave-lsp's state folder when it lies inside, a nested repository (a
  directory holding a `.git`), names that are not UTF-8, files that cannot be read,
  and what the folder's `.gitignore` files ignore (`Ignore`: their patterns, `!`
  included, a deeper file's first, as git reads them; not `info/exclude` nor the
  user's global excludes).
- Bounds: the walk counts files and bytes as it goes and stops at `max_files` or
  `max_bytes` (`OverBound`), and at the deadline (`GitError`, as git's work does).
- Between turns (in memory): the last walk's records, so a file whose size, mtime,
  ctime and inode are unchanged is not read again (unless its mtime was too recent to
  trust: `RACY_NS`, as git's "racily clean" entries), and the last few walks by id
  (what a checkpoint names). A restart reads every file again once.
- The bytes of each file up to KEEP_BYTES are kept on disk, once per content, in one
  append-only file (`<stateDir>/checkpoints/<folder>.walk/pack`: a file each would
  cost the first walk of 5,000 files (20 MB) 2.4 s instead of 0.3 s), found by hash
  (an index in memory, made again from the pack by a new server) and checked against
  it when read: a change's earlier side comes from there, so it can be reverted; a
  bigger file's is its size and hash only (listed, not reverted), as changes.py's
  Snapshot rules say. Like the shadow repositories, the pack is never pruned.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import os
import re
import stat
import struct
import time
from collections import OrderedDict
from pathlib import Path

import attrs

from dave_lsp.review.changes import KEEP_BYTES, Snapshot, read_kept
from dave_lsp.review.shadow_git import Entry, GitError, OverBound

log = logging.getLogger(__name__)

# Directories never walked, wherever they are.
SKIPPED = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        "node_modules",
        ".venv",
        "__pycache__",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".tox",
    }
)
# A file whose mtime or ctime is this recent when it is read may change again within
# the same timestamp tick unseen: it is read again by the next walk.
RACY_NS = 2_000_000_000
# The walks kept by id (a turn's checkpoint names one; several sessions may share a
# folder).
KEPT_WALKS = 8
# The .gitignore read: at most this many bytes.
IGNORE_BYTES = 64 * 1024
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
# The pack is opened without following a link (a state folder inside a cloned folder
# could hold one): never a write to a file elsewhere, nor a wait on a FIFO.
_APPEND = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | _NOFOLLOW
# Before each file's bytes in the pack: their SHA-256 and their size.
_HEADER = struct.Struct(">32sQ")
_OPEN = os.O_RDONLY | os.O_NONBLOCK | _NOFOLLOW


@attrs.frozen
class Record:
    """One regular file as a walk found it: its stat (what tells whether it must be
    read again) and its content's size and SHA-256."""

    size: int
    mtime_ns: int
    ctime_ns: int
    ino: int
    mode: int
    sha256: str
    trusted: bool  # its stat may be trusted next time (not racily clean)

    def same_stat(self, info: os.stat_result) -> bool:
        return self.trusted and (self.size, self.mtime_ns, self.ctime_ns, self.ino) == (
            info.st_size,
            info.st_mtime_ns,
            info.st_ctime_ns,
            info.st_ino,
        )

    @property
    def blob(self) -> str:
        """Its id in `Entry.before`: the hash and the size (a Snapshot needs both)."""
        return f"{self.sha256}:{self.size}"


class WalkRepo:
    """The walked checkpoints of the folder `work_tree`, their bytes under `store`. Not
    thread safe: its caller holds one lock per folder (as for ShadowRepo)."""

    def __init__(
        self, store: Path, work_tree: str, exclude: list[str], max_files: int, max_bytes: int
    ) -> None:
        self.store = store
        self.work_tree = work_tree
        # Folders of the work tree never walked (dave-lsp's state folder, when it lies
        # inside), relative to it.
        self.exclude = frozenset(os.path.normpath(path) for path in exclude)
        self.max_files = max_files
        self.max_bytes = max_bytes
        self._pack = store / "pack"
        self._fd: int | None = None
        self._kept: dict[str, tuple[int, int]] = {}  # the pack's (offset, size), by hash
        self._scanned = False
        self._last: dict[str, Record] = {}
        self._walks: OrderedDict[str, dict[str, Record]] = OrderedDict()

    def ensure(self, deadline: float) -> None:
        """Make the folder of kept bytes; find what an earlier server kept there."""
        try:
            self.store.mkdir(parents=True, exist_ok=True)
            if not self._scanned:
                self._kept = self._scan()
                self._scanned = True
        except (OSError, ValueError, struct.error) as exc:
            raise GitError(f"the checkpoint folder cannot be read: {exc}") from exc

    def check_bounds(self, max_files: int, max_bytes: int, deadline: float) -> None:
        """The bounds every walk holds to (it counts as it goes: no walk of its own)."""
        self.max_files, self.max_bytes = max_files, max_bytes

    def snapshot(self, deadline: float) -> str:
        """The folder now, as the id of a walk kept in memory. OverBound when the
        folder is over the bounds."""
        return self._keep(self._walk(deadline))

    def changed_since(self, before: str, deadline: float) -> list[Entry]:
        """The regular files that differ between the walk `before` and the folder now."""
        earlier = self._walks.get(before)
        if earlier is None:
            raise GitError("the checkpoint is no longer kept")
        try:
            now = self._walk(deadline)
        except OverBound as exc:  # the next checkpoint says so, once
            raise GitError(f"the folder is now {exc}") from exc
        self._keep(now)
        entries = []
        for path in sorted(earlier.keys() | now.keys()):
            was, is_ = earlier.get(path), now.get(path)
            if was is not None and is_ is not None and was.blob == is_.blob:
                continue
            entries.append(
                Entry(
                    path=path,
                    before=None if was is None else was.blob,
                    before_mode=0 if was is None else was.mode,
                    after_exists=is_ is not None,
                )
            )
        return entries

    def read(self, entries: list[Entry], deadline: float) -> dict[str, Snapshot]:
        """The `before` side of each entry as a Snapshot, by its id: with its bytes when
        they were kept (and are intact), else its size and hash only."""
        found: dict[str, Snapshot] = {}
        for entry in entries:
            if entry.before is None or entry.before in found:
                continue
            if time.monotonic() > deadline:
                raise GitError("reading the checkpoint took too long")
            sha, _, size = entry.before.partition(":")
            data = self._load(sha) if int(size) <= KEEP_BYTES else None
            found[entry.before] = Snapshot(int(size), sha, entry.before_mode, data)
        return found

    # -- the walk ---------------------------------------------------------------------

    def _keep(self, walk: dict[str, Record]) -> str:
        """`walk` kept by an id of its contents (an unchanged folder keeps one copy)."""
        digest = hashlib.sha256()
        for path in sorted(walk):
            digest.update(f"{path}\0{walk[path].blob}\0".encode("utf-8", "surrogateescape"))
        walk_id = digest.hexdigest()
        self._walks[walk_id] = walk
        self._walks.move_to_end(walk_id)
        while len(self._walks) > KEPT_WALKS:
            self._walks.popitem(last=False)
        return walk_id

    def _walk(self, deadline: float) -> dict[str, Record]:
        started = time.time_ns()
        found: dict[str, Record] = {}
        files = size = 0
        # Each folder still to walk, with the .gitignore files above it and theirs.
        pending: list[tuple[str, _Ignores]] = [("", ())]
        while pending:
            folder, ignores = pending.pop()
            try:
                with os.scandir(os.path.join(self.work_tree, folder)) as listing:
                    children = list(listing)
            except OSError:
                continue  # gone, or not readable: as git's --ignore-errors
            if folder and any(child.name == ".git" for child in children):
                continue  # a nested repository: not followed, as git does not
            if any(child.name == ".gitignore" for child in children):
                ignores = (*ignores, (folder, Ignore.of(os.path.join(self.work_tree, folder))))
            for child in children:
                if time.monotonic() > deadline:
                    raise GitError("walking the folder took too long")
                if child.name == ".git":
                    continue  # the user's repository (a folder, or a file naming one)
                path = f"{folder}/{child.name}" if folder else child.name
                try:
                    path.encode("utf-8")  # a name that is not UTF-8 could not be sent
                    is_dir = child.is_dir(follow_symlinks=False)
                    if _ignored(ignores, path, child.name, is_dir):
                        continue
                    if is_dir:
                        if child.name not in SKIPPED and path not in self.exclude:
                            pending.append((path, ignores))
                        continue
                    if not child.is_file(follow_symlinks=False):
                        continue  # a link, a FIFO, a socket, a device
                    info = child.stat(follow_symlinks=False)
                except (OSError, UnicodeEncodeError):
                    continue
                files += 1
                size += info.st_size
                if files > self.max_files:
                    raise OverBound(f"over {self.max_files:,} files")
                if size > self.max_bytes:
                    raise OverBound(f"over {self.max_bytes // (1024 * 1024):,} MB")
                known = self._last.get(path)
                record = known if known and known.same_stat(info) else self._read(path, started)
                if record is not None:
                    found[path] = record
        self._last = found
        return found

    def _read(self, path: str, started: int) -> Record | None:
        """The file at `path` (relative) read and hashed, its bytes kept when small
        enough; None when it is not a regular file any more, or cannot be read."""
        try:
            fd = os.open(os.path.join(self.work_tree, path), _OPEN)
        except OSError:
            return None
        with os.fdopen(fd, "rb") as handle:
            try:
                info = os.fstat(fd)
                if not stat.S_ISREG(info.st_mode):
                    return None  # swapped for a FIFO since the listing: never read
                size, sha, data = read_kept(handle)
            except OSError:
                return None
        if data is not None:
            self._store(sha, data)
        recent = started - max(info.st_mtime_ns, info.st_ctime_ns) < RACY_NS
        return Record(
            size=size,
            mtime_ns=info.st_mtime_ns,
            ctime_ns=info.st_ctime_ns,
            ino=info.st_ino,
            mode=stat.S_IMODE(info.st_mode),
            sha256=sha,
            trusted=not recent and size == info.st_size,
        )

    # -- kept bytes -------------------------------------------------------------------

    def _scan(self) -> dict[str, tuple[int, int]]:
        """The bytes an earlier server kept in the pack: their places, by hash. A tail
        that is not a whole record (a server killed while writing) is cut off, so what
        is appended next can be found again."""
        kept: dict[str, tuple[int, int]] = {}
        offset = 0
        try:
            with os.fdopen(os.open(self._pack, os.O_RDWR | _NOFOLLOW), "r+b") as handle:
                end = os.fstat(handle.fileno()).st_size
                while offset + _HEADER.size <= end:
                    handle.seek(offset)
                    digest, size = _HEADER.unpack(handle.read(_HEADER.size))
                    start = offset + _HEADER.size
                    if size > KEEP_BYTES or start + size > end:
                        break
                    kept[digest.hex()] = (start, size)
                    offset = start + size
                if offset < end:
                    handle.truncate(offset)
        except FileNotFoundError:
            pass
        return kept

    def _store(self, sha: str, data: bytes) -> None:
        """Keep `data` under its hash, once: appended to the pack in one write (whole,
        even beside another server appending to it)."""
        if sha in self._kept:
            return
        record = _HEADER.pack(bytes.fromhex(sha), len(data)) + data
        try:
            if self._fd is None:
                self._fd = os.open(self._pack, _APPEND, 0o600)
            written = os.write(self._fd, record)
            end = os.lseek(self._fd, 0, os.SEEK_CUR)  # after our record, whoever else wrote
        except OSError as exc:  # a full disk: that file's change is listed, not reverted
            log.debug("the bytes of %s are not kept: %s", sha, exc)
            return
        if written == len(record):
            self._kept[sha] = (end - len(data), len(data))

    def _load(self, sha: str) -> bytes | None:
        place = self._kept.get(sha)
        if place is None:
            return None
        offset, size = place
        try:
            with os.fdopen(os.open(self._pack, _OPEN), "rb") as handle:
                handle.seek(offset)
                data = handle.read(size)
        except OSError:
            return None
        return data if hashlib.sha256(data).hexdigest() == sha else None


@attrs.frozen
class _Pattern:
    regex: re.Pattern[str]
    negated: bool
    anchored: bool  # matched against the path from the top, else against the name
    dirs_only: bool


@attrs.frozen
class Ignore:
    """The patterns of one .gitignore; the last one that matches a path decides, as in
    git. A subset of git's rules: `*` also matches `/` in a
    pattern that holds one; a directory ignored is not walked, so `!` cannot bring
    back a file below it (as in git)."""

    patterns: tuple[_Pattern, ...] = ()

    @classmethod
    def of(cls, folder: str) -> Ignore:
        try:
            fd = os.open(os.path.join(folder, ".gitignore"), _OPEN)
        except OSError:
            return cls()
        with os.fdopen(fd, "rb") as handle:
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    return cls()
                text = handle.read(IGNORE_BYTES).decode("utf-8", "replace")
            except OSError:
                return cls()
        return cls(tuple(p for line in text.splitlines() if (p := _pattern(line))))

    def decides(self, path: str, name: str, is_dir: bool) -> bool | None:
        """Whether `path` (relative to the .gitignore's folder) is ignored; None when
        no pattern matches it."""
        for pattern in reversed(self.patterns):
            if pattern.dirs_only and not is_dir:
                continue
            if pattern.regex.match(path if pattern.anchored else name):
                return not pattern.negated
        return None


# The .gitignore files above a folder, each with its folder (relative), top first.
_Ignores = tuple[tuple[str, Ignore], ...]


def _ignored(ignores: _Ignores, path: str, name: str, is_dir: bool) -> bool:
    """Whether `path` is ignored: the deepest .gitignore with a pattern that matches
    it decides."""
    for folder, ignore in reversed(ignores):
        decided = ignore.decides(path[len(folder) + 1 :] if folder else path, name, is_dir)
        if decided is not None:
            return decided
    return False


def _pattern(line: str) -> _Pattern | None:
    """One .gitignore line as a pattern; None for a blank line or a comment."""
    line = line.rstrip(" \t\r")
    if not line or line.startswith("#"):
        return None
    negated = line.startswith("!")
    if negated or line.startswith("\\"):
        line = line[1:]
    dirs_only = line.endswith("/")
    line = line.rstrip("/")
    if line.endswith("/**"):  # everything below a directory: the directory itself
        line, dirs_only = line[: -len("/**")], True
    while line.startswith("**/"):
        line = line[len("**/") :]
    anchored = "/" in line
    line = line.lstrip("/")
    if not line:
        return None
    regex = re.compile(fnmatch.translate(line))
    return _Pattern(regex, negated, anchored, dirs_only)
