"""The OpenAI-compatible backend as an agent (issue 20): the tools it offers and runs,
under the same permissions, reviews and reports as the Claude backend's.

Most tests drive `OpenAISession` directly against the shipped fake endpoint (the real
`openai` client streaming real SSE over loopback), with a recording permission callback;
the last ones go through the real server, where what a user sees is shown.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from dave_lsp.backends.base import PermissionAnswer, PermissionAsker
from dave_lsp.backends.openai.session import INTERRUPTED_MARKER, OpenAISession
from dave_lsp.backends.openai.tools import PLAN_MODE_REASON
from dave_lsp.events import (
    BackendError,
    Done,
    Event,
    PermissionResolved,
    Status,
    ToolResult,
    ToolUse,
    TurnCancelled,
)
from dave_lsp.testing import FakeModelServer
from dave_lsp.tools.editor import EditorTools
from tests.conftest import Server
from tests.harness.lsp import new_session
from tests.test_openai_backend import make_config, marker

BUILTIN = ["Read", "Write", "Edit", "Bash", "Glob", "Grep"]


ALLOW = PermissionAnswer(allow=True)


@attrs.define
class Asker:
    """The permission callback: records each question, answers with `answer`."""

    answer: PermissionAnswer = ALLOW
    asked: list[tuple[str, str, dict[str, Any]]] = attrs.field(factory=list)

    async def __call__(
        self,
        tool_use_id: str,
        name: str,
        tool_input: dict[str, Any],
        _suggestions: list[Any],
        _parent: str | None,
    ) -> PermissionAnswer:
        self.asked.append((tool_use_id, name, tool_input))
        return self.answer


@attrs.define
class Observer:
    """The session's tool hooks: records the calls, tells the model `told` after."""

    cwd: Path
    told: str | None = None
    calls: list[tuple[str, str]] = attrs.field(factory=list)
    seen_before: list[str] = attrs.field(factory=list)

    async def before_tool(self, tool_use_id: str, name: str, tool_input: dict[str, Any]) -> None:
        self.calls.append(("before", name))
        path = self.cwd / tool_input["file_path"]
        self.seen_before.append(await asyncio.to_thread(_text_or_missing, path))

    async def after_tool(self, tool_use_id: str, name: str) -> str | None:
        self.calls.append(("after", name))
        return self.told


def _text_or_missing(path: Path) -> str:
    return path.read_text() if path.exists() else "<missing>"


def agent(
    fake_model: FakeModelServer,
    cwd: Path,
    asker: PermissionAsker | None = None,
    observer: Observer | None = None,
    **overrides: Any,
) -> OpenAISession:
    config = make_config(fake_model.url + "/v1", cwd=str(cwd), **overrides)
    return OpenAISession(config, asker or Asker(), observer)


@pytest.fixture
async def make(fake_model: FakeModelServer, tmp_path: Path) -> AsyncIterator[Any]:
    """`make(asker=..., observer=..., **config)`: a session in tmp_path, closed after."""
    made: list[OpenAISession] = []

    def build(**kwargs: Any) -> OpenAISession:
        session = agent(fake_model, tmp_path, **kwargs)
        made.append(session)
        return session

    yield build
    for session in made:
        await session.close()


async def turn(session: OpenAISession, prompt: str) -> tuple[list[Event], Done]:
    events = [event async for event in session.query(prompt, ())]
    done = events[-1]
    assert isinstance(done, Done), events
    return events, done


def tool_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in body["messages"] if m.get("role") == "tool"]


def of(events: list[Event], kind: type[Any]) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


def tool_call(name: str, tool_input: dict[str, Any], m: str = "") -> str:
    return f"{m}\ntool {name} {json.dumps(tool_input)}"


# -- what is offered -----------------------------------------------------------------------


async def test_the_tools_offered(make: Any, fake_model: FakeModelServer) -> None:
    m = marker()
    await turn(make(), m)
    [request] = fake_model.requests_containing(m)
    tools = request.body["tools"]
    assert [t["function"]["name"] for t in tools] == BUILTIN
    assert all(t["type"] == "function" for t in tools)
    read = tools[0]["function"]["parameters"]
    assert read["required"] == ["file_path"]
    assert set(read["properties"]) == {"file_path", "offset", "limit"}
    edit = tools[2]["function"]["parameters"]
    assert set(edit["properties"]) == {"file_path", "old_string", "new_string", "replace_all"}
    # No field that some servers reject.
    assert "tool_choice" not in request.body and "parallel_tool_calls" not in request.body


