"""Tests of the shipped fake model server: both wire formats, every command, disconnects,
and one run of the real Claude Code CLI against it."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from dave_lsp.testing import FakeModelServer
from dave_lsp.testing.scripts import plan_for

REPO = Path(__file__).resolve().parent.parent
REMINDER = {"type": "text", "text": "<system-reminder>\nignore me\n</system-reminder>"}


@pytest.fixture(scope="module")
def server() -> Iterator[FakeModelServer]:
    # Its own server, so counts like active_streams are not shared with other tests.
    with FakeModelServer() as fake:
        yield fake


def post(
    server: FakeModelServer, path: str, body: dict[str, Any], conn: Any = None
) -> http.client.HTTPResponse:
    conn = conn or http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("POST", path, json.dumps(body), {"content-type": "application/json"})
    return conn.getresponse()


def anthropic(prompt: str | list[dict[str, Any]], stream: bool = True) -> dict[str, Any]:
    content = prompt if isinstance(prompt, list) else [REMINDER, {"type": "text", "text": prompt}]
    messages = [{"role": "user", "content": content}]
    return {"model": "m", "max_tokens": 10, "stream": stream, "messages": messages}


def sse_events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in raw.decode().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in lines:
            events.append((lines["event"], json.loads(lines["data"])))
    return events


def text_of(events: list[tuple[str, dict[str, Any]]], kind: str = "text") -> list[str]:
    return [e["delta"][kind] for name, e in events if e.get("delta", {}).get(kind) is not None]


def stream_text(server: FakeModelServer, prompt: str) -> list[tuple[str, dict[str, Any]]]:
    response = post(server, "/v1/messages?beta=true", anthropic(prompt))
    assert response.status == 200
    assert response.getheader("content-type") == "text/event-stream"
    return sse_events(response.read())


# Anthropic Messages API


def test_echo_streams_small_pieces_with_full_event_sequence(server: FakeModelServer) -> None:
    events = stream_text(server, "hello there, fake model")
    names = [name for name, _ in events]
    assert names[:2] == ["message_start", "content_block_start"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    pieces = text_of(events)
    assert "".join(pieces) == "You said: hello there, fake model"
    assert len(pieces) > 5 and all(1 <= len(p) <= 6 for p in pieces)
    delta = events[-2][1]
    assert delta["delta"]["stop_reason"] == "end_turn"
    assert delta["usage"]["output_tokens"] == len(pieces)
    assert events[0][1]["message"]["usage"]["input_tokens"] > 10


def test_every_response_has_its_own_id(server: FakeModelServer) -> None:
    ids = {stream_text(server, "same")[0][1]["message"]["id"] for _ in range(3)}
    assert len(ids) == 3


def test_non_streaming_json_and_keep_alive(server: FakeModelServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    first = json.loads(post(server, "/v1/messages", anthropic("think hard", False), conn).read())
    assert [b["type"] for b in first["content"]] == ["thinking", "text"]
    assert first["content"][0]["thinking"] == "Thinking about hard"
    assert first["content"][1]["text"] == "Thought: hard"
    assert first["stop_reason"] == "end_turn"
    # The same connection serves a streamed answer, then another JSON one.
    assert text_of(sse_events(post(server, "/v1/messages", anthropic("a"), conn).read()))
    second = json.loads(post(server, "/v1/messages", anthropic("b", False), conn).read())
    assert second["content"][0]["text"] == "You said: b" and second["id"] != first["id"]


def test_think_streams_thinking_then_text(server: FakeModelServer) -> None:
    events = stream_text(server, "think about life")
    assert "".join(text_of(events, "thinking")) == "Thinking about about life"
    assert "".join(text_of(events)) == "Thought: about life"
    starts = [e["content_block"]["type"] for n, e in events if n == "content_block_start"]
    assert starts == ["thinking", "text"]


def test_write_and_tool_ask_for_tools(server: FakeModelServer) -> None:
    events = stream_text(server, "write /tmp/a.txt two words")
    block = next(e["content_block"] for n, e in events if n == "content_block_start")
    assert block["type"] == "tool_use" and block["name"] == "Write"
    assert json.loads("".join(text_of(events, "partial_json"))) == {
        "file_path": "/tmp/a.txt",
        "content": "two words",
    }
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"
    events = stream_text(server, 'tool Bash {"command": "echo hi"}')
    assert json.loads("".join(text_of(events, "partial_json"))) == {"command": "echo hi"}


def test_count_tokens_404_and_bad_json(server: FakeModelServer) -> None:
    counted = json.loads(post(server, "/v1/messages/count_tokens", anthropic("x")).read())
    assert counted["input_tokens"] > 0
    missing = post(server, "/v1/nothing", {})
    assert missing.status == 404
    assert json.loads(missing.read())["type"] == "error"
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("POST", "/v1/messages", "{not json")
    assert conn.getresponse().status == 400


@pytest.mark.parametrize(
    ("command", "status", "kind", "message"),
    [
        ("error 400 bad thing", 400, "invalid_request_error", "bad thing"),
        ("error 401", 401, "authentication_error", "fake error 401"),
        ("error 429", 429, "rate_limit_error", "fake error 429"),
        ("error 503 down", 503, "api_error", "down"),
    ],
)
def test_error_command(
    server: FakeModelServer, command: str, status: int, kind: str, message: str
) -> None:
    response = post(server, "/v1/messages", anthropic(command))
    assert response.status == status
    body = json.loads(response.read())
    assert body == {"type": "error", "error": {"type": kind, "message": message}}


def test_long_is_fast_and_exact(server: FakeModelServer) -> None:
    started = time.monotonic()
    pieces = text_of(stream_text(server, "long 100000"))
    assert time.monotonic() - started < 10
    assert len(pieces) == 100000
    assert pieces[0] == "w0 " and pieces[-1] == "w99999 "


def wait_for(predicate: Any, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())


def open_stream(server: FakeModelServer, prompt: str) -> socket.socket:
    """A raw streaming request; the caller reads as much as it likes and hangs up."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    body = json.dumps(anthropic(prompt)).encode()
    head = f"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
    sock.sendall(head.encode() + body)
    return sock


