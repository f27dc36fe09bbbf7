"""Processes dying under the server: the Claude Code CLI killed (mid-stream, between
turns, while a permission request waits), and the editor going away (stdin and stdout
closed) or the server getting SIGTERM while sessions are busy."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from pygls.exceptions import JsonRpcException

from tests.harness.lsp import DaveClient, new_session
from tests.harness.processes import cli_processes
from tests.reliability.helpers import (
    TALLY,
    RawServer,
    query,
    server_options,
    server_pid,
    start_client,
    start_query,
    wait_gone,
    wait_gone_sync,
)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def client(
    backend_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[DaveClient]:
    workspace = tmp_path_factory.mktemp("faults")
    lsp_client = await start_client(server_options(backend_env, workspace))
    lsp_client.workspace = workspace  # type: ignore[attr-defined]
    yield lsp_client
    await lsp_client.shutdown_session()


async def session_with_cli(client: DaveClient, prompt: str) -> tuple[str, int]:
    """A new session that has answered `prompt`, and the PID of its CLI process."""
    before = set(cli_processes(server_pid(client)))
    session = new_session()
    await query(client, session, prompt)
    started = set(cli_processes(server_pid(client))) - before
    assert len(started) == 1, started
    return session, started.pop()


def kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    TALLY["faults injected"] += 1


@pytest.mark.asyncio(loop_scope="session")
async def test_cli_killed_mid_stream_fails_fast_and_the_next_query_resumes(
    client: DaveClient,
) -> None:
    session, pid = await session_with_cli(client, "remember plum-31")
    future, token = start_query(client, session, "slow 200 50")
    await client.wait_report(token, "token")
    kill(pid)
    started = time.monotonic()
    with pytest.raises(JsonRpcException) as error:
        await asyncio.wait_for(future, 3)
    assert time.monotonic() - started < 3
    assert error.value.code == -32803
    message = error.value.message
    assert "the Claude Code process ended unexpectedly" in message
    assert "the next query starts a new one" in message
    assert "\n" not in message
    # What streamed before the kill is the error's partial text, and the stream closed.
    assert isinstance(error.value.data, dict)
    assert error.value.data["partialText"] == client.texts(token)
    assert client.texts(token).startswith("s0 ")
    assert client.reports[token][-2] == {"kind": "report", "type": "error", "message": message}
    assert client.reports[token][-1] == {"kind": "end"}

    # The next query starts a new CLI that resumes the conversation.
    before = set(cli_processes(server_pid(client)))
    result, token = await query(client, session, "recall")
    assert result["text"].startswith("Seen: remember plum-31")
    assert client.texts(token) == result["text"]
    assert pid not in before
    assert len(set(cli_processes(server_pid(client))) - before) == 1
    assert await client.request("dave/deleteSession", {"sessionId": session}) == {"deleted": True}


@pytest.mark.asyncio(loop_scope="session")
async def test_cli_killed_between_turns_the_next_query_just_works(client: DaveClient) -> None:
    session, pid = await session_with_cli(client, "remember fig-8")
    try:
        kill(pid)
        assert not await wait_gone({pid}, 5)
        result, _ = await query(client, session, "recall")
        assert result["text"] == "Seen: remember fig-8"
    finally:
        await client.request("dave/deleteSession", {"sessionId": session})


@pytest.mark.asyncio(loop_scope="session")
async def test_cli_killed_during_a_permission_request_fails_fast(client: DaveClient) -> None:
    workspace: Path = client.workspace  # type: ignore[attr-defined]
    session, pid = await session_with_cli(client, "echo ready")
    future, token = start_query(client, session, "write orphan.txt x")
    request = await client.wait_report(token, "permissionRequest")
    try:
        kill(pid)
        with pytest.raises(JsonRpcException) as error:
            await asyncio.wait_for(asyncio.shield(future), 3)
        assert error.value.code == -32803
        resolved = client.of_type(token, "permissionResolved")
        assert [(r["requestId"], r["decision"]) for r in resolved] == [
            (request["requestId"], "deny")
        ]
    finally:
        if not future.done():  # unblock the stuck turn so the module can go on
            await client.request(
                "dave/permission", {"requestId": request["requestId"], "decision": "deny"}
            )
            await asyncio.gather(asyncio.wait_for(future, 10), return_exceptions=True)
        await client.request("dave/deleteSession", {"sessionId": session})
    assert not (workspace / "orphan.txt").exists()


def busy_server(backend_env: dict[str, str], workspace: Path) -> tuple[RawServer, set[int], str]:
    """A server with a warm spare (the default), a streaming query, a pending permission
    request and an idle session, logging at debug level; its CLI processes, and the token
    of the query waiting on the permission request."""
    server = RawServer()
    options = server_options(backend_env, workspace, logLevel="debug")
    del options["prewarm"]
    server.initialize(options)
    idle, _ = server.query("idle-session", "echo idle")
    assert "result" in idle
    _, stream_token = server.start_query("streaming-session", "slow 400 50")
    server.wait_report(stream_token, "token")
    _, ask_token = server.start_query("asking-session", "write never.txt x")
    server.wait_report(ask_token, "permissionRequest")
    clis = set(cli_processes(server.pid))
    assert len(clis) >= 3
    return server, clis, ask_token


def test_editor_killed_while_busy_ends_every_cli(
    backend_env: dict[str, str], tmp_path: Path
) -> None:
    server, clis, _ = busy_server(backend_env, tmp_path)
    try:
        # The editor dies: both ends of its pipes close at once.
        started = time.monotonic()
        assert server.proc.stdin is not None and server.proc.stdout is not None
        server.proc.stdin.close()
        server.proc.stdout.close()
        TALLY["faults injected"] += 1
        assert not wait_gone_sync(clis, 5)
        assert time.monotonic() - started < 5
        assert server.proc.wait(5) == 0
        assert not (tmp_path / "never.txt").exists()
        # No log storm on the way out: logging to a dead client must not loop.
        assert server.stderr_size() < 100_000, server.stderr_text()[-2000:]
    finally:
        server.cleanup()


def test_sigterm_while_busy_ends_every_cli_and_denies_the_pending_request(
    backend_env: dict[str, str], tmp_path: Path
) -> None:
    server, clis, ask_token = busy_server(backend_env, tmp_path)
    try:
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        TALLY["faults injected"] += 1
        assert not wait_gone_sync(clis, 5)
        assert time.monotonic() - started < 5
        assert server.proc.wait(5) == 0
        assert not (tmp_path / "never.txt").exists()
        assert server.stderr_size() < 100_000, server.stderr_text()[-2000:]
        assert not server.garbage
        # The editor, still there, saw the request denied and its query end.
        resolved = [v for v in server.progress(ask_token) if v.get("type") == "permissionResolved"]
        assert [(v["decision"], v["by"]) for v in resolved] == [("deny", "cancel")]
        assert server.progress(ask_token)[-1] == {"kind": "end"}
    finally:
        server.cleanup()