async def test_editor_tools_are_offered_and_run_without_asking(
    make: Any, fake_model: FakeModelServer, tmp_path: Path
) -> None:
    asked: list[tuple[str, Any]] = []

    async def request(method: str, params: Any) -> Any:
        asked.append((method, params))
        return {"files": []}

    editor = EditorTools(["diagnostics", "hover"], request)
    asker = Asker()
    session = make(asker=asker, editor=editor)
    m = marker()
    events, done = await turn(session, tool_call("getDiagnostics", {}, m))
    [first, *_] = fake_model.requests_containing(m)
    names = [t["function"]["name"] for t in first.body["tools"]]
    assert names == [*BUILTIN, "getDiagnostics", "hover"]
    assert asked == [("dave/editor/diagnostics", {})]
    assert asker.asked == []
    [use] = of(events, ToolUse)
    assert of(events, PermissionResolved) == [
        PermissionResolved(f"auto-{use.tool_use_id}", "allow", "mode")
    ]
    assert done.text == "Tool said: No diagnostics."


# -- permissions ---------------------------------------------------------------------------


async def test_read_in_the_cwd_runs_without_asking(
    make: Any, fake_model: FakeModelServer, tmp_path: Path
) -> None:
    (tmp_path / "notes.txt").write_text("alpha\nbeta\n")
    asker = Asker()
    session = make(asker=asker)
    m = marker()
    events, done = await turn(session, tool_call("Read", {"file_path": "notes.txt"}, m))
    assert asker.asked == []
    kinds = [type(e) for e in events if isinstance(e, ToolUse | PermissionResolved | ToolResult)]
    assert kinds == [ToolUse, PermissionResolved, ToolResult]  # in that order
    [use], [resolved], [result] = (
        of(events, ToolUse),
        of(events, PermissionResolved),
        of(events, ToolResult),
    )
    assert use.tool_name == "Read" and use.input == {"file_path": "notes.txt"}
    assert use.message == "Read notes.txt"
    assert resolved == PermissionResolved(f"auto-{use.tool_use_id}", "allow", "mode")
    assert result == ToolResult(use.tool_use_id, "Read", "notes.txt (2 lines)", False)
    # The result went back as a `tool` message answering that call.
    second = fake_model.requests_containing(m)[-1]
    [message] = tool_messages(second.body)
    assert message["content"] == "     1\talpha\n     2\tbeta"
    calls = second.body["messages"][-2]["tool_calls"]
    assert calls[0]["id"] == message["tool_call_id"] == use.tool_use_id
    assert done.text == "Tool said: 1\talpha\n     2\tbeta"  # the fake strips its input


async def test_a_read_outside_the_cwd_asks(make: Any, tmp_path: Path) -> None:
    outside = tmp_path.parent / f"outside-{marker()}.txt"
    outside.write_text("secret\n")
    try:
        asker = Asker(PermissionAnswer(allow=False, reason="not that one"))
        _, done = await turn(make(asker=asker), tool_call("Read", {"file_path": str(outside)}))
        assert [name for _, name, _ in asker.asked] == ["Read"]
        assert "secret" not in done.text
        assert "not that one" in done.text
    finally:
        outside.unlink()


async def test_write_asks_and_lands_between_the_observer_hooks(
    make: Any, fake_model: FakeModelServer, tmp_path: Path
) -> None:
    (tmp_path / "old.txt").write_text("before\n")
    asker, observer = Asker(), Observer(tmp_path, told="The user edited your proposed change.")
    session = make(asker=asker, observer=observer)
    m = marker()
    events, _ = await turn(session, f"{m}\nwrite old.txt after")
    [(use_id, name, tool_input)] = asker.asked
    assert (name, tool_input) == ("Write", {"file_path": "old.txt", "content": "after"})
    assert (tmp_path / "old.txt").read_text() == "after"
    # Snapshot before the write, then the after hook, whose words reach the model.
    assert observer.calls == [("before", "Write"), ("after", "Write")]
    assert observer.seen_before == ["before\n"]
    [result] = of(events, ToolResult)
    assert result == ToolResult(use_id, "Write", "old.txt (5 bytes)", False)
    [message] = tool_messages(fake_model.requests_containing(m)[-1].body)
    assert message["content"] == "Wrote old.txt.\n\nThe user edited your proposed change."
    # Nothing was resolved by the mode: the policy (behind `ask`) reports this one.
    assert of(events, PermissionResolved) == []


