"""Whether a path lies in a session's folder, the trust boundary of what reaches the
model unasked: symlinks are resolved on both sides, so a link in the folder that
points outside it is outside it, and a folder reached through a link still holds its
own files."""

from __future__ import annotations

import os

# What the model is told instead of a file's text it may only get by asking.
OUTSIDE = "outside the session's folder: read it with Read (asks)"


def inside(path: str, folder: str) -> bool:
    """Whether `path` (absolute, or relative to `folder`) lies in `folder`."""
    real_folder = os.path.realpath(folder)
    target = os.path.realpath(os.path.join(folder, path))
    return target == real_folder or target.startswith(real_folder.rstrip(os.sep) + os.sep)