def recv_until(sock: socket.socket, marker: bytes) -> bytes:
    received = b""
    while marker not in received:
        chunk = sock.recv(4096)
        assert chunk, f"connection closed before {marker!r}"
        received += chunk
    return received


@pytest.mark.parametrize(
    ("command", "first"), [("slow 100 1000", b"s0 "), ("long 1000000", b"w0 ")]
)
def test_stream_stops_when_the_client_goes_away(
    server: FakeModelServer, command: str, first: bytes
) -> None:
    sock = open_stream(server, command)
    recv_until(sock, first)
    assert server.active_streams == 1
    started = time.monotonic()
    sock.close()
    assert wait_for(lambda: server.active_streams == 0)
    assert time.monotonic() - started < 0.5  # not after the next 1 s pause, nor 130 MB later
    assert "You said: still up" in "".join(text_of(stream_text(server, "still up")))


def test_hang_sends_start_then_waits_for_the_client(server: FakeModelServer) -> None:
    sock = open_stream(server, "hang")
    recv_until(sock, b"message_start")
    sock.settimeout(0.3)
    with pytest.raises(TimeoutError):
        sock.recv(4096)  # nothing more comes
    assert server.active_streams == 1
    sock.close()
    assert wait_for(lambda: server.active_streams == 0)


def test_stop_ends_open_streams() -> None:
    fake = FakeModelServer()
    fake.start()
    sock = open_stream(fake, "hang")
    recv_until(sock, b"message_start")
    started = time.monotonic()
    fake.stop()
    assert time.monotonic() - started < 1
    sock.settimeout(2)
    assert sock.recv(4096) == b""  # closed by the server, not left hanging
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", fake.port), timeout=1)


def test_drop_closes_mid_stream(server: FakeModelServer) -> None:
    response = post(server, "/v1/messages", anthropic("drop 2"))
    with pytest.raises(http.client.IncompleteRead) as caught:
        response.read()
    events = sse_events(caught.value.partial)
    assert text_of(events) == ["d0 ", "d1 "]
    assert "message_stop" not in [name for name, _ in events]
    # Not streaming: the connection closes without any answer.
    with pytest.raises(http.client.RemoteDisconnected):
        post(server, "/v1/messages", anthropic("drop", False))


