"""Sessions that scale and survive (issue 4), through the real server and CLI:
resume after a restart, adopting a conversation, listing, bounded processes, idle
eviction, spares, per-session modes and allow-always rules."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pygls.exceptions import JsonRpcException

from dave_lsp.testing import FakeModelServer
from tests.conftest import Server
from tests.harness.lsp import DaveClient, new_session
from tests.harness.processes import cli_processes


def server_clis(client: DaveClient) -> set[int]:
    assert client._server is not None
    return set(cli_processes(client._server.pid))


async def eventually(check: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


async def sessions_by_id(client: DaveClient) -> dict[str, dict[str, Any]]:
    listing = await client.request("dave/listSessions", {})
    return {s["sessionId"]: s for s in listing["sessions"]}


async def test_a_session_resumes_after_the_server_restarts(
    server: Server, fake_model: FakeModelServer
) -> None:
    session = new_session()
    async with server() as first:
        await first.query(session, "remember fig-81")
    async with server() as second:
        result, _ = await second.query(session, "recall")
        assert result["text"] == "Seen: remember fig-81"
        # Resumed, not replayed: the prompt went out alone.
        assert "recall" in [r.prompt for r in fake_model.requests_containing("fig-81")]


async def test_new_session_adopts_an_existing_conversation(server: Server) -> None:
    async with server() as first:
        result, _ = await first.query(new_session(), "remember date-12")
        conversation = result["backendSessionId"]
    async with server() as second:
        created = await second.request(
            "dave/newSession", {"sessionId": "adopted", "resume": conversation}
        )
        assert created == {"sessionId": "adopted"}
        result, _ = await second.query("adopted", "recall")
        assert result["text"] == "Seen: remember date-12"
        with pytest.raises(JsonRpcException) as error:
            await second.request("dave/newSession", {"sessionId": "adopted"})
        assert "already exists" in error.value.message


async def test_a_lost_conversation_falls_back_to_the_transcript(
    server: Server, fake_model: FakeModelServer
) -> None:
    async with server() as client:
        await client.request(
            "dave/newSession",
            {"sessionId": "lost", "resume": "00000000-0000-4000-8000-000000000000"},
        )
        messages = [
            {"role": "user", "content": "what was cherry-7?"},
            {"role": "assistant", "content": "a code"},
        ]
        result, token = await client.query("lost", "hello again", messages=messages)
        assert result["text"] == "You said: hello again"
        notices = [r.get("message", "") for r in client.of_type(token, "status")]
        assert any("could not resume" in n for n in notices)
        assert "User: what was cherry-7?" in fake_model.requests_containing("cherry-7")[0].prompt


async def test_list_shows_live_and_persisted_sessions(server: Server) -> None:
    async with server() as first:
        await first.query("listed-a", "first title line\nmore")
    async with server() as second:
        await second.request("dave/newSession", {"sessionId": "listed-b"})
        future, token = second.start_query("listed-c", "write listed.txt x")
        await second.wait_report(token, "permissionRequest")
        sessions = await sessions_by_id(second)
        assert sessions["listed-a"]["state"] == "evicted"
        assert sessions["listed-a"]["turns"] == 1
        assert sessions["listed-a"]["title"] == "first title line"
        assert sessions["listed-a"]["backendSessionId"]
        assert sessions["listed-b"]["state"] == "idle"
        assert sessions["listed-c"]["state"] == "needsInput"
        assert set(sessions["listed-a"]) >= {
            "cwd",
            "model",
            "permissionMode",
            "createdAt",
            "lastActiveAt",
            "backend",
        }
        await second.request("dave/deleteSession", {"sessionId": "listed-c"})
        with pytest.raises(JsonRpcException):
            await future
        assert "listed-c" not in await sessions_by_id(second)


async def test_live_processes_stay_within_max_live_sessions(server: Server) -> None:
    async with server(maxLiveSessions=2) as client:
        names = [f"bounded-{i}" for i in range(5)]
        for name in names:
            await client.query(name, f"remember {name}-marker")
            assert len(server_clis(client)) <= 2
        for name in names:
            result, _ = await client.query(name, "recall")
            assert f"{name}-marker" in result["text"]
            assert len(server_clis(client)) <= 2
        states = await sessions_by_id(client)
        assert sum(states[n]["state"] == "evicted" for n in names) == 3


async def test_a_session_waiting_on_permission_is_never_evicted(
    server: Server, tmp_path: Path
) -> None:
    async with server(maxLiveSessions=1) as client:
        future, token = client.start_query("waiting", "write waited.txt yes")
        request = await client.wait_report(token, "permissionRequest")
        waiting_cli = server_clis(client)
        await client.query("other", "meanwhile")
        assert waiting_cli <= server_clis(client)  # still alive: it was not evicted
        await client.request(
            "dave/permission", {"requestId": request["requestId"], "decision": "allow"}
        )
        await asyncio.wait_for(future, 30)
        assert (tmp_path / "waited.txt").read_text() == "yes"


async def test_idle_sessions_are_evicted_and_resume(server: Server) -> None:
    async with server(idleTimeoutSeconds=1) as client:
        await client.query("idle", "remember idle-3")
        assert server_clis(client)
        await eventually(lambda: not server_clis(client))
        assert (await sessions_by_id(client))["idle"]["state"] == "evicted"
        result, _ = await client.query("idle", "recall")
        assert result["text"] == "Seen: remember idle-3"


async def test_a_spare_serves_a_new_session_and_is_replaced(server: Server) -> None:
    async with server(prewarm=1) as client:
        await eventually(lambda: len(server_clis(client)) == 1)
        spare = server_clis(client)
        result, token = await client.query(new_session(), "hello spare")
        assert result["text"] == "You said: hello spare"
        assert not client.of_type(token, "status") or all(
            r["state"] != "connecting" for r in client.of_type(token, "status")
        )
        assert spare <= server_clis(client)  # the spare's process now serves the session
        await eventually(lambda: len(server_clis(client)) == 2)  # and a new spare is up


async def test_max_live_sessions_counts_the_spare_which_takes_free_slots_only(
    server: Server,
) -> None:
    async with server(prewarm=1, maxLiveSessions=2) as client:
        await eventually(lambda: len(server_clis(client)) == 1)  # the spare
        await client.query("a", "echo a")  # adopts the spare; a new one fills slot 2
        await eventually(lambda: len(server_clis(client)) == 2)
        await client.query("b", "echo b")  # adopts that one: both slots are sessions'
        await asyncio.sleep(1.5)
        assert len(server_clis(client)) == 2, "no spare beyond the limit"
        await client.query("c", "echo c")  # no spare left: evicts a, starts cold
        states = await sessions_by_id(client)
        assert (states["a"]["state"], states["b"]["state"]) == ("evicted", "idle")
        assert len(server_clis(client)) == 2
        await client.request("dave/deleteSession", {"sessionId": "b"})  # a free slot: a spare
        await eventually(lambda: len(server_clis(client)) == 2)
        result, _ = await client.query("a", "recall")
        assert result["text"] == "Seen: echo a"  # resumed, taking the spare's slot
        await eventually(lambda: len(server_clis(client)) == 2)


def conversation_files(home: Path, cwd: Path) -> set[str]:
    """The Claude Code conversations stored for `cwd` (the CLI names the folder after
    the path, with every other character than letters and digits as `-`)."""
    folder = home / ".claude" / "projects" / re.sub(r"[^A-Za-z0-9]", "-", str(cwd))
    return {path.stem for path in folder.glob("*.jsonl")}


async def test_a_warmed_up_spare_leaves_no_trace(
    server: Server, fake_model: FakeModelServer, backend_home: Path, tmp_path: Path
) -> None:
    async with server(prewarm=1) as client:
        # The spare warms up on a prompt its own hook blocks, so that prompt starts a
        # conversation file, but the model never sees it.
        await eventually(lambda: len(conversation_files(backend_home, tmp_path)) == 1)
        session = new_session()
        result, _ = await client.query(session, "recall")
        assert result["text"] == "Seen: (nothing)"
        # The warm-up prompt itself ("dave-lsp warm-up <nonce>"). The CLI names a plan
        # file after a conversation's first prompt, so a warmed session's plan file is
        # called dave-lsp-warm-up-…: that name may reach the model, the prompt never.
        warm_up = [r for r in fake_model.requests if "dave-lsp warm-up " in json.dumps(r.body)]
        assert warm_up == []
        # The replacement spare warms up too; the server then exits with it unused.
        await eventually(lambda: len(conversation_files(backend_home, tmp_path)) == 2)
        used = (await sessions_by_id(client))[session]["backendSessionId"]
    # Only the conversation someone used is left in the user's Claude Code history.
    assert conversation_files(backend_home, tmp_path) == {used}


async def test_accept_edits_lets_a_write_through_without_asking(
    server: Server, tmp_path: Path
) -> None:
    async with server() as client:
        session = new_session()
        await client.query(session, "hello")
        answer = await client.request(
            "dave/setPermissionMode", {"sessionId": session, "mode": "acceptEdits"}
        )
        assert answer == {"sessionId": session, "permissionMode": "acceptEdits"}
        result, token = await client.query(session, "write accepted.txt ok")
        assert (tmp_path / "accepted.txt").read_text() == "ok"
        assert not client.of_type(token, "permissionRequest")
        resolved = client.of_type(token, "permissionResolved")
        assert [(r["decision"], r["by"]) for r in resolved] == [("allow", "mode")]
        assert result["toolResults"][0]["summary"] == "accepted.txt (2 bytes)"
        listed = (await sessions_by_id(client))[session]
        assert listed["permissionMode"] == "acceptEdits"
        with pytest.raises(JsonRpcException) as error:
            await client.request("dave/setPermissionMode", {"sessionId": "nope", "mode": "plan"})
        assert "no session nope" in error.value.message


async def test_set_model_keeps_the_conversation(
    server: Server, fake_model: FakeModelServer
) -> None:
    async with server() as client:
        session = new_session()
        await client.query(session, "remember lime-4")
        await client.request("dave/setModel", {"sessionId": session, "model": "claude-fake-2"})
        result, _ = await client.query(session, "recall lime-4 model")
        assert "remember lime-4" in result["text"]
        last = fake_model.requests_containing("recall lime-4 model")[-1]
        assert last.body["model"] == "claude-fake-2"


async def test_allow_always_skips_the_next_request_and_survives_a_restart(
    server: Server, tmp_path: Path
) -> None:
    session = new_session()
    async with server() as client:
        future, token = client.start_query(session, "write always-1.txt a")
        request = await client.wait_report(token, "permissionRequest")
        await client.request(
            "dave/permission", {"requestId": request["requestId"], "decision": "allowAlways"}
        )
        await asyncio.wait_for(future, 30)
        _, token = await client.query(session, "write always-2.txt b")
        assert not client.of_type(token, "permissionRequest")
        assert client.of_type(token, "permissionResolved")[0]["by"] == "rule"
    async with server() as client:
        _, token = await client.query(session, "write always-3.txt c")
        assert not client.of_type(token, "permissionRequest")
    assert [(tmp_path / f"always-{i}.txt").read_text() for i in (1, 2, 3)] == ["a", "b", "c"]
