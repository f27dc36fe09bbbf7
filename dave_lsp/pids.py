"""The backend processes this server started, by PID, so every way out can end them.

Kept apart from the Claude backend so the exit path needs no SDK import: importing
claude-agent-sdk takes over a second, which `initialize` must not wait for.
"""

from __future__ import annotations

import contextlib
import os
import signal

# PIDs of every CLI process this server started and has not yet seen end.
LIVE_PIDS: set[int] = set()


def kill_pid(pid: int) -> None:
    """SIGKILL `pid`; when it leads a process group of its own (an MCP server started in
    a new session), the whole group, so what it started ends with it. Never our own
    group: a process started in ours leads none."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    LIVE_PIDS.discard(pid)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers signal 0; it has ended all the same.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().split(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return True
