"""The OpenAI agent's own tools against a hostile folder and model (issue 24, findings 3,
8 and 9), through the real server over stdio with the fake model scripting the calls:

- a catastrophic regex in Grep does not freeze the server (dave/listSessions answers);
- a Glob in a folder holding `a -> .` ends, bounded, under a memory cap, and a cancel
  leaves the server idle;
- a Write to a symlink is asked and reviewed as a write to its target: the question names
  both, the user's edited version lands in the target, the link stays a link, and
  dave/changes and dave/revertChanges cover the target.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pytest_lsp import ClientServerConfig

from dave_lsp.backends.openai import search
from dave_lsp.testing import FakeModelServer
from tests.conftest import Server
from tests.harness.lsp import DaveClient, initialize, new_session
from tests.test_openai_agent import openai_options, tool_call

ENV_KEY = {"OPENAI_API_KEY": "sk-fake-for-tests"}
# The server's address space, capped: far above what a server running these turns needs
# (about 1.1 GiB of mostly reserved thread stacks and arenas), far below what today's
# endless Glob reaches.
MEMORY_CAP = 2 * 1024**3


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.fixture(scope="module")
async def capped(
    fake_model: FakeModelServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[DaveClient, Path]]:
    """One server for the search tests, under `prlimit --as`, the OpenAI backend on the
    fake model, in plan mode (Glob and Grep run in every mode), in a hostile folder: a
    line that takes Python's regex engine 2^28 steps, a FIFO, and two symlink loops."""
    project = tmp_path_factory.mktemp("hostile")
    # Python's backtracking engine needs about 2^n steps for `(a+)+$` on n a's and a b.
    (project / "data.log").write_text("start\n" + "a" * 28 + "b\n" + "a" * 5000 + "b\nend\n")
    os.mkfifo(project / "pipe")  # opening it to read would block until a writer came
    (project / "one.txt").write_text("1\n")
    (project / "sub").mkdir()
    (project / "sub" / "two.txt").write_text("2\n")
    (project / "a").symlink_to(".")
    (project / "sub" / "up").symlink_to("..")
    command = ["prlimit", f"--as={MEMORY_CAP}", "--", sys.executable, "-m", "dave_lsp"]
    client = await ClientServerConfig(server_command=command, client_factory=DaveClient).start()
    assert isinstance(client, DaveClient)
    options = {
        **openai_options(fake_model),
        "env": ENV_KEY,
        "cwd": str(project),
        "stateDir": str(tmp_path_factory.mktemp("state")),
        "prewarm": 0,
        "permissionMode": "plan",
    }
    await initialize(client, options)
    try:
        yield client, project
    finally:
        await asyncio.wait_for(client.shutdown_session(), 30)


async def _answers_quickly(client: DaveClient) -> float:
    """How long dave/listSessions takes to answer."""
    started = time.monotonic()
    await asyncio.wait_for(client.request("dave/listSessions", {}), 10)
    return time.monotonic() - started


def _server_pid(client: DaveClient) -> int:
    process = client._server
    assert process is not None
    return process.pid


# -- Grep ----------------------------------------------------------------------------------


async def test_a_catastrophic_regex_does_not_freeze_the_server(
    capped: tuple[DaveClient, Path],
) -> None:
    client, _ = capped
    session = new_session()
    future, token = client.start_query(session, tool_call("Grep", {"pattern": "(a+)+$"}))
    await client.wait_report(token, "toolUse")
    assert await _answers_quickly(client) < 0.5
    result = await asyncio.wait_for(future, 20)
    assert result["toolResults"][0]["isError"] is False
    assert client.texts(token) == "Tool said: No matches found."
    # A pattern the linear-time engine lacks is refused in one line naming what.
    result, token = await client.query(session, tool_call("Grep", {"pattern": r"(a)\1"}))
    said = client.texts(token)
    assert "\n" not in said
    assert "backreferences" in said and "lookaround" in said


# -- Glob ----------------------------------------------------------------------------------


async def test_a_glob_through_a_symlink_loop_ends_bounded(
    capped: tuple[DaveClient, Path],
) -> None:
    client, project = capped
    session = new_session()
    future, token = client.start_query(session, tool_call("Glob", {"pattern": "**/*.txt"}))
    await client.wait_report(token, "toolUse")
    assert await _answers_quickly(client) < 0.5
    await asyncio.wait_for(future, 20)
    listed = client.texts(token).removeprefix("Tool said: ").splitlines()
    assert sorted(listed) == ["one.txt", "sub/two.txt"]
    # At most 200 files, and the listing says it stopped there.
    many = project / "many"
    many.mkdir()
    for number in range(250):
        (many / f"{number}.dat").write_text("")
    _, token = await client.query(session, tool_call("Glob", {"pattern": "**/*.dat"}))
    listed = client.texts(token).removeprefix("Tool said: ").splitlines()
    assert len(listed) == 201
    assert listed[-1] == "… stopped at 200 files; narrow the pattern or path"