def test_requests_are_recorded(server: FakeModelServer) -> None:
    post(server, "/v1/messages?beta=true", anthropic("marker-7f3a")).read()
    (recorded,) = server.requests_containing("marker-7f3a")
    assert recorded.path == "/v1/messages" and recorded.api == "anthropic"
    assert recorded.prompt == "marker-7f3a"
    assert recorded.headers["content-type"] == "application/json"
    assert recorded.body["messages"][0]["content"][1]["text"] == "marker-7f3a"
    assert server.requests[-1] == recorded


# The script: prompt, command, tool results, recall


def user(*blocks: Any) -> dict[str, Any]:
    return {"role": "user", "content": list(blocks)}


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def result(content: Any, is_error: bool = False) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": "t", "content": content, "is_error": is_error}


def reply(messages: list[Any]) -> str:
    return "".join(plan_for(messages).text)


ASSISTANT = {"role": "assistant", "content": [{"type": "text", "text": "ok"}]}


def test_prompt_is_the_last_non_reminder_text() -> None:
    assert reply([user(text("hi"), REMINDER)]) == "You said: hi"
    assert reply([user(text("old")), ASSISTANT, {"role": "user", "content": "new"}]) == (
        "You said: new"
    )
    assert plan_for([]).prompt == "" and reply([]) == "You said: "


def test_command_is_the_last_line_without_role_label() -> None:
    transcript = "User: earlier\nAssistant: ok\n\nUser: think twice\n"
    assert reply([user(text(transcript))]) == "Thought: twice"
    assert reply([user(text("user: recall"))]) == "Seen: (nothing)"
    assert reply([user(text("**User:** long 2"))]) == "w0 w1 "
    assert reply([user(text("Long 2"))]) == "You said: Long 2"  # commands are case-sensitive
    assert reply([user(text("long lots"))]) == "You said: long lots"  # bad arguments echo


def test_tool_results_take_precedence() -> None:
    tool_turn = [user(text("write a b")), ASSISTANT]
    assert reply([*tool_turn, user(result("done"), REMINDER)]) == "Tool said: done"
    parts = [text("line 1"), text("line 2")]
    assert reply([*tool_turn, user(result(parts, True))]) == "Tool said: (error) line 1\nline 2"
    # A prompt after the results (the CLI merges it there after an interrupt) is a command.
    merged = user(result("x"), text("[Request interrupted by user for tool use]"), text("hi"))
    assert reply([*tool_turn, merged]) == "You said: hi"
    # The CLI's own role "system" message does not hide the results.
    system = {"role": "system", "content": "# Environment"}
    assert reply([*tool_turn, user(result("done")), system]) == "Tool said: done"
    assert plan_for([*tool_turn, user(result("done"))]).prompt == "write a b"


def test_recall_lists_earlier_user_texts() -> None:
    messages = [
        user(REMINDER, text("first\nline")),
        ASSISTANT,
        user(result("ignored"), text("second")),
        ASSISTANT,
        user(text("recall")),
    ]
    assert reply(messages) == "Seen: first line | second"


def test_slow_drop_and_hang_plans() -> None:
    slow = plan_for([user(text("slow 3 7"))])
    assert slow.text == ["s0 ", "s1 ", "s2 "] and slow.delay == 0.007
    assert plan_for([user(text("slow 2"))]).delay == 0.05
    assert plan_for([user(text("drop"))]).text == ["d0 ", "d1 ", "d2 "]
    assert plan_for([user(text("hang"))]).ending == "hang"


# OpenAI chat completions


@pytest.fixture(scope="module")
def oai(server: FakeModelServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="sk-fake", max_retries=0)


