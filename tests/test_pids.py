"""The exit path's kill (pids.kill_pid): a process in a group of its own (a stdio MCP
server) ends with what it started; one in ours ends alone, and we stay."""

from __future__ import annotations

import os
import subprocess
import time

from dave_lsp.pids import LIVE_PIDS, kill_pid, pid_alive


def _wait_gone(pid: int) -> bool:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.02)
    return False


def test_a_group_leader_is_killed_with_its_children() -> None:
    # An MCP server started in a session of its own, which started a child of its own.
    server = subprocess.Popen(
        ["sh", "-c", "sleep 60 & echo $!; wait"],
        stdout=subprocess.PIPE,
        start_new_session=True,
        text=True,
    )
    assert server.stdout is not None
    child = int(server.stdout.readline())
    LIVE_PIDS.add(server.pid)
    kill_pid(server.pid)
    server.wait(5)
    assert _wait_gone(child), "the server's child outlived it"
    assert server.pid not in LIVE_PIDS


def test_a_process_in_our_group_is_killed_alone() -> None:
    process = subprocess.Popen(["sleep", "60"])
    assert os.getpgid(process.pid) == os.getpgid(0)
    kill_pid(process.pid)
    assert process.wait(5) == -9
    assert pid_alive(os.getpid())
