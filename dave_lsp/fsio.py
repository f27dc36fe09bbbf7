"""Atomic file writes: the one way the server replaces a file it owns or edits.

The data goes to a temporary file in the same folder, which then replaces the target in
one rename: a reader sees the old file or the new one, never half of either, and a link
planted at the path is replaced, not followed. The temporary file is removed when
anything fails. Callers choose the temporary file's prefix and suffix so that their
folder's listing (saved sessions, change sets) never takes one for a finished file; in
a user's folder it is named `.dave-revert-*`, recognisably dave-lsp's."""

from __future__ import annotations

import contextlib
import os
import tempfile


def write_atomic(
    path: str | os.PathLike[str],
    data: bytes,
    mode: int | None = None,
    *,
    prefix: str = ".dave-revert-",
    suffix: str = "",
) -> None:
    """Replace the file at `path` (not a symlink: the caller resolved it) with `data`.
    The file gets `mode`, or stays 0600 as mkstemp makes it."""
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=prefix, suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