async def test_edit_applies_as_the_proposal_does(make: Any, tmp_path: Path) -> None:
    path = tmp_path / "app.py"
    path.write_bytes(b"x = 1\r\ny = 2\r\n")
    edit = {"file_path": "app.py", "old_string": "y = 2", "new_string": "y = 3   "}
    events, _ = await turn(make(), tool_call("Edit", edit))
    # CRLF kept and trailing spaces stripped, as proposals.proposed_text works it out.
    assert path.read_bytes() == b"x = 1\r\ny = 3\r\n"
    assert of(events, ToolResult)[0].summary == "app.py"
    events, _ = await turn(make(), tool_call("Edit", edit))
    [result] = of(events, ToolResult)
    assert result.is_error and result.summary == "app.py: String not found in file."


async def test_a_deny_reaches_the_model_with_the_reason(
    make: Any, fake_model: FakeModelServer, tmp_path: Path
) -> None:
    asker = Asker(PermissionAnswer(allow=False, reason="use the other folder"))
    m = marker()
    events, done = await turn(make(asker=asker), f"{m}\nwrite nope.txt x")
    assert not (tmp_path / "nope.txt").exists()
    [result] = of(events, ToolResult)
    assert result.is_error
    assert result.summary == "nope.txt: The user denied this tool use: use the other folder"
    [message] = tool_messages(fake_model.requests_containing(m)[-1].body)
    assert message["content"] == "The user denied this tool use: use the other folder"
    assert done.text == "Tool said: The user denied this tool use: use the other folder"


async def test_a_deny_with_interrupt_stops_the_turn(make: Any) -> None:
    asker = Asker(PermissionAnswer(allow=False, reason="no answer in time", interrupt=True))
    with pytest.raises(BackendError, match="the turn was stopped: no answer in time"):
        await turn(make(asker=asker), "write late.txt x")


async def test_accept_edits_lets_file_edits_through_but_asks_for_bash(
    make: Any, tmp_path: Path
) -> None:
    asker = Asker()
    session = make(asker=asker, permission_mode="acceptEdits")
    events, _ = await turn(session, "write auto.txt fine")
    assert (tmp_path / "auto.txt").read_text() == "fine"
    assert asker.asked == []
    [use] = of(events, ToolUse)
    assert of(events, PermissionResolved) == [
        PermissionResolved(f"auto-{use.tool_use_id}", "allow", "mode")
    ]
    outside = str(tmp_path.parent / f"outside-{marker()}.txt")
    await turn(session, f"write {outside} no")
    await turn(session, tool_call("Bash", {"command": "true"}))
    # A file that makes code run later asks in acceptEdits too (issue 24), and the
    # default deny leaves it unwritten.
    (tmp_path / ".git" / "hooks").mkdir(parents=True)
    asker.answer = PermissionAnswer(allow=False, reason="not there")
    await turn(session, "write .git/hooks/pre-commit touch PWNED")
    await turn(session, "write .envrc export X=1")
    assert [name for _, name, _ in asker.asked] == ["Write", "Bash", "Write", "Write"]
    assert not (tmp_path / ".git" / "hooks" / "pre-commit").exists()
    assert not (tmp_path / ".envrc").exists()
    os.unlink(outside)


async def test_plan_mode_runs_only_read_only_tools(make: Any, tmp_path: Path) -> None:
    asker = Asker()
    session = make(asker=asker, permission_mode="plan")
    events, done = await turn(session, "write plan.txt x")
    assert not (tmp_path / "plan.txt").exists()
    assert asker.asked == []
    [resolved] = of(events, PermissionResolved)
    assert (resolved.decision, resolved.by) == ("deny", "mode")
    assert done.text == f"Tool said: {PLAN_MODE_REASON}"
    _, done = await turn(session, tool_call("Glob", {"pattern": "*.txt"}))
    assert done.text == "Tool said: No files found."
    # dave/setPermissionMode reaches the backend: the next Write asks.
    await session.configure(permission_mode="default", model=None)
    await turn(session, "write plan.txt x")
    assert [name for _, name, _ in asker.asked] == ["Write"]


async def test_bypass_asks_nothing(make: Any, tmp_path: Path) -> None:
    asker = Asker()
    session = make(asker=asker, permission_mode="bypassPermissions")
    await turn(session, tool_call("Bash", {"command": "echo made > made.txt"}))
    assert (tmp_path / "made.txt").read_text() == "made\n"
    assert asker.asked == []


