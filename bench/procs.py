"""Process-table helpers read from /proc: descendants, RSS, CPU time, CLI processes.

Everything here reads /proc directly (Linux only), so measuring never starts a process.
"""

from __future__ import annotations

import os
import resource
import signal
import time
from collections.abc import Callable, Iterable
from pathlib import Path

CLI_MARKER = b"claude_agent_sdk/_bundled/claude"
_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state is [0], ppid [1])."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(") ", 1)[1].split()


def alive(pid: int) -> bool:
    """Running and not a zombie."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def children_map() -> dict[int, list[int]]:
    """Parent PID to the PIDs of its live children, for the whole process table."""
    out: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields is None or fields[0] in ("Z", "X"):
            continue
        out.setdefault(int(fields[1]), []).append(int(entry))
    return out


def descendants(pid: int) -> list[int]:
    """Every live process started, directly or not, by `pid` (not `pid` itself)."""
    table = children_map()
    found: list[int] = []
    todo = list(table.get(pid, []))
    while todo:
        child = todo.pop()
        found.append(child)
        todo += table.get(child, [])
    return found


def is_cli(pid: int) -> bool:
    """Whether `pid` runs the Claude Code CLI bundled with claude-agent-sdk."""
    try:
        return CLI_MARKER in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def cli_descendants(pid: int) -> list[int]:
    return [p for p in descendants(pid) if is_cli(p)]


def rss_kb(pid: int) -> int:
    """VmRSS of one process in KiB (0 when it has gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def tree_rss_kb(pid: int) -> tuple[int, int]:
    """(RSS of `pid` plus all its descendants in KiB, number of processes counted)."""
    pids = [pid, *descendants(pid)]
    return sum(rss_kb(p) for p in pids), len(pids)


def cpu_seconds(pids: Iterable[int]) -> float:
    """User plus system CPU time of the given processes, in seconds."""
    total = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None and len(fields) > 12:
            total += int(fields[11]) + int(fields[12])
    return total / _TICKS


def self_cpu_seconds() -> float:
    """User plus system CPU time of this process (all its threads), in seconds."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def wait_quiet(
    pids: Callable[[], list[int]],
    *,
    window: float = 0.25,
    max_cpu: float = 0.05,
    timeout: float = 15.0,
) -> bool:
    """Block until the processes `pids()` names used less than `max_cpu` of one core
    over `window` seconds (a spare client connecting, a process ending, ...).

    Returns False if they were still busy after `timeout` seconds.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        watched = pids()
        before = cpu_seconds(watched)
        time.sleep(window)
        if cpu_seconds(watched) - before <= max_cpu * window:
            return True
    return False


def kill(pids: Iterable[int]) -> list[int]:
    """SIGKILL each live PID; returns those that were still alive."""
    killed = []
    for pid in pids:
        if alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except (ProcessLookupError, PermissionError):
                pass
    return killed


class Tracker:
    """Remembers every CLI process seen under this benchmark, to prove none is left."""

    def __init__(self) -> None:
        self.seen: set[int] = set()

    def note(self, root: int | None = None) -> list[int]:
        """Record the CLI processes under `root` (default: this process); returns them."""
        found = cli_descendants(root if root is not None else os.getpid())
        self.seen.update(found)
        return found

    def leftovers(self) -> list[int]:
        """CLI processes seen during the run that still live (now or as orphans)."""
        self.note()
        return sorted(p for p in self.seen if alive(p) and is_cli(p))
