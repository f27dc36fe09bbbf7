"""The core protocol through the real server over stdio, the real bundled Claude Code
CLI, and the shipped fake model: what an editor sees."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcException

from dave_lsp.testing import FakeModelServer
from tests.harness.lsp import DaveClient, config, initialize, new_session
from tests.harness.processes import cli_processes


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def client(
    backend_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[DaveClient]:
    workspace = tmp_path_factory.mktemp("workspace")
    lsp_client = await config().start()
    assert isinstance(lsp_client, DaveClient)
    # No spare: the tests below count the CLI processes a session starts.
    result = await initialize(lsp_client, {"env": backend_env, "cwd": str(workspace), "prewarm": 0})
    lsp_client.init_result = result  # type: ignore[attr-defined]
    lsp_client.workspace = workspace  # type: ignore[attr-defined]
    yield lsp_client
    await lsp_client.shutdown_session()


def prompts_seen(fake: FakeModelServer, marker: str) -> list[str]:
    return [r.prompt for r in fake.requests_containing(marker) if r.api == "anthropic"]


async def test_initialize_advertises_dave(client: DaveClient) -> None:
    result = client.init_result  # type: ignore[attr-defined]
    dave = result.capabilities.experimental["dave"]
    assert dave["version"] == 1
    assert set(dave["methods"]) >= {"dave/query", "dave/permission", "dave/deleteSession"}
    assert "claude" in dave["backends"]
    assert result.server_info.name == "dave-lsp"


async def test_tokens_concatenate_to_the_result_text(client: DaveClient) -> None:
    session = new_session()
    result, token = await client.query(session, "hello streaming world")
    assert result["text"] == "You said: hello streaming world"
    assert client.texts(token) == result["text"]
    assert len(client.of_type(token, "token")) >= 1
    reports = client.reports[token]
    assert reports[0]["kind"] == "begin" and reports[-1]["kind"] == "end"
    assert result["sessionId"] == session
    assert result["stopReason"] == "end_turn"
    assert result["backendSessionId"]
    assert result["toolResults"] == []
    assert result["usage"]["outputTokens"] > 0


async def test_long_stream_is_exact_and_coalesced(client: DaveClient) -> None:
    result, token = await client.query(new_session(), "long 3000")
    expected = "".join(f"w{i} " for i in range(3000))
    assert result["text"] == expected
    assert client.texts(token) == expected
    # Coalesced: far fewer reports than tokens, yet nothing lost or reordered.
    assert len(client.of_type(token, "token")) < 3000


async def test_follow_up_sees_the_earlier_turn_and_is_sent_alone(
    client: DaveClient, fake_model: FakeModelServer
) -> None:
    session = new_session()
    await client.query(session, "remember kiwi-17")
    result, _ = await client.query(session, "recall")
    assert result["text"] == "Seen: remember kiwi-17"
    recall_prompts = [r.prompt for r in fake_model.requests_containing("kiwi-17")]
    assert "recall" in recall_prompts  # the follow-up went out as the prompt alone


async def test_first_query_sends_the_transcript(
    client: DaveClient, fake_model: FakeModelServer
) -> None:
    session = new_session()
    messages = [
        {"role": "user", "content": "what is mango-42?"},
        {"role": "assistant", "content": "a fruit code"},
    ]
    await client.query(session, "recall", messages=messages)
    sent = prompts_seen(fake_model, "mango-42")[0]
    assert "User: what is mango-42?" in sent
    assert "Assistant: a fruit code" in sent
    assert sent.index("mango-42") < sent.index("User: recall")
    # Later queries of the session send only the newest message.
    await client.query(session, "echo papaya-9", messages=messages)
    assert "echo papaya-9" in prompts_seen(fake_model, "papaya-9")


async def test_two_sessions_do_not_see_each_other(client: DaveClient) -> None:
    first, second = new_session(), new_session()
    await client.query(first, "secret lychee-5")
    result, _ = await client.query(second, "recall")
    assert "lychee-5" not in result["text"]
    assert result["text"] == "Seen: (nothing)"


async def test_allow_writes_the_file_and_reports_its_summary(client: DaveClient) -> None:
    workspace: Path = client.workspace  # type: ignore[attr-defined]
    session = new_session()
    future, token = client.start_query(session, "write allowed.txt hello")
    request = await client.wait_report(token, "permissionRequest")
    assert request["toolName"] == "Write"
    assert request["sessionId"] == session
    assert request["message"] == "Allow Write allowed.txt?"
    assert not (workspace / "allowed.txt").exists()  # nothing runs unasked
    answer = await client.request(
        "dave/permission", {"requestId": request["requestId"], "decision": "allow"}
    )
    assert answer == {"ok": True}
    result = await asyncio.wait_for(future, 30)
    assert (workspace / "allowed.txt").read_text() == "hello"
    summaries = [r["summary"] for r in client.of_type(token, "toolResult")]
    assert summaries == ["allowed.txt (5 bytes)"]
    assert result["toolResults"][0]["summary"] == "allowed.txt (5 bytes)"
    assert result["toolResults"][0]["toolName"] == "Write"
    resolved = client.of_type(token, "permissionResolved")
    assert resolved == [
        {
            "kind": "report",
            "type": "permissionResolved",
            "requestId": request["requestId"],
            "decision": "allow",
            "by": "user",
        }
    ]
    assert result["text"].startswith("Tool said:")
    assert client.texts(token) == result["text"]


async def test_deny_leaves_no_file_and_the_model_sees_the_reason(client: DaveClient) -> None:
    workspace: Path = client.workspace  # type: ignore[attr-defined]
    future, token = client.start_query(new_session(), "write denied.txt nope")
    request = await client.wait_report(token, "permissionRequest")
    await client.request(
        "dave/permission",
        {"requestId": request["requestId"], "decision": "deny", "reason": "not in my repo"},
    )
    result = await asyncio.wait_for(future, 30)
    assert not (workspace / "denied.txt").exists()
    assert "not in my repo" in result["text"]
    assert client.of_type(token, "permissionResolved")[0]["decision"] == "deny"
    # Answering twice is a clear error.
    with pytest.raises(JsonRpcException) as error:
        await client.request(
            "dave/permission", {"requestId": request["requestId"], "decision": "allow"}
        )
    assert error.value.code == -32602
    assert "already answered" in error.value.message


async def test_cancel_mid_stream_answers_quickly_and_the_session_goes_on(
    client: DaveClient,
) -> None:
    session = new_session()
    await client.query(session, "before the cancel")
    future, token = client.start_query(session, "slow 400 50")
    await client.wait_report(token, "token")
    started = time.monotonic()
    client.cancel(token)
    with pytest.raises(JsonRpcException) as error:
        await asyncio.wait_for(future, 10)
    assert error.value.code == -32800
    assert time.monotonic() - started < 3
    assert client.reports[token][-1] == {"kind": "end"}
    result, _ = await client.query(session, "recall")
    assert "before the cancel" in result["text"]


async def test_work_done_progress_cancel_cancels_the_query(client: DaveClient) -> None:
    session = new_session()
    future, token = client.start_query(session, "slow 400 50")
    await client.wait_report(token, "token")
    client.protocol.notify(
        lsp.WINDOW_WORK_DONE_PROGRESS_CANCEL, lsp.WorkDoneProgressCancelParams(token=token)
    )
    with pytest.raises(JsonRpcException) as error:
        await asyncio.wait_for(future, 10)
    assert error.value.code == -32800
    result, _ = await client.query(session, "still here")
    assert result["text"] == "You said: still here"


async def test_cancel_denies_a_pending_permission(client: DaveClient) -> None:
    workspace: Path = client.workspace  # type: ignore[attr-defined]
    future, token = client.start_query(new_session(), "write cancelled.txt x")
    request = await client.wait_report(token, "permissionRequest")
    client.cancel(token)
    with pytest.raises(JsonRpcException) as error:
        await asyncio.wait_for(future, 10)
    assert error.value.code == -32800
    resolved = client.of_type(token, "permissionResolved")
    assert resolved[0]["requestId"] == request["requestId"]
    assert (resolved[0]["decision"], resolved[0]["by"]) == ("deny", "cancel")
    assert not (workspace / "cancelled.txt").exists()


async def test_http_400_fails_with_the_api_message_and_the_session_goes_on(
    client: DaveClient,
) -> None:
    session = new_session()
    with pytest.raises(JsonRpcException) as error:
        await client.query(session, "error 400 the fake model refuses quince-3")
    assert error.value.code == -32803
    assert "the fake model refuses quince-3" in error.value.message
    assert "\n" not in error.value.message
    result, _ = await client.query(session, "after the error")
    assert result["text"] == "You said: after the error"


async def test_malformed_params_name_the_field(client: DaveClient) -> None:
    cases: list[tuple[str, Any, str]] = [
        ("dave/query", {"prompt": "x"}, "sessionId: is required"),
        ("dave/query", {"sessionId": 7, "prompt": "x"}, "sessionId: expected a string"),
        ("dave/query", {"sessionId": "a", "prompt": None}, "prompt"),
        ("dave/query", {"sessionId": "", "prompt": "x"}, "sessionId: must not be empty"),
        ("dave/query", {"sessionId": "a" * 300, "prompt": "x"}, "at most 256"),
        (
            "dave/query",
            {"sessionId": "a", "prompt": "x", "messages": [{"role": "bot", "content": "x"}]},
            "messages[0].role",
        ),
        ("dave/permission", {"requestId": "r", "decision": "maybe"}, "decision: must be one of"),
        ("dave/deleteSession", {}, "sessionId: is required"),
    ]
    for method, params, expected in cases:
        with pytest.raises(JsonRpcException) as error:
            await client.request(method, params)
        assert error.value.code == -32602, (method, params)
        assert expected in error.value.message, (error.value.message, expected)


async def test_unknown_permission_request_is_a_clear_error(client: DaveClient) -> None:
    with pytest.raises(JsonRpcException) as error:
        await client.request("dave/permission", {"requestId": "nope", "decision": "allow"})
    assert error.value.code == -32602
    assert "no pending permission request nope" in error.value.message


async def test_unknown_method_is_method_not_found(client: DaveClient) -> None:
    with pytest.raises(JsonRpcException) as error:
        await client.request("dave/frobnicate", {})
    assert error.value.code == -32601


async def test_delete_session_ends_its_process_and_denies_its_permission(
    client: DaveClient,
) -> None:
    server_pid = client._server.pid  # type: ignore[union-attr]
    before = set(cli_processes(server_pid))
    session = new_session()
    future, token = client.start_query(session, "write deleted.txt x")
    request = await client.wait_report(token, "permissionRequest")
    started_cli = set(cli_processes(server_pid)) - before
    assert len(started_cli) == 1
    answer = await client.request("dave/deleteSession", {"sessionId": session})
    assert answer == {"deleted": True}
    assert not (set(cli_processes(server_pid)) & started_cli)  # gone before the response
    with pytest.raises(JsonRpcException) as error:
        await asyncio.wait_for(future, 10)
    assert error.value.code == -32800
    resolved = client.of_type(token, "permissionResolved")[0]
    assert (resolved["requestId"], resolved["decision"]) == (request["requestId"], "deny")
    again = await client.request("dave/deleteSession", {"sessionId": session})
    assert again == {"deleted": False}