# -- running tools -------------------------------------------------------------------------


async def test_bash_runs_in_the_cwd_and_its_output_reaches_the_model(
    make: Any, fake_model: FakeModelServer, tmp_path: Path
) -> None:
    m = marker()
    command = "pwd; echo out-$((40+2)); echo err >&2"
    events, done = await turn(make(), tool_call("Bash", {"command": command}, m))
    output = f"{tmp_path}\nout-42\nerr\n"
    [result] = of(events, ToolResult)
    assert result.summary == f"{command} ({len(output)} bytes of output)"
    [message] = tool_messages(fake_model.requests_containing(m)[-1].body)
    assert message["content"] == output
    events, done = await turn(make(), tool_call("Bash", {"command": "echo no; exit 3"}))
    [result] = of(events, ToolResult)
    assert result.is_error and done.text == "Tool said: no\nExit code 3"


async def test_bash_output_is_capped_and_a_timeout_kills_it(make: Any) -> None:
    session = make()
    _, done = await turn(session, tool_call("Bash", {"command": "yes abcdefghi | head -c 100000"}))
    assert "characters of output cut" in done.text
    assert len(done.text) < 31_000
    started = time.monotonic()
    events, done = await turn(session, tool_call("Bash", {"command": "sleep 30", "timeout": 300}))
    assert time.monotonic() - started < 5
    assert of(events, ToolResult)[0].is_error
    assert "Command timed out after 0.3 s" in done.text


async def test_bash_output_streams_as_status_lines(make: Any) -> None:
    session = make()
    seen: list[Event] = []
    command = "echo first; sleep 0.7; echo second"
    events = [
        e async for e in session.query(tool_call("Bash", {"command": command}), (), seen.append)
    ]
    assert isinstance(events[-1], Done)
    lines = [e.message for e in seen if isinstance(e, Status)]
    assert lines == ["Bash: first", "Bash: second"]


async def test_two_calls_in_one_answer_run_in_order(
    make: Any, fake_model: FakeModelServer, tmp_path: Path
) -> None:
    m = marker()
    calls = [
        ["Bash", {"command": "echo one >> log.txt"}],
        ["Write", {"file_path": "two.txt", "content": "2"}],
        ["Bash", {"command": "cat two.txt >> log.txt; echo three >> log.txt"}],
    ]
    asker = Asker()
    events, _ = await turn(make(asker=asker), f"{m}\ncalls {json.dumps(calls)}")
    assert (tmp_path / "log.txt").read_text() == "one\n2three\n"
    assert [name for _, name, _ in asker.asked] == ["Bash", "Write", "Bash"]
    uses = of(events, ToolUse)
    results = of(events, ToolResult)
    assert [u.tool_use_id for u in uses] == [r.tool_use_id for r in results]
    assert len({u.tool_use_id for u in uses}) == 3
    # Each use is reported, asked and finished before the next one starts.
    kinds = [type(e).__name__ for e in events if isinstance(e, ToolUse | ToolResult)]
    assert kinds == ["ToolUse", "ToolResult"] * 3
    # One request offered them; the next carries one assistant message with the three
    # calls and their three results, in order.
    _, second = fake_model.requests_containing(m)
    assistant = second.body["messages"][-4]
    assert [c["id"] for c in assistant["tool_calls"]] == [u.tool_use_id for u in uses]
    assert [t["tool_call_id"] for t in tool_messages(second.body)] == [u.tool_use_id for u in uses]


async def test_a_tool_turn_is_kept_in_the_history(make: Any, fake_model: FakeModelServer) -> None:
    session = make()
    m = marker()
    _, first = await turn(session, tool_call("Glob", {"pattern": "*.none"}, m))
    roles = [msg["role"] for msg in session.history]
    assert roles == ["user", "assistant", "tool", "assistant"]
    assert session.history[-1] == {"role": "assistant", "content": first.text}
    _, done = await turn(session, "recall")
    assert done.text.startswith(f"Seen: {m} tool Glob")


async def test_bad_arguments_and_unknown_tools_are_errors_for_the_model(make: Any) -> None:
    _, done = await turn(make(), tool_call("Teleport", {"to": "mars"}))
    assert done.text == "Tool said: No such tool: Teleport."
    _, done = await turn(make(), tool_call("Read", {"offset": 3}))
    assert done.text == "Tool said: file_path must be a non-empty string"


# -- bounds and fallbacks ------------------------------------------------------------------