async def test_a_cancelled_glob_stops_its_work(capped: tuple[DaveClient, Path]) -> None:
    client, _ = capped
    future, token = client.start_query(new_session(), tool_call("Glob", {"pattern": "**/*.none"}))
    await client.wait_report(token, "toolUse")
    await asyncio.sleep(0.5)  # the search is under way (today's never ends)
    client.cancel(token)
    try:
        await asyncio.wait_for(future, 10)
    except Exception as exc:  # the cancel came first
        assert "cancel" in str(exc)
    # Nothing goes on working after the cancel: the server idles.
    await asyncio.sleep(0.5)
    pid = _server_pid(client)
    before = _cpu_seconds(pid)
    await asyncio.sleep(1.5)
    assert _cpu_seconds(pid) - before < 0.5
    assert await _answers_quickly(client) < 0.5


# -- a Write to a symbolic link ------------------------------------------------------------


async def test_a_reviewed_write_to_a_symlink_lands_in_its_target(
    server: Server, fake_model: FakeModelServer, tmp_path: Path
) -> None:
    project, outside = tmp_path / "project", tmp_path / "outside"
    project.mkdir()
    outside.mkdir()
    target = outside / "target.txt"
    target.write_text("original\n")
    link = project / "config.txt"
    link.symlink_to("../outside/target.txt")
    session = new_session()
    options = {**openai_options(fake_model), "env": ENV_KEY, "cwd": str(project)}
    async with server(**options) as client:
        future, token = client.start_query(session, "write config.txt model text")
        request = await client.wait_report(token, "permissionRequest")
        assert request["message"] == "Allow Write config.txt → ../outside/target.txt?"
        proposal = request["proposal"]
        assert proposal["path"] == str(target)
        assert (proposal["original"], proposal["proposed"]) == ("original\n", "model text")
        await client.request(
            "dave/permission",
            {"requestId": request["requestId"], "decision": "allow", "editedContent": "mine\n"},
        )
        result = await asyncio.wait_for(future, 60)
        # The link is still the link, and its target holds what the user accepted.
        assert link.is_symlink() and os.readlink(link) == "../outside/target.txt"
        assert target.read_text() == "mine\n"
        assert result["changes"] == [
            {"path": str(target), "status": "modified", "added": 1, "removed": 1}
        ]
        review = await client.request("dave/changes", {"sessionId": session})
        [file] = review["files"]
        assert (file["path"], file["before"], file["after"]) == (
            str(target),
            "original\n",
            "mine\n",
        )
        undone = await client.request("dave/revertChanges", {"sessionId": session})
        assert undone == {"reverted": [str(target)], "conflicts": []}
        assert target.read_text() == "original\n"
        assert link.is_symlink()

        # acceptEdits lets edits in the folder through, not one through a link out of it.
        await client.request(
            "dave/setPermissionMode", {"sessionId": session, "mode": "acceptEdits"}
        )
        future, token = client.start_query(session, "write config.txt again")
        request = await client.wait_report(token, "permissionRequest")
        assert request["message"] == "Allow Write config.txt → ../outside/target.txt?"
        await client.request(
            "dave/permission", {"requestId": request["requestId"], "decision": "deny"}
        )
        await asyncio.wait_for(future, 60)
    assert target.read_text() == "original\n"


# -- the bounds themselves -----------------------------------------------------------------


def test_a_search_ends_when_cancelled_or_out_of_time(tmp_path: Path) -> None:
    """What a cancelled turn or the 10 s bound does to a search already running (the
    server tests above end before either can happen)."""
    for number in range(20):
        (tmp_path / f"d{number}").mkdir()
        (tmp_path / f"d{number}" / "f.txt").write_text("x\n")
    regex = search.compile_regex("x")
    cancelled = search.Stop()
    cancelled.cancel()
    assert search.glob("**/*.txt", str(tmp_path), cancelled) == (
        [],
        "… stopped: the turn was cancelled",
    )
    assert search.grep(regex, str(tmp_path), "", str(tmp_path), cancelled)[2] == (
        "… stopped: the turn was cancelled"
    )
    late = search.Stop(seconds=0)
    time.sleep(0.01)
    note = "… stopped after 0 s; narrow the pattern or path"
    assert search.glob("**/*.txt", str(tmp_path), late) == ([], note)
    assert search.grep(regex, str(tmp_path), "", str(tmp_path), late) == ([], 0, note)
    assert len(search.glob("**/*.txt", str(tmp_path), search.Stop())[0]) == 20
