"""OpenAISession driven directly against the fake OpenAI-compatible server.

Only the network edge is fake: the real `openai` client streams real SSE over loopback.
Each test marks its prompts with a unique word so it can find its own recorded requests
in the session-wide fake server.
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from dave_lsp.backends.base import (
    BackendFactory,
    ChatMessage,
    PermissionAnswer,
    SessionConfig,
)
from dave_lsp.backends.openai.session import INTERRUPTED_MARKER, OpenAISession
from dave_lsp.backends.registry import OpenAIOptions
from dave_lsp.events import (
    BackendError,
    Done,
    Event,
    Status,
    Thinking,
    Token,
    TurnCancelled,
)
from dave_lsp.testing import FakeModelServer

KEY = "sk-test-0123456789abcdefSECRET"

# Checked by mypy: the class is a factory of the seam's BackendSession protocol.
FACTORY: BackendFactory = OpenAISession


async def deny(
    _id: str, _name: str, _input: dict[str, Any], _sugg: list[Any], _parent: str | None
) -> PermissionAnswer:
    return PermissionAnswer(allow=False, reason="tests never allow tools")


def make_config(base_url: str | None, **overrides: Any) -> SessionConfig:
    """A session's config; `openai_<name>` overrides set the backend's options."""
    group = {
        name.removeprefix("openai_"): overrides.pop(name)
        for name in list(overrides)
        if name.startswith("openai_")
    }
    fields: dict[str, Any] = {
        "session_id": f"s-{uuid.uuid4().hex[:8]}",
        "cwd": "/tmp",
        "model": "fake-model",
        "permission_mode": "default",
        "env": {"OPENAI_API_KEY": KEY},
        "backend": "openai",
        "backend_options": OpenAIOptions(base_url=base_url, **group),
        "request_timeout_seconds": 10.0,
    }
    fields.update(overrides)
    return SessionConfig(**fields)


def marker() -> str:
    return f"m{uuid.uuid4().hex[:10]}"


async def run(
    session: OpenAISession, prompt: str, transcript: Sequence[ChatMessage] = ()
) -> tuple[list[Event], Done]:
    events = [event async for event in session.query(prompt, transcript)]
    done = events[-1]
    assert isinstance(done, Done), events
    return events, done


def text_of(events: list[Event]) -> str:
    return "".join(e.text for e in events if isinstance(e, Token))


async def failure(session: OpenAISession, prompt: str) -> str:
    """The BackendError message of a turn that must fail; never carries the key."""
    with pytest.raises(BackendError) as caught:
        await run(session, prompt)
    message = str(caught.value)
    assert KEY not in message
    # No chained client exception: its text may quote the key into a logged traceback.
    assert caught.value.__cause__ is None
    assert "\n" not in message
    return message


@pytest.fixture
def base_url(fake_model: FakeModelServer) -> str:
    return fake_model.url + "/v1"


@pytest.fixture
async def session(base_url: str) -> AsyncIterator[OpenAISession]:
    s = OpenAISession(make_config(base_url), deny)
    await s.open()
    yield s
    await s.close()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- streaming -----------------------------------------------------------------------------


async def test_tokens_concatenate_to_done_text(session: OpenAISession) -> None:
    m = marker()
    events, done = await run(session, f"hello {m}")
    assert events[0] == Status("working")
    tokens = [e for e in events if isinstance(e, Token)]
    assert len(tokens) > 1  # really streamed in pieces
    assert text_of(events) == done.text == f"You said: hello {m}"
    assert done.stop_reason == "end_turn"
    assert done.usage.input_tokens > 0 and done.usage.output_tokens == len(tokens)
    assert done.cost_usd == 0.0
    assert done.duration_ms >= 0
    assert done.backend_session_id.startswith("openai-")


async def test_long_answer_keeps_every_piece(session: OpenAISession) -> None:
    events, done = await run(session, "long 500")
    assert done.text == "".join(f"w{i} " for i in range(500)) == text_of(events)


async def test_reasoning_becomes_thinking(session: OpenAISession) -> None:
    m = marker()
    events, done = await run(session, f"think {m}")
    thinking = "".join(e.text for e in events if isinstance(e, Thinking))
    assert thinking == f"Thinking about {m}"
    assert done.text == f"Thought: {m}"
    # Thinking is the model's scratch work, not the answer: it stays out of the history.
    assert session.history[-1] == {"role": "assistant", "content": f"Thought: {m}"}


async def test_request_shape(session: OpenAISession, fake_model: FakeModelServer) -> None:
    m = marker()
    await run(session, m)
    [request] = fake_model.requests_containing(m)
    assert request.path == "/v1/chat/completions"
    assert request.body["model"] == "fake-model"
    assert request.body["stream"] is True
    assert request.body["stream_options"] == {"include_usage": True}
    assert request.headers["authorization"] == f"Bearer {KEY}"


# -- history -------------------------------------------------------------------------------


async def test_second_query_carries_first_turn(
    session: OpenAISession, fake_model: FakeModelServer
) -> None:
    m = marker()
    assert not session.has_conversation
    _, first = await run(session, f"first {m}")
    assert session.has_conversation
    _, second = await run(session, f"second {m}")
    [request] = fake_model.requests_containing(f"second {m}")
    assert request.body["messages"] == [
        {"role": "user", "content": f"first {m}"},
        {"role": "assistant", "content": first.text},
        {"role": "user", "content": f"second {m}"},
    ]
    assert first.backend_session_id == second.backend_session_id


async def test_system_prompt_leads(base_url: str, fake_model: FakeModelServer) -> None:
    m = marker()
    s = OpenAISession(make_config(base_url, openai_system_prompt=f"Be brief {m}"), deny)
    try:
        await run(s, f"hi {m}")
        [request] = fake_model.requests_containing(f"hi {m}")
        assert request.body["messages"][0] == {"role": "system", "content": f"Be brief {m}"}
    finally:
        await s.close()


async def test_transcript_seeds_history_once(
    session: OpenAISession, fake_model: FakeModelServer
) -> None:
    m = marker()
    transcript = [
        ChatMessage("user", f"earlier {m}"),
        ChatMessage("assistant", "an earlier answer"),
    ]
    _, done = await run(session, "recall", transcript)
    assert done.text == f"Seen: earlier {m}"
    [request] = fake_model.requests_containing(f"earlier {m}")
    assert request.body["messages"][:2] == [
        {"role": "user", "content": f"earlier {m}"},
        {"role": "assistant", "content": "an earlier answer"},
    ]
    # Once the session holds the conversation, a transcript is ignored.
    _, done = await run(session, "recall", [ChatMessage("user", f"ignored {m}")])
    assert done.text == f"Seen: earlier {m} | recall"


async def test_sessions_are_isolated(base_url: str) -> None:
    m = marker()
    one = OpenAISession(make_config(base_url), deny)
    two = OpenAISession(make_config(base_url), deny)
    try:
        await run(one, f"one {m}")
        await run(two, f"two {m}")
        _, done_one = await run(one, "recall")
        _, done_two = await run(two, "recall")
        assert done_one.text == f"Seen: one {m}"
        assert done_two.text == f"Seen: two {m}"
        assert done_one.backend_session_id != done_two.backend_session_id
    finally:
        await one.close()
        await two.close()


async def test_close_drops_history(session: OpenAISession) -> None:
    m = marker()
    _, before = await run(session, f"remember {m}")
    await session.close()
    assert not session.has_conversation
    assert session.history == []
    # Usable again, as a fresh conversation with a new id.
    _, after = await run(session, "recall")
    assert after.text == "Seen: (nothing)"
    assert after.backend_session_id != before.backend_session_id


# -- cancel --------------------------------------------------------------------------------


async def test_cancel_mid_stream(session: OpenAISession, fake_model: FakeModelServer) -> None:
    m = marker()
    events: list[Event] = []

    async def consume() -> None:
        async for event in session.query(f"{m}\nslow 200 50", ()):
            events.append(event)

    task = asyncio.create_task(consume())
    deadline = time.monotonic() + 5
    while sum(isinstance(e, Token) for e in events) < 3:
        assert time.monotonic() < deadline, "no tokens arrived"
        await asyncio.sleep(0.01)
    started = time.monotonic()
    await session.interrupt()
    with pytest.raises(TurnCancelled):
        await asyncio.wait_for(task, 1.0)
    assert time.monotonic() - started < 1.0
    assert not any(isinstance(e, Done) for e in events)
    partial = text_of(events)
    assert partial.startswith("s0 s1 ")

    # The server saw the client hang up: the stream did not keep running after cancel.
    deadline = time.monotonic() + 2
    while fake_model.active_streams:
        assert time.monotonic() < deadline, "the HTTP stream outlived the cancel"
        await asyncio.sleep(0.02)

    # The cancelled turn stays in the history, its partial answer marked.
    assert session.history[-1] == {
        "role": "assistant",
        "content": f"{partial}\n\n{INTERRUPTED_MARKER}",
    }
    _, done = await run(session, "recall")
    assert done.text == f"Seen: {m} slow 200 50"


async def test_cancel_before_first_token(session: OpenAISession) -> None:
    """`hang` sends headers and one empty delta, then nothing: interrupt must not wait."""
    task = asyncio.create_task(run(session, "hang"))
    await asyncio.sleep(0.3)
    started = time.monotonic()
    await session.interrupt()
    with pytest.raises(TurnCancelled):
        await asyncio.wait_for(task, 1.0)
    assert time.monotonic() - started < 1.0
    assert session.history[-1] == {"role": "assistant", "content": INTERRUPTED_MARKER}
    _, done = await run(session, "ok")
    assert done.text == "You said: ok"


async def test_interrupt_then_abandon_keeps_the_same_rule(session: OpenAISession) -> None:
    """A caller that interrupts and then drops the generator (instead of draining it to
    TurnCancelled) gets the same history as one that drains it."""
    m = marker()
    turn = session.query(f"{m}\nslow 100 50", ())
    tokens = []
    async for event in turn:
        if isinstance(event, Token):
            tokens.append(event.text)
            if len(tokens) == 2:
                break
    await session.interrupt()
    await turn.aclose()  # type: ignore[attr-defined]  # an async generator underneath
    assert session.history[-1] == {
        "role": "assistant",
        "content": "".join(tokens) + f"\n\n{INTERRUPTED_MARKER}",
    }
    _, done = await run(session, "recall")
    assert done.text == f"Seen: {m} slow 100 50"


async def test_interrupt_when_idle_is_harmless(session: OpenAISession) -> None:
    await session.interrupt()
    _, done = await run(session, "still fine")
    assert done.text == "You said: still fine"
    await session.interrupt()


# -- failures ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "hint"),
    [(400, "check model"), (401, "check openai.apiKeyEnv"), (500, "retry")],
)
async def test_http_errors(session: OpenAISession, status: int, hint: str) -> None:
    m = marker()
    await run(session, f"before {m}")
    message = await failure(session, f"error {status} the endpoint says no {m}")
    assert message.startswith(f"OpenAI-compatible endpoint answered {status}: ")
    assert f"the endpoint says no {m}" in message
    assert hint in message
    # The failed turn is dropped whole, so a retry starts clean.
    _, done = await run(session, "recall")
    assert done.text == f"Seen: before {m}"


async def test_failed_first_turn_leaves_no_conversation(session: OpenAISession) -> None:
    m = marker()
    transcript = [ChatMessage("user", f"old {m}"), ChatMessage("assistant", "old answer")]
    with pytest.raises(BackendError):
        await run(session, "error 500 boom", transcript)
    assert not session.has_conversation
    assert session.history == []
    # The retry gets the transcript again, and it counts once.
    _, done = await run(session, "recall", transcript)
    assert done.text == f"Seen: old {m}"


async def test_key_echoed_by_endpoint_is_redacted(session: OpenAISession) -> None:
    message = await failure(session, f"error 401 Incorrect API key provided: {KEY}")
    assert "Incorrect API key provided: [redacted]" in message


async def test_connection_refused(fake_model: FakeModelServer) -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    s = OpenAISession(make_config(url), deny)
    try:
        message = await failure(s, "hello")
        assert message == f"cannot reach {url}: connection refused; check openai.baseUrl"
        assert not s.has_conversation
    finally:
        await s.close()


async def test_timeout(base_url: str) -> None:
    s = OpenAISession(make_config(base_url, request_timeout_seconds=0.5), deny)
    try:
        started = time.monotonic()
        message = await failure(s, "hang")
        assert time.monotonic() - started < 3
        assert message == (
            f"no answer from {base_url} within 0.5 s;"
            " raise requestTimeoutSeconds or check the server"
        )
    finally:
        await s.close()


async def test_dropped_connection(session: OpenAISession) -> None:
    message = await failure(session, "drop 5")
    assert "broke mid-answer" in message
    _, done = await run(session, "recall")
    assert done.text == "Seen: (nothing)"


async def test_tool_call_ends_turn(base_url: str) -> None:
    """With tools off (tests/test_openai_agent.py has them on), a model that calls one
    anyway ends the turn, and the failed turn leaves no trace."""
    session = OpenAISession(make_config(base_url, openai_tools=False), deny)
    try:
        message = await failure(session, "write notes.txt hello")
        assert "tool Write" in message
        assert "tools are off for this session (openai.tools is false)" in message
        _, done = await run(session, "recall")
        assert done.text == "Seen: (nothing)"
    finally:
        await session.close()


# -- settings ------------------------------------------------------------------------------


async def test_missing_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    s = OpenAISession(make_config(None), deny)
    with pytest.raises(BackendError, match=r"set initializationOptions\.openai\.baseUrl"):
        await s.open()
    with pytest.raises(BackendError, match=r"openai\.baseUrl"):
        await run(s, "hello")


async def test_missing_key(base_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DAVE_TEST_KEY", raising=False)
    s = OpenAISession(make_config(base_url, env={}, openai_api_key_env="DAVE_TEST_KEY"), deny)
    with pytest.raises(BackendError) as caught:
        await s.open()
    assert str(caught.value).startswith(
        "set the environment variable DAVE_TEST_KEY (named by openai.apiKeyEnv)"
    )
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    default = OpenAISession(make_config(base_url, env={}), deny)
    with pytest.raises(BackendError) as caught:
        await default.open()
    assert str(caught.value).startswith(
        "set the environment variable OPENAI_API_KEY (or name another with openai.apiKeyEnv)"
    )


async def test_key_lookup_prefers_session_env(
    base_url: str, fake_model: FakeModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = marker()
    monkeypatch.setenv("DAVE_TEST_KEY", "from-process-environment")
    env_first = OpenAISession(
        make_config(base_url, env={"DAVE_TEST_KEY": KEY}, openai_api_key_env="DAVE_TEST_KEY"),
        deny,
    )
    from_process = OpenAISession(
        make_config(base_url, env={}, openai_api_key_env="DAVE_TEST_KEY"), deny
    )
    try:
        await run(env_first, f"a {m}")
        await run(from_process, f"b {m}")
    finally:
        await env_first.close()
        await from_process.close()
    [a] = fake_model.requests_containing(f"a {m}")
    [b] = fake_model.requests_containing(f"b {m}")
    assert a.headers["authorization"] == f"Bearer {KEY}"
    assert b.headers["authorization"] == "Bearer from-process-environment"
