"""The server as a process: what it writes to stdout, how it ends, and how it fails
to start a backend or to initialize. Each test starts its own server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from pygls.exceptions import JsonRpcException

from tests.conftest import cli_processes
from tests.lsp_harness import DaveClient, config, initialize, new_session, stop


def frame(message: dict[str, Any]) -> bytes:
    body = json.dumps(message).encode()
    return b"Content-Length: %d\r\n\r\n%s" % (len(body), body)


def parse_frames(data: bytes) -> list[dict[str, Any]]:
    """Every byte of `data` must belong to a well-formed frame."""
    messages = []
    while data:
        header, sep, rest = data.partition(b"\r\n\r\n")
        assert sep, f"stdout has bytes outside a frame: {data[:200]!r}"
        lengths = [
            int(line.split(b":", 1)[1])
            for line in header.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ]
        assert lengths, f"frame without Content-Length: {header!r}"
        body, data = rest[: lengths[0]], rest[lengths[0] :]
        messages.append(json.loads(body))
    return messages


def wait_gone(pids: set[int], timeout: float) -> set[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = pids & set(cli_processes())
        if not alive:
            return alive
        time.sleep(0.1)
    return pids & set(cli_processes())


class RawServer:
    """The server on raw pipes, to see every byte it writes."""

    def __init__(self, env_options: dict[str, Any]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dave_lsp"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.options = env_options
        self.buffer = b""

    def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(frame(message))
        self.proc.stdin.flush()

    def read_until_response(self, msg_id: int, timeout: float = 60) -> dict[str, Any]:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                break
            self.buffer += chunk
            try:
                for message in parse_frames(self.buffer):
                    if message.get("id") == msg_id and "method" not in message:
                        return message
            except (AssertionError, json.JSONDecodeError, ValueError):
                continue  # a frame is still arriving
        raise AssertionError(f"no response to {msg_id}")


def test_stdout_carries_only_frames_and_stdin_eof_ends_every_cli(
    backend_env: dict[str, str], tmp_path: Path
) -> None:
    server = RawServer({})
    server.send(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "capabilities": {},
                "initializationOptions": {"env": backend_env, "cwd": str(tmp_path)},
            },
        }
    )
    server.read_until_response(1)
    server.send({"jsonrpc": "2.0", "method": "initialized", "params": {}})
    for msg_id, prompt in ((2, "hello frames"), (3, 'tool Bash {"command": "echo hi"}')):
        server.send(
            {
                "jsonrpc": "2.0",
                "id": msg_id,
                "method": "dave/query",
                "params": {
                    "sessionId": f"frames-{msg_id}",
                    "prompt": prompt,
                    "workDoneToken": f"tok{msg_id}",
                },
            }
        )
        response = server.read_until_response(msg_id)
        assert "result" in response, response
    children = set(cli_processes(server.proc.pid))
    assert len(children) >= 2  # two sessions, and the warm spare
    # Every byte the server wrote is protocol.
    messages = parse_frames(server.buffer)
    assert any(m.get("method") == "$/progress" for m in messages)
    assert server.proc.stdin is not None
    server.proc.stdin.close()  # the editor went away
    assert server.proc.wait(timeout=10) == 0
    assert not wait_gone(children, 5)


def test_an_editor_gone_mid_answer_ends_the_server_and_every_cli(
    backend_env: dict[str, str], tmp_path: Path
) -> None:
    server = RawServer({})
    server.send(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "capabilities": {},
                "initializationOptions": {"env": backend_env, "cwd": str(tmp_path), "prewarm": 0},
            },
        }
    )
    server.read_until_response(1)
    for msg_id in (2, 3):
        server.send(
            {
                "jsonrpc": "2.0",
                "id": msg_id,
                "method": "dave/query",
                "params": {
                    "sessionId": f"gone-{msg_id}",
                    "prompt": "slow 400 20",
                    "workDoneToken": msg_id,
                },
            }
        )
    deadline = time.monotonic() + 30
    while len(cli_processes(server.proc.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    children = set(cli_processes(server.proc.pid))
    assert len(children) == 2
    time.sleep(1)  # both answers are streaming now
    assert server.proc.stdin is not None and server.proc.stdout is not None
    server.proc.stdout.close()  # the editor died: nobody reads, nobody writes
    server.proc.stdin.close()
    started = time.monotonic()
    server.proc.wait(timeout=10)
    assert time.monotonic() - started < 5
    assert not wait_gone(children, 5)


async def test_sigterm_ends_every_cli(backend_env: dict[str, str], tmp_path: Path) -> None:
    client = await config().start()
    assert isinstance(client, DaveClient)
    await initialize(client, {"env": backend_env, "cwd": str(tmp_path)})
    await client.query(new_session(), "hello sigterm")
    server = client._server
    assert server is not None
    children = set(cli_processes(server.pid))
    assert children  # the session's CLI, and the warm spare
    server.send_signal(signal.SIGTERM)
    await asyncio.wait_for(server.wait(), 10)
    assert not wait_gone(children, 5)
    await stop(client)


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
    server = RawServer({})
    server.send(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "dave/query",
            "params": {"sessionId": "a", "prompt": "x"},
        }
    )
    response = server.read_until_response(1)
    assert response["error"]["code"] == -32002
    assert "send initialize first" in response["error"]["message"]
    assert server.proc.stdin is not None
    server.proc.stdin.close()
    server.proc.wait(timeout=10)
