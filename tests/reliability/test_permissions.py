"""Permissions in the default mode: nothing with an effect runs unasked, and a pending
request is denied with interrupt when the query is cancelled, when its session is
deleted, when nobody answers within permissionTimeoutSeconds, and when the server
exits. The model sees each deny."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from pygls.exceptions import JsonRpcException

from dave_lsp.testing import FakeModelServer
from tests.harness.lsp import DaveClient, new_session
from tests.harness.processes import cli_processes
from tests.reliability.helpers import (
    TALLY,
    query,
    server_options,
    server_pid,
    start_client,
    start_query,
    wait_gone,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")

# The timeout tests' server denies an unanswered request this soon; the other tests'
# server waits long enough that a loaded machine never reaches it (their requests are
# answered, cancelled or deleted on purpose, and must not time out first).
PERMISSION_TIMEOUT = 1.5
PATIENT_TIMEOUT = 120.0


async def _client(
    backend_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory, timeout: float
) -> AsyncIterator[DaveClient]:
    workspace = tmp_path_factory.mktemp("permissions")
    options = server_options(backend_env, workspace, permissionTimeoutSeconds=timeout)
    lsp_client = await start_client(options)
    lsp_client.workspace = workspace  # type: ignore[attr-defined]
    yield lsp_client
    await lsp_client.shutdown_session()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def client(
    backend_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[DaveClient]:
    async for lsp_client in _client(backend_env, tmp_path_factory, PATIENT_TIMEOUT):
        yield lsp_client


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def impatient(
    backend_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[DaveClient]:
    async for lsp_client in _client(backend_env, tmp_path_factory, PERMISSION_TIMEOUT):
        yield lsp_client


def workspace_of(client: DaveClient) -> Path:
    return client.workspace  # type: ignore[no-any-return, attr-defined]


def model_saw_rejection(fake: FakeModelServer, tool_use_id: str) -> bool:
    """Whether a later request to the model carried the tool's result as a rejection."""
    for request in fake.requests_containing(tool_use_id):
        for message in request.body.get("messages", []):
            content = message.get("content")
            for block in content if isinstance(content, list) else []:
                if (
                    isinstance(block, dict)
                    and block.get("type") == "tool_result"
                    and block.get("tool_use_id") == tool_use_id
                    and block.get("is_error")
                    and "rejected" in json.dumps(block.get("content"))
                ):
                    return True
    return False


def tool(name: str, **tool_input: Any) -> str:
    return f"tool {name} {json.dumps(tool_input)}"


async def test_nothing_with_an_effect_runs_unasked(client: DaveClient) -> None:
    workspace = workspace_of(client)
    (workspace / "edit-me.txt").write_text("alpha\n")
    effects = {
        tool("Bash", command=f"touch {workspace}/bash-ran"): lambda: (
            workspace / "bash-ran"
        ).exists(),
        f"write {workspace}/written.txt x": lambda: (workspace / "written.txt").exists(),
        tool(
            "Edit", file_path=f"{workspace}/edit-me.txt", old_string="alpha", new_string="omega"
        ): lambda: (workspace / "edit-me.txt").read_text() != "alpha\n",
    }
    started = [start_query(client, new_session(), prompt) for prompt in effects]

    async def held_then_denied(future: Any, token: str, happened: Any) -> None:
        # Each request is answered 0.5 s after it arrived, well inside the server's
        # permissionTimeoutSeconds, however long the other sessions take to start.
        request = await client.wait_report(token, "permissionRequest")
        await asyncio.sleep(0.5)  # time enough for anything to run that would run unasked
        assert not happened()
        answer = {"requestId": request["requestId"], "decision": "deny", "reason": "not-now-41"}
        await client.request("dave/permission", answer)
        result = await asyncio.wait_for(future, 30)
        assert "not-now-41" in result["text"]  # the model saw the user's reason
        assert [r["isError"] for r in client.of_type(token, "toolResult")] == [True]
        assert not happened()

    await asyncio.gather(
        *(
            held_then_denied(future, token, happened)
            for (future, token), happened in zip(started, effects.values(), strict=True)
        )
    )
    assert not any(happened() for happened in effects.values())
    # A read-only tool runs without asking in this mode, and the client is told so.
    result, token = await query(client, new_session(), tool("Read", file_path="edit-me.txt"))
    assert client.of_type(token, "permissionResolved")[0]["by"] == "mode"
    assert "alpha" in result["text"]


async def test_without_a_way_to_ask_the_tool_is_denied(client: DaveClient) -> None:
    # No workDoneToken, and the client did not announce window.workDoneProgress.
    TALLY["queries"] += 1
    result = await asyncio.wait_for(
        client.request("dave/query", {"sessionId": new_session(), "prompt": "write unasked.txt x"}),
        30,
    )
    assert "cannot answer permission requests" in result["text"]
    assert not (workspace_of(client) / "unasked.txt").exists()


async def pending_write(client: DaveClient, session: str, name: str) -> tuple[Any, str, str, str]:
    """A query waiting on the permission to write `name`: (future, token, requestId,
    toolUseId)."""
    future, token = start_query(client, session, f"write {name} x")
    request = await client.wait_report(token, "permissionRequest")
    return future, token, request["requestId"], request["toolUseId"]