async def test_the_step_bound_ends_the_turn_naming_it(
    make: Any, fake_model: FakeModelServer
) -> None:
    m = marker()
    session = make(openai_max_steps=3)
    with pytest.raises(BackendError) as caught:
        await turn(session, f"{m}\nforever Glob {json.dumps({'pattern': '*'})}")
    message = str(caught.value)
    assert "openai.maxSteps is 3" in message and "raise openai.maxSteps" in message
    assert len(fake_model.requests_containing(m)) == 3
    # The steps that ran are kept, every call answered, and the end said.
    assert [msg["role"] for msg in session.history].count("tool") == 3
    assert "openai.maxSteps" in str(session.history[-1]["content"])


async def test_a_model_that_rejects_tools_falls_back_to_chat(
    make: Any, fake_model: FakeModelServer
) -> None:
    m = marker()
    session = make()
    events, done = await turn(session, f"notools hello {m}")
    assert done.text == f"You said: hello {m}"
    with_tools, without = fake_model.requests_containing(m)
    assert "tools" in with_tools.body and "tools" not in without.body
    [notice] = [e for e in of(events, Status) if e.message]
    assert notice.message is not None
    assert notice.message.startswith("Tools are off for fake-model (the endpoint refused them:")
    assert "does not support tools" in notice.message
    # Told once; the session stays a chat.
    events, _ = await turn(session, f"again {m}")
    assert [e for e in of(events, Status) if e.message] == []
    assert "tools" not in fake_model.requests_containing(f"again {m}")[0].body
    assert not session.tools_on


async def test_tools_false_offers_none_and_says_so_once(
    make: Any, fake_model: FakeModelServer
) -> None:
    m = marker()
    session = make(openai_tools=False)
    events, _ = await turn(session, m)
    assert "tools" not in fake_model.requests_containing(m)[0].body
    assert [e.message for e in of(events, Status) if e.message] == [
        "Tools are off for fake-model (openai.tools is false): this session chats without tools."
    ]
    events, _ = await turn(session, m)
    assert [e for e in of(events, Status) if e.message] == []