def test_openai_streaming_with_usage(oai: openai.OpenAI) -> None:
    chunks = list(
        oai.chat.completions.create(
            model="fake-model",
            messages=[{"role": "user", "content": "hi from openai"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    pieces = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert "".join(pieces) == "You said: hi from openai" and len(pieces) > 3
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == len(pieces)


def test_openai_thinking_tools_and_json(oai: openai.OpenAI) -> None:
    chunks = list(
        oai.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "think x"}], stream=True
        )
    )
    deltas = [c.choices[0].delta.model_dump() for c in chunks if c.choices]
    assert "".join(d.get("reasoning_content") or "" for d in deltas) == "Thinking about x"
    chunks = list(
        oai.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "write f.txt hi"}], stream=True
        )
    )
    calls = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert calls[0].function is not None and calls[0].function.name == "Write"
    arguments = "".join(tc.function.arguments or "" for tc in calls if tc.function)
    assert json.loads(arguments) == {"file_path": "f.txt", "content": "hi"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    history: list[Any] = [
        {"role": "user", "content": [{"type": "text", "text": "write f.txt hi"}]},
        {"role": "assistant", "content": None, "tool_calls": [calls[0].model_dump()]},
        {"role": "tool", "tool_call_id": calls[0].id or "", "content": "written"},
    ]
    done = oai.chat.completions.create(model="m", messages=history)
    assert done.choices[0].message.content == "Tool said: written"
    assert done.usage is not None and done.usage.prompt_tokens > 0


def test_openai_errors_models_and_drop(oai: openai.OpenAI, server: FakeModelServer) -> None:
    with pytest.raises(openai.RateLimitError) as caught:
        oai.chat.completions.create(model="m", messages=[{"role": "user", "content": "error 429"}])
    assert caught.value.status_code == 429
    assert caught.value.body == {
        "message": "fake error 429",
        "type": "rate_limit_error",
        "param": None,
        "code": "rate_limit_error",
    }
    assert [m.id for m in oai.models.list()] == ["fake-model"]
    with pytest.raises(openai.APIError):
        stream = oai.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "drop 2"}], stream=True
        )
        list(stream)
    assert server.requests[-1].api == "openai" and server.requests[-1].prompt == "drop 2"


# The module entry point and the real CLI


def test_python_dash_m_prints_url_and_serves() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "dave_lsp.testing"],
        cwd=REPO,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline().strip()
        assert line.startswith("fake model listening on http://127.0.0.1:")
        assert line.endswith(" (scripted, not a real model)")
        port = int(line.split()[4].rsplit(":", 1)[1])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", "/v1/messages", json.dumps(anthropic("up", False)))
        assert json.loads(conn.getresponse().read())["content"][0]["text"] == "You said: up"
    finally:
        process.terminate()
        process.wait(10)


async def test_real_claude_cli_accepts_the_stream(server: FakeModelServer, tmp_path: Path) -> None:
    from claude_agent_sdk import (
        ClaudeAgentOptions,
        ClaudeSDKClient,
        PermissionResultAllow,
        ResultMessage,
        StreamEvent,
    )

    async def allow(name: str, tool_input: dict[str, Any], context: Any) -> PermissionResultAllow:
        return PermissionResultAllow()

    env = {
        "ANTHROPIC_BASE_URL": server.url,
        "ANTHROPIC_API_KEY": "sk-fake",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "CLAUDE_CODE_MAX_RETRIES": "0",
        "HOME": str(tmp_path / "home"),
    }
    (tmp_path / "home").mkdir()
    options = ClaudeAgentOptions(
        env=env, include_partial_messages=True, can_use_tool=allow, cwd=str(tmp_path)
    )
    target = tmp_path / "x.txt"
    async with ClaudeSDKClient(options) as client:
        results: list[ResultMessage] = []
        deltas: list[str] = []
        for prompt in ["hello", f"write {target} hi"]:
            await client.query(prompt)
            async for message in client.receive_response():
                if isinstance(message, StreamEvent):
                    delta = message.event.get("delta", {})
                    deltas += [delta["text"]] if "text" in delta else []
                elif isinstance(message, ResultMessage):
                    results.append(message)
    assert results[0].result == "You said: hello" and not results[0].is_error
    assert deltas[:4] == ["You", " sai", "d: he", "llo"]  # streamed in small pieces
    assert target.read_text() == "hi"
    assert results[1].result is not None and results[1].result.startswith("Tool said: File ")
    assert server.requests_containing(f"write {target} hi")
