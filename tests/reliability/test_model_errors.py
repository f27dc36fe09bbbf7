"""The model API failing: HTTP 400, 401, 429, 500, a connection cut mid-stream, and a
stream that hangs. Each ends the turn with a clear one-line error, and the session
goes on. (The CLI runs with CLAUDE_CODE_MAX_RETRIES=0, so every error is final at once.)"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from pygls.exceptions import JsonRpcException

from tests.harness.lsp import DaveClient, new_session
from tests.reliability.helpers import TALLY, query, server_options, start_client, start_query

pytestmark = pytest.mark.asyncio(loop_scope="session")

REQUEST_TIMEOUT = 2.0


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def client(
    backend_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[DaveClient]:
    workspace = tmp_path_factory.mktemp("model-errors")
    options = server_options(backend_env, workspace, requestTimeoutSeconds=REQUEST_TIMEOUT)
    lsp_client = await start_client(options)
    yield lsp_client
    await lsp_client.shutdown_session()


@pytest.fixture(scope="module")
def session() -> str:
    """One session lives through every error below."""
    return new_session()


ERRORS = {
    "400": ("error 400 the request is malformed kumquat-1", ["kumquat-1"]),
    "401": ("error 401 invalid x-api-key", ["set ANTHROPIC_API_KEY"]),
    "429": ("error 429 slow down", ["429", "rate limited: wait and send again"]),
    "500": ("error 500 the model fell over", ["500", "the model fell over"]),
    "connection dropped mid-stream": ("drop 6", ["API Error"]),
}


@pytest.mark.parametrize("kind", list(ERRORS))
async def test_a_model_error_ends_the_turn_with_one_clear_line_and_the_session_goes_on(
    client: DaveClient, session: str, kind: str
) -> None:
    prompt, expected = ERRORS[kind]
    future, token = start_query(client, session, prompt)
    TALLY["faults injected"] += 1
    started = time.monotonic()
    with pytest.raises(JsonRpcException) as error:
        await asyncio.wait_for(future, 30)
    assert time.monotonic() - started < 10
    assert error.value.code == -32803
    message = error.value.message
    assert len(message.splitlines()) == 1
    for part in expected:
        assert part in message, message
    # Whatever streamed before the failure is the error's partial text: nothing invented.
    assert isinstance(error.value.data, dict)
    assert error.value.data["partialText"] == client.texts(token)
    assert client.reports[token][-2:] == [
        {"kind": "report", "type": "error", "message": message},
        {"kind": "end"},
    ]
    result, token = await query(client, session, f"echo after {kind}")
    assert result["text"] == f"You said: echo after {kind}"
    assert client.texts(token) == result["text"]


async def test_a_hung_stream_can_be_cancelled_and_the_session_goes_on(
    client: DaveClient, session: str
) -> None:
    future, token = start_query(client, session, "hang")
    TALLY["faults injected"] += 1
    await client.wait_report(token, "status")
    await asyncio.sleep(0.5)
    client.cancel(token)
    with pytest.raises(JsonRpcException) as error:
        await asyncio.wait_for(future, 10)
    assert error.value.code == -32800
    result, _ = await query(client, session, "echo after the hang")
    assert result["text"] == "You said: echo after the hang"


async def test_a_hung_stream_fails_after_request_timeout_seconds(
    client: DaveClient, session: str
) -> None:
    future, token = start_query(client, session, "hang")
    TALLY["faults injected"] += 1
    try:
        with pytest.raises(JsonRpcException) as error:
            await asyncio.wait_for(asyncio.shield(future), REQUEST_TIMEOUT + 5)
        assert error.value.code == -32803
        assert "requestTimeoutSeconds" in error.value.message
        assert len(error.value.message.splitlines()) == 1
    finally:
        if not future.done():
            client.cancel(token)
            await asyncio.gather(asyncio.wait_for(future, 10), return_exceptions=True)
    result, _ = await query(client, session, "echo after the timeout")
    assert result["text"] == "You said: echo after the timeout"


async def test_a_stream_longer_than_request_timeout_seconds_is_not_a_hung_one(
    client: DaveClient, session: str
) -> None:
    # 40 tokens 100 ms apart: 4 s in all, twice the limit, but never 2 s of silence.
    result, token = await query(client, session, "slow 40 100")
    assert len(result["text"].split()) == 40, result["text"]
    assert client.texts(token) == result["text"]


async def test_a_missing_key_names_the_variable_for_the_client_to_word_the_fix(
    client: DaveClient, session: str
) -> None:
    future, _ = start_query(client, session, "error 401 invalid x-api-key")
    with pytest.raises(JsonRpcException) as error:
        await asyncio.wait_for(future, 30)
    assert isinstance(error.value.data, dict)
    assert error.value.data["needsEnv"] == "ANTHROPIC_API_KEY"
    assert "initializationOptions" not in error.value.message


async def test_retries_are_reported_as_they_happen(
    backend_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    workspace = tmp_path_factory.mktemp("retries")
    retrying = {**backend_env, "CLAUDE_CODE_MAX_RETRIES": "2"}
    lsp_client = await start_client(server_options(retrying, workspace))
    try:
        future, token = start_query(lsp_client, new_session(), "error 500 still down")
        with pytest.raises(JsonRpcException):
            await asyncio.wait_for(future, 60)
    finally:
        await lsp_client.shutdown_session()
    retries = [r for r in lsp_client.of_type(token, "status") if r["state"] == "retrying"]
    assert [r["attempt"] for r in retries] == [1, 2]
    assert all(r["maxAttempts"] == 2 and r["retryInMs"] > 0 for r in retries)
    assert retries[0]["message"].startswith("Retrying in ")
    assert "(attempt 1 of 2): API Error 500" in retries[0]["message"]
