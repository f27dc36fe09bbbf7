"""A shadow git repository of one folder: the folder's state as a git tree, kept outside
the folder, so a turn's changes can be found whatever made them (checkpoints.py).

`git --git-dir=<stateDir>/checkpoints/<hash> --work-tree=<folder>`: `git add -A` into an
index kept between turns (only files whose stat changed are read again), then
`write-tree`. Nothing is ever written to the folder or to the user's own `.git` (git
skips every entry named `.git`; a nested repository is a gitlink, its files not
followed). Symlinks are recorded as links, never followed.

The folder is hostile and so is the user's environment: git runs with an environment
made from scratch (no GIT_* variable of the user's shell, no system or user config;
HOME and XDG_CONFIG_HOME point into the shadow repository) and with a config of
dave-lsp's own: no hooks, no fsmonitor, no untracked cache, `safe.directory` for the
folder (an ownership check would refuse a folder of another user), and attributes off
(`info/attributes` unsets text, eol, filter, ident and working-tree-encoding over any
.gitattributes of the folder, so the bytes kept are the file's bytes, and no filter
driver could run even if a config named one).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import attrs

from dave_lsp.review.changes import KEEP_BYTES, Snapshot

# Written as the "global" config git reads (GIT_CONFIG_GLOBAL): the only config but the
# shadow repository's own, which `git init` writes and nothing changes.
_CONFIG = """\
[core]
\thooksPath = /dev/null
\tfsmonitor = false
\tuntrackedCache = false
\tsplitIndex = false
\tautocrlf = false
\tsafecrlf = false
\tsymlinks = true
\tfileMode = true
\tignoreCase = false
\tquotePath = false
\tsparseCheckout = false
[index]
\tsparse = false
[gc]
\tauto = 0
[maintenance]
\tauto = false
[advice]
\taddEmbeddedRepo = false
\taddIgnoredFile = false
[safe]
\tdirectory = *
"""
_ATTRIBUTES = "* -text -eol -filter -diff -merge -ident -working-tree-encoding -export-subst\n"
# A lock file this old was left by a git that died (one of ours is killed long before).
STALE_LOCK_SECONDS = 600.0
_REGULAR = (b"100644", b"100755")
_ABSENT = b"000000"
_CHUNK = 1024 * 1024


class GitError(Exception):
    """git failed or took too long; the message says which."""


class OverBound(Exception):
    """The folder has more files or bytes than a checkpoint takes; the message says so."""


@attrs.frozen
class Entry:
    """One regular file that differs between two trees: `path` relative to the work
    tree; `before` the blob it was (None: it did not exist), `after_exists` whether it
    exists in the second tree."""

    path: str
    before: str | None
    before_mode: int
    after_exists: bool


class ShadowRepo:
    """The shadow repository of the folder `work_tree` at `git_dir`. Not thread safe:
    its caller holds one lock per repository."""

    def __init__(self, git_dir: Path, work_tree: str, exclude: list[str]) -> None:
        self.git_dir = git_dir
        self.work_tree = work_tree
        # Folders of the work tree never checkpointed (dave-lsp's state folder, when
        # it lies inside), as gitignore patterns anchored at the top.
        self.exclude = exclude
        self._index = git_dir / "index"

    def _env(self) -> dict[str, str]:
        home = str(self.git_dir)
        return {
            "PATH": os.environ.get("PATH", os.defpath),
            "HOME": home,
            "XDG_CONFIG_HOME": home,
            "LC_ALL": "C",
            "GIT_DIR": home,
            "GIT_WORK_TREE": self.work_tree,
            "GIT_INDEX_FILE": str(self._index),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": str(self.git_dir / "dave-config"),
            "GIT_ATTR_NOSYSTEM": "1",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_NO_REPLACE_OBJECTS": "1",
            "GIT_LITERAL_PATHSPECS": "1",
        }

    def _run(self, args: list[str], deadline: float, ok: tuple[int, ...] = (0,)) -> bytes:
        left = deadline - time.monotonic()
        if left <= 0:
            raise GitError(f"git {args[0]} was not started: out of time")
        try:
            done = subprocess.run(
                ["git", *args],
                env=self._env(),
                cwd=self.work_tree,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=left,
                check=False,
            )
        except subprocess.TimeoutExpired:
            # Killed: it had no time to remove its lock, and nobody else holds ours.
            with contextlib.suppress(OSError):
                os.unlink(f"{self._index}.lock")
            raise GitError(f"git {args[0]} took too long") from None
        except OSError as exc:
            raise GitError(f"git could not run: {exc}") from exc
        if done.returncode not in ok:
            error = done.stderr.decode("utf-8", "replace").strip().splitlines()
            raise GitError(f"git {args[0]} failed: {error[0] if error else done.returncode}")
        return done.stdout

    def _popen(self, args: list[str], stdin: int) -> subprocess.Popen[bytes]:
        """git running `args`, its output read as it comes (the caller kills it at its
        deadline: `_killed_at`)."""
        try:
            return subprocess.Popen(
                ["git", *args],
                env=self._env(),
                cwd=self.work_tree,
                stdin=stdin,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
        except OSError as exc:
            raise GitError(f"git could not run: {exc}") from exc

    def ensure(self, deadline: float) -> None:
        """Make the repository when it is not there; (re)write dave-lsp's settings."""
        if not (self.git_dir / "HEAD").exists():
            env = {k: v for k, v in self._env().items() if k not in ("GIT_DIR", "GIT_WORK_TREE")}
            try:
                self.git_dir.mkdir(parents=True, exist_ok=True)
                subprocess.run(
                    ["git", "init", "--quiet", "--bare", "--template=", str(self.git_dir)],
                    env=env,
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    timeout=max(deadline - time.monotonic(), 0.1),
                    check=True,
                )
            except (OSError, subprocess.SubprocessError) as exc:
                raise GitError(f"git init failed: {exc}") from exc
        info = self.git_dir / "info"
        exclude = "".join(f"/{pattern}/\n" for pattern in self.exclude)
        try:
            info.mkdir(exist_ok=True)
            for path, text in (
                (self.git_dir / "dave-config", _CONFIG),
                (info / "attributes", _ATTRIBUTES),
                (info / "exclude", exclude),
            ):
                if not path.exists() or path.read_text("utf-8") != text:
                    path.write_text(text, "utf-8")
        except (OSError, ValueError) as exc:
            raise GitError(f"the checkpoint repository cannot be set up: {exc}") from exc

    def check_bounds(self, max_files: int, max_bytes: int, deadline: float) -> None:
        """OverBound when the files a checkpoint would take (.gitignore honoured) are
        more than `max_files` or `max_bytes`; stops reading as soon as they are."""
        args = ["ls-files", "-z", "--cached", "--others", "--exclude-standard"]
        with self._popen(args, stdin=subprocess.DEVNULL) as process:
            assert process.stdout is not None
            with _killed_at(process, deadline, "ls-files"):
                self._count(process.stdout, max_files, max_bytes, deadline)

    def _count(self, stream: IO[bytes], max_files: int, max_bytes: int, deadline: float) -> None:
        fd = stream.fileno()
        files = size = 0
        rest = b""
        seen: set[str] = set()
        while chunk := os.read(fd, _CHUNK):
            names = (rest + chunk).split(b"\0")
            rest = names.pop()
            for raw in names:
                name = os.fsdecode(raw)
                if name in seen:  # --cached and --others may both list a path
                    continue
                seen.add(name)
                files += 1
                with contextlib.suppress(OSError):
                    info = os.lstat(os.path.join(self.work_tree, name))
                    size += info.st_size if stat.S_ISREG(info.st_mode) else 0
                if files > max_files:
                    raise OverBound(f"over {max_files:,} files")
                if size > max_bytes:
                    raise OverBound(f"over {max_bytes // (1024 * 1024):,} MB")
            if time.monotonic() > deadline:
                break
        if time.monotonic() > deadline:  # also when the listing was killed at the deadline
            raise GitError("listing its files took too long")

    def _add(self, deadline: float) -> None:
        """The index made the folder as it is now (files that cannot be read are left
        out; only files whose stat changed are read)."""
        lock = Path(f"{self._index}.lock")
        with contextlib.suppress(OSError):
            if time.time() - lock.stat().st_mtime > STALE_LOCK_SECONDS:
                # Left by a git killed with its server: it would refuse every add.
                lock.unlink()
        self._run(["add", "--all", "--ignore-errors", "--", "."], deadline, ok=(0, 1))

    def snapshot(self, deadline: float) -> str:
        """The folder now, as a tree id."""
        self._add(deadline)
        return self._run(["write-tree"], deadline).decode("ascii").strip()

    def changed_since(self, before: str, deadline: float) -> list[Entry]:
        """The regular files that differ between the tree `before` and the folder now
        (symlinks and nested repositories are not followed, so not listed)."""
        self._add(deadline)
        args = ["diff-index", "--cached", "-r", "-z", "--no-renames", before]
        out = self._run(args, deadline)
        parts = out.split(b"\0")
        entries = []
        for meta, raw_path in zip(parts[0::2], parts[1::2], strict=False):
            fields = meta.lstrip(b":").split(b" ")
            if len(fields) < 5:
                continue
            mode_a, mode_b, blob_a = fields[0], fields[1], fields[2]
            if any(mode not in (*_REGULAR, _ABSENT) for mode in (mode_a, mode_b)):
                continue
            try:
                # A name that is not UTF-8 could not be stored nor sent: left out.
                path = raw_path.decode("utf-8")
            except UnicodeDecodeError:
                continue
            absent = mode_a == _ABSENT
            entries.append(
                Entry(
                    path=path,
                    before=None if absent else blob_a.decode("ascii"),
                    before_mode=0 if absent else int(mode_a, 8) & 0o777,
                    after_exists=mode_b != _ABSENT,
                )
            )
        return entries

    def read(self, entries: list[Entry], deadline: float) -> dict[str, Snapshot]:
        """The `before` blob of each entry as a Snapshot (bytes kept up to KEEP_BYTES),
        by blob id."""
        wanted = {entry.before: entry.before_mode for entry in entries if entry.before}
        found: dict[str, Snapshot] = {}
        if not wanted:
            return found
        with self._popen(["cat-file", "--batch"], stdin=subprocess.PIPE) as process:
            assert process.stdin is not None and process.stdout is not None
            with _killed_at(process, deadline, "cat-file"):
                for blob, mode in wanted.items():
                    if time.monotonic() > deadline:
                        raise GitError("reading the checkpoint took too long")
                    process.stdin.write(blob.encode("ascii") + b"\n")
                    process.stdin.flush()
                    header = process.stdout.readline().split()
                    if len(header) != 3 or header[1] != b"blob":
                        raise GitError(f"git cat-file: no blob {blob}")
                    found[blob] = _read_blob(process.stdout, int(header[2]), mode)
                    process.stdout.read(1)  # the newline after the content
        return found


@contextlib.contextmanager
def _killed_at(process: subprocess.Popen[bytes], deadline: float, name: str) -> Iterator[None]:
    """Run the block with `process` killed at `deadline` (a read of its output then
    ends) and when the block ends; a killed process's reads raise GitError."""
    timer = threading.Timer(max(deadline - time.monotonic(), 0), process.kill)
    timer.start()
    try:
        yield
    except (OSError, ValueError) as exc:
        raise GitError(f"git {name} failed: {exc}") from exc
    finally:
        timer.cancel()
        if process.poll() is None:
            process.kill()


def _read_blob(stream: IO[bytes], size: int, mode: int) -> Snapshot:
    digest = hashlib.sha256()
    chunks: list[bytes] = []
    left = size
    while left > 0:
        chunk = stream.read(min(left, _CHUNK))
        if not chunk:
            raise GitError("git cat-file ended early")
        digest.update(chunk)
        if size <= KEEP_BYTES:
            chunks.append(chunk)
        left -= len(chunk)
    data = b"".join(chunks) if size <= KEEP_BYTES else None
    return Snapshot(size, digest.hexdigest(), mode, data)