def denied_by_cancel(client: DaveClient, token: str, request_id: str) -> bool:
    resolved = client.of_type(token, "permissionResolved")
    return [(r["requestId"], r["decision"], r["by"]) for r in resolved] == [
        (request_id, "deny", "cancel")
    ]


async def test_cancel_denies_the_pending_request_and_the_model_sees_it(
    client: DaveClient, fake_model: FakeModelServer
) -> None:
    session = new_session()
    await query(client, session, "echo first")
    future, token, request_id, tool_use_id = await pending_write(client, session, "cancel.txt")
    client.cancel(token)
    TALLY["faults injected"] += 1
    with pytest.raises(JsonRpcException) as error:
        await asyncio.wait_for(future, 10)
    assert error.value.code == -32800
    assert denied_by_cancel(client, token, request_id)
    result, _ = await query(client, session, "recall")
    assert result["text"] == "Seen: echo first | write cancel.txt x"
    assert model_saw_rejection(fake_model, tool_use_id)
    assert not (workspace_of(client) / "cancel.txt").exists()


async def test_delete_denies_only_its_own_sessions_request(client: DaveClient) -> None:
    spid = server_pid(client)
    doomed, kept = new_session(), new_session()
    before = set(cli_processes(spid))
    doomed_future, doomed_token, doomed_request, _ = await pending_write(client, doomed, "d.txt")
    doomed_cli = set(cli_processes(spid)) - before
    kept_future, kept_token, kept_request, _ = await pending_write(client, kept, "k.txt")
    answer = await client.request("dave/deleteSession", {"sessionId": doomed})
    assert answer == {"deleted": True}
    TALLY["faults injected"] += 1
    with pytest.raises(JsonRpcException) as error:
        await asyncio.wait_for(doomed_future, 10)
    assert error.value.code == -32800
    assert denied_by_cancel(client, doomed_token, doomed_request)
    assert not await wait_gone(doomed_cli, 1)
    # The other session's request still waits, and runs when allowed.
    assert not client.of_type(kept_token, "permissionResolved")
    await client.request("dave/permission", {"requestId": kept_request, "decision": "allow"})
    await asyncio.wait_for(kept_future, 30)
    assert (workspace_of(client) / "k.txt").read_text() == "x"
    assert not (workspace_of(client) / "d.txt").exists()
    await client.request("dave/deleteSession", {"sessionId": kept})


async def test_an_unanswered_request_is_denied_after_the_timeout_and_the_model_sees_it(
    impatient: DaveClient, fake_model: FakeModelServer
) -> None:
    client = impatient
    session = new_session()
    await query(client, session, "echo first")
    started = time.monotonic()
    future, token, request_id, tool_use_id = await pending_write(client, session, "late.txt")
    TALLY["faults injected"] += 1
    with pytest.raises(JsonRpcException) as error:
        await asyncio.wait_for(future, PERMISSION_TIMEOUT + 30)
    assert time.monotonic() - started >= PERMISSION_TIMEOUT  # not before its time
    assert error.value.code == -32803
    assert len(error.value.message.splitlines()) == 1
    assert denied_by_cancel(client, token, request_id)
    # Too late now: the answer is refused, nothing runs.
    with pytest.raises(JsonRpcException) as late:
        await client.request("dave/permission", {"requestId": request_id, "decision": "allow"})
    assert late.value.code == -32602
    assert not (workspace_of(client) / "late.txt").exists()
    result, _ = await query(client, session, "recall")
    assert result["text"] == "Seen: echo first | write late.txt x"
    assert model_saw_rejection(fake_model, tool_use_id)


async def test_the_timeout_error_says_the_permission_request_went_unanswered(
    impatient: DaveClient,
) -> None:
    client = impatient
    future, _, _, _ = await pending_write(client, new_session(), "later.txt")
    TALLY["faults injected"] += 1
    with pytest.raises(JsonRpcException) as error:
        await asyncio.wait_for(future, PERMISSION_TIMEOUT + 30)
    assert "permission" in error.value.message.lower(), error.value.message
    assert "ede_diagnostic" not in error.value.message


async def test_server_exit_denies_a_pending_request_and_ends_every_cli(
    backend_env: dict[str, str], tmp_path: Path
) -> None:
    exiting = await start_client(server_options(backend_env, tmp_path))
    spid = server_pid(exiting)
    future, token, request_id, _ = await pending_write(exiting, new_session(), "exit.txt")
    streaming, stream_token = start_query(exiting, new_session(), "slow 400 50")
    await exiting.wait_report(stream_token, "token")
    clis = set(cli_processes(spid))
    assert len(clis) == 2
    TALLY["faults injected"] += 1
    started = time.monotonic()
    await asyncio.wait_for(exiting.shutdown_session(), 10)  # shutdown, then exit
    assert time.monotonic() - started < 5
    for pending in (future, streaming):
        with pytest.raises(JsonRpcException) as error:
            await asyncio.wait_for(pending, 1)
        assert error.value.code == -32800
    assert denied_by_cancel(exiting, token, request_id)
    assert exiting.reports[stream_token][-1] == {"kind": "end"}
    assert not await wait_gone(clis, 5)
    assert not (tmp_path / "exit.txt").exists()
    await exiting.stop()
