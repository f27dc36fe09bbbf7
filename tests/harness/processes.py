"""The process trees tests count: live Claude Code CLI processes, read from /proc, and
which of them a given process started."""

from __future__ import annotations

import os
from pathlib import Path


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(") ", 1)[1].split()
    return None if fields[0] == "Z" else int(fields[1])


def cli_processes(ancestor: int | None = None) -> list[int]:
    """PIDs of live Claude Code CLI processes (the bundled binary), from /proc; with
    `ancestor`, only those started (directly or not) by that process. Zombies, which
    have ended but not been reaped, do not count."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if b"claude_agent_sdk/_bundled/claude" not in cmdline:
            continue
        pid = int(entry)
        parent = _parent(pid)
        if parent is None:
            continue
        if ancestor is not None:
            while parent not in (None, 0, 1, ancestor):
                parent = _parent(parent)
            if parent != ancestor:
                continue
        pids.append(pid)
    return pids
