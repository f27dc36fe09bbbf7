"""The server as a process: what it writes to stdout, how it ends, and how it fails
to start a backend or to initialize. Each test starts its own server."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
from pygls.exceptions import JsonRpcException

from tests.harness.lsp import DaveClient, config, initialize, new_session, stop
from tests.harness.processes import cli_processes
from tests.harness.raw import RawServer, wait_gone_sync


def started(backend_env: dict[str, str], workspace: Path, **options: Any) -> RawServer:
    server = RawServer()
    server.initialize({"env": backend_env, "cwd": str(workspace), **options})
    return server


def test_stdout_carries_only_frames_and_stdin_eof_ends_every_cli(
    backend_env: dict[str, str], tmp_path: Path
) -> None:
    server = started(backend_env, tmp_path)
    try:
        for session, prompt in (
            ("frames-1", "hello frames"),
            ("frames-2", 'tool Bash {"command": "echo hi"}'),
        ):
            response, _ = server.query(session, prompt)
            assert "result" in response, response
        children = set(cli_processes(server.pid))
        assert len(children) >= 2  # two sessions, and the warm spare
        assert server.notifications("$/progress")
        assert server.stop() == 0  # stdin closed: the editor went away
        assert not wait_gone_sync(children, 5)
        assert server.garbage == b""  # every byte the server wrote was protocol
    finally:
        server.cleanup()


async def test_a_bad_cli_path_fails_every_waiting_query_then_retries(
    backend_env: dict[str, str], tmp_path: Path
) -> None:
    client = await config().start()
    assert isinstance(client, DaveClient)
    await initialize(
        client,
        {"env": backend_env, "cwd": str(tmp_path), "claude": {"cliPath": "/nonexistent/claude"}},
    )
    session = new_session()
    futures = [client.start_query(session, f"queued {i}")[0] for i in range(3)]
    outcomes = await asyncio.gather(*futures, return_exceptions=True)
    for outcome in outcomes:
        assert isinstance(outcome, JsonRpcException), outcome
        assert outcome.code == -32803
        assert "/nonexistent/claude" in outcome.message
        assert "claude.cliPath" in outcome.message
    # The next query tries to connect again (and fails the same way).
    with pytest.raises(JsonRpcException) as error:
        await client.query(session, "again")
    assert "claude.cliPath" in error.value.message
    await client.shutdown_session()


async def test_bypass_permissions_as_root_says_how_to_allow_it(
    backend_env: dict[str, str], tmp_path: Path
) -> None:
    if os.geteuid() != 0:
        pytest.skip("the CLI refuses bypassPermissions only for root")
    client = await config().start()
    assert isinstance(client, DaveClient)
    env = {k: v for k, v in backend_env.items() if k != "IS_SANDBOX"}
    await initialize(
        client, {"env": env, "cwd": str(tmp_path), "permissionMode": "bypassPermissions"}
    )
    with pytest.raises(JsonRpcException) as error:
        await client.query(new_session(), "hello")
    assert error.value.code == -32803
    assert "IS_SANDBOX=1" in error.value.message
    await client.shutdown_session()


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"permissionMode": "yolo"}, "initializationOptions.permissionMode: must be one of"),
        ({"env": {"A": 1}}, "initializationOptions.env: A: expected a string"),
        ({"claude": {"cliPath": 3}}, "initializationOptions.claude.cliPath: expected a string"),
        ({"backend": "llama"}, "initializationOptions.backend: must be one of claude, openai"),
    ],
)
async def test_a_wrong_option_fails_initialize_naming_the_field(
    options: dict[str, Any], expected: str
) -> None:
    client = await config().start()
    assert isinstance(client, DaveClient)
    with pytest.raises(JsonRpcException) as error:
        await initialize(client, options)
    assert error.value.code == -32602
    assert expected in error.value.message
    await stop(client)


def test_a_query_before_initialize_is_refused() -> None:
    server = RawServer()
    try:
        response = server.call("dave/query", {"sessionId": "a", "prompt": "x"})
        assert response["error"]["code"] == -32002
        assert "send initialize first" in response["error"]["message"]
        server.stop()
    finally:
        server.cleanup()