async def test_base_url_from_the_environment(
    fake_model: FakeModelServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", fake_model.url + "/v1")
    session = OpenAISession(make_config(None, cwd=str(tmp_path)), Asker())
    try:
        _, done = await turn(session, "from env")
        assert done.text == "You said: from env"
    finally:
        await session.close()


# -- cancel --------------------------------------------------------------------------------


async def test_cancel_kills_a_running_command_and_ends_the_turn(make: Any, tmp_path: Path) -> None:
    session = make()
    pid_file = tmp_path / "pid"
    command = f"echo $$ > {pid_file}; sleep 30 & wait"
    events: list[Event] = []

    async def consume() -> None:
        async for event in session.query(tool_call("Bash", {"command": command}), ()):
            events.append(event)

    task = asyncio.create_task(consume())
    deadline = time.monotonic() + 10
    while not pid_file.exists() or not pid_file.read_text().strip():
        assert time.monotonic() < deadline, "the command did not start"
        await asyncio.sleep(0.02)
    pid = int(pid_file.read_text())
    started = time.monotonic()
    await session.interrupt()
    with pytest.raises(TurnCancelled):
        await asyncio.wait_for(task, 2.0)
    assert time.monotonic() - started < 2.0
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    # The call that was cut off is answered in the history; the turn is marked.
    assert session.history[-2]["role"] == "tool"
    assert "interrupted" in str(session.history[-2]["content"])
    assert session.history[-1] == {"role": "assistant", "content": INTERRUPTED_MARKER}
    _, done = await turn(session, "still fine")
    assert done.text == "You said: still fine"


async def test_cancel_while_asking_ends_the_turn(make: Any) -> None:
    asked = asyncio.Event()

    async def never(*_args: Any) -> PermissionAnswer:
        asked.set()
        await asyncio.sleep(60)
        raise AssertionError("not reached")

    session = make(asker=never)
    task = asyncio.create_task(turn(session, "write slow.txt x"))
    await asyncio.wait_for(asked.wait(), 10)
    await session.interrupt()
    with pytest.raises(TurnCancelled):
        await asyncio.wait_for(task, 2.0)


# -- through the real server ---------------------------------------------------------------


def openai_options(fake_model: FakeModelServer, **group: Any) -> dict[str, Any]:
    return {
        "backend": "openai",
        "model": "fake-model",
        "openai": {"baseUrl": fake_model.url + "/v1", **group},
    }


async def test_what_a_user_sees_read_then_write_with_a_proposal(
    server: Server, fake_model: FakeModelServer, tmp_path: Path
) -> None:
    (tmp_path / "greet.txt").write_text("hello\n")
    folder = await asyncio.to_thread(os.path.realpath, tmp_path)
    env_key = {"env": {"OPENAI_API_KEY": "sk-fake-for-tests"}}
    async with server(**openai_options(fake_model), **env_key) as client:
        session = new_session()
        result, token = await client.query(session, tool_call("Read", {"file_path": "greet.txt"}))
        kinds = ("toolUse", "permissionResolved", "toolResult")
        assert [r["type"] for r in client.reports[token] if r.get("type") in kinds] == list(kinds)
        assert client.of_type(token, "toolUse")[0]["message"] == "Read greet.txt"
        assert client.of_type(token, "permissionResolved")[0]["by"] == "mode"
        assert result["toolResults"][0]["summary"] == "greet.txt (1 line)"

        future, token = client.start_query(session, "write greet.txt hello world")
        request = await client.wait_report(token, "permissionRequest")
        assert request["message"] == "Allow Write greet.txt?"
        assert request["allowAlways"]["rule"] == f"Edit({folder}/**)"
        assert request["proposal"]["original"] == "hello\n"
        assert request["proposal"]["proposed"] == "hello world"
        await client.request(
            "dave/permission", {"requestId": request["requestId"], "decision": "allow"}
        )
        result = await asyncio.wait_for(future, 60)
        assert (tmp_path / "greet.txt").read_text() == "hello world"
        assert result["toolResults"][0]["summary"] == "greet.txt (11 bytes)"
        assert result["changes"] == [
            {"path": str(tmp_path / "greet.txt"), "status": "modified", "added": 1, "removed": 1}
        ]
        changes = await client.request("dave/changes", {"sessionId": session})
        assert changes["files"][0]["after"] == "hello world"


async def test_an_edited_proposal_lands_and_the_model_is_told(
    server: Server, fake_model: FakeModelServer, tmp_path: Path
) -> None:
    env_key = {"env": {"OPENAI_API_KEY": "sk-fake-for-tests"}}
    m = marker()
    async with server(**openai_options(fake_model), **env_key) as client:
        future, token = client.start_query(new_session(), f"{m}\nwrite new.txt model version")
        request = await client.wait_report(token, "permissionRequest")
        await client.request(
            "dave/permission",
            {
                "requestId": request["requestId"],
                "decision": "allow",
                "editedContent": "user version\n",
            },
        )
        await asyncio.wait_for(future, 60)
    assert (tmp_path / "new.txt").read_text() == "user version\n"
    [message] = tool_messages(fake_model.requests_containing(m)[-1].body)
    assert "The user edited your proposed change to new.txt" in message["content"]


async def test_cancel_through_the_server_stops_a_command(
    server: Server, fake_model: FakeModelServer, tmp_path: Path
) -> None:
    env_key = {"env": {"OPENAI_API_KEY": "sk-fake-for-tests"}}
    options = {**openai_options(fake_model), "permissionMode": "bypassPermissions", **env_key}
    async with server(**options) as client:
        future, token = client.start_query(
            new_session(), tool_call("Bash", {"command": "echo started; sleep 30"})
        )
        await client.wait_report(token, "toolUse")
        await asyncio.sleep(0.3)
        started = time.monotonic()
        client.cancel(token)
        with pytest.raises(Exception, match="cancel"):
            await asyncio.wait_for(future, 10)
        assert time.monotonic() - started < 5


def test_glob_and_grep_stay_in_the_folder_the_permission_covered(tmp_path: Path) -> None:
    from dave_lsp.backends.openai import tools as openai_tools
    from dave_lsp.backends.openai.search import Stop

    project, outside = tmp_path / "project", tmp_path / "outside"
    project.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text("the secret\n")
    (project / "mine.txt").write_text("not the secret here\n")
    (project / "link").symlink_to(outside)
    cwd = str(project)
    listed = openai_tools._glob({"pattern": "**/*.txt"}, cwd, Stop()).text
    assert listed == "mine.txt"
    assert openai_tools._glob({"pattern": "../outside/*"}, cwd, Stop()).text == "No files found."
    found = openai_tools._grep({"pattern": "secret"}, cwd, Stop()).text
    assert found == "mine.txt:1: not the secret here"
