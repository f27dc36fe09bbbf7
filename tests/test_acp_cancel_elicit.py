"""`$/cancel_request` and the model's questions as forms (issue 26), end to end: the
real agent over stdio, the real bundled CLI, the shipped fake model; every message the
agent sends is checked against the ACP schema types (tests/harness/acp.py), the
`elicitation/create` requests too."""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pydantic
import pytest
from acp import schema as acp

from dave_lsp.acp.transport import Connection
from dave_lsp.testing import FakeModelServer
from tests.harness.acp import AcpClient, allow, strict
from tests.test_trust import hostile

Start = Callable[..., Any]
ELICIT = "elicitation/create"
_unique = itertools.count()


class FormClient(AcpClient):
    """An AcpClient that may offer `elicitation.form` and answers `elicitation/create`
    with `answer_form` (every such request checked against the schema). The agent's
    other messages go on to the harness's reader as they arrive."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        self._agent_out = proc.stdout
        passed = asyncio.StreamReader(limit=64 << 20)
        proc.stdout = passed
        self.elicitations: list[dict[str, Any]] = []
        # When set, permission requests wait here unanswered (lines) till the test
        # passes them on (`release`).
        self.held: list[bytes] | None = None
        self._passed = passed
        self.answer_form: Callable[[dict[str, Any]], dict[str, Any]] = lambda _p: {
            "action": "cancel"
        }
        super().__init__(proc)
        self._filter = asyncio.create_task(self._pass(passed))

    async def _pass(self, passed: asyncio.StreamReader) -> None:
        while line := await self._agent_out.readline():
            try:
                message = json.loads(line)
            except ValueError:
                message = None
            method = message.get("method") if isinstance(message, dict) else None
            if self.held is not None and method == "session/request_permission":
                self.held.append(line)
                self.arrived.set()
            elif isinstance(message, dict) and method == ELICIT:
                self._check_form(message["params"])
                self.elicitations.append(message["params"])
                result = self.answer_form(message["params"])
                self._write({"id": message["id"], "result": result})
            else:
                passed.feed_data(line)
        passed.feed_eof()

    def release(self) -> None:
        """Pass the held permission requests on (the harness answers them)."""
        for line in self.held or []:
            self._passed.feed_data(line)
        self.held = None

    def _check_form(self, params: Any) -> None:
        try:
            strict(acp.CreateFormSessionElicitationRequest, params)
        except (pydantic.ValidationError, AssertionError) as exc:
            self.invalid.append(f"{ELICIT}: {exc}")

    def send(self, method: str, params: Any) -> tuple[int, asyncio.Future[Any]]:
        """A request whose id the test needs (to cancel it): its id and its answer."""
        msg_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = (method, future)
        self._write({"id": msg_id, "method": method, "params": params})
        return msg_id, future


async def start_client(env: dict[str, str], state: Path, forms: bool) -> FormClient:
    client = await FormClient.start(
        *(f"--env={k}={v}" for k, v in env.items()), f"--state-dir={state}", "--prewarm=0"
    )
    assert isinstance(client, FormClient)
    capabilities: dict[str, Any] = {"fs": {"readTextFile": False, "writeTextFile": False}}
    if forms:
        capabilities["elicitation"] = {"form": {}}
    await client.request(
        "initialize",
        {
            "protocolVersion": 1,
            "clientCapabilities": capabilities,
            "clientInfo": {"name": "dave-tests", "version": "0"},
        },
    )
    return client


async def stop_client(client: FormClient) -> None:
    assert await client.stop() == 0
    await asyncio.wait_for(client._filter, 5)


@pytest.fixture
def agent(backend_env: dict[str, str], tmp_path: Path) -> Start:
    """`agent(forms=...)`: an initialized FormClient, offering form elicitation or not."""

    @asynccontextmanager
    async def start(forms: bool = True) -> AsyncIterator[FormClient]:
        client = await start_client(backend_env, tmp_path / "state", forms)
        try:
            yield client
        finally:
            await stop_client(client)

    return start


# -- $/cancel_request ----------------------------------------------------------------


async def test_cancel_request_ends_a_prompt_as_session_cancel_does(
    agent: Start, tmp_path: Path
) -> None:
    async with agent() as client:
        session = await client.new_session(tmp_path)
        params = {"sessionId": session, "prompt": [{"type": "text", "text": "slow 40 200"}]}
        turn_id, turn = client.send("session/prompt", params)
        await client.wait_update(session, "agent_message_chunk")
        started = time.monotonic()
        client.notify("$/cancel_request", {"requestId": turn_id})
        result = await asyncio.wait_for(turn, 10)
        elapsed = time.monotonic() - started
        assert result == {"stopReason": "cancelled"}
        assert elapsed < 2, elapsed
        assert "s39" not in client.text(session)  # the 8 s stream did not run on
        # A cancel of a finished request, or of no request, is ignored.
        client.notify("$/cancel_request", {"requestId": turn_id})
        client.notify("$/cancel_request", {"requestId": "no-such-request"})
        before = len(client.updates[session])
        assert (await client.prompt(session, "think again"))["stopReason"] == "end_turn"
        after = "".join(
            u["content"]["text"]
            for u in client.updates[session][before:]
            if u["sessionUpdate"] == "agent_message_chunk"
        )
        assert after == "Thought: again"
        assert client.unattributed == []


async def test_cancel_request_while_the_folder_trust_question_waits(
    tmp_path: Path, fake_model: FakeModelServer
) -> None:
    """A prompt cancelled before its turn (its folder's trust question unanswered)
    answers `cancelled` too; the question stays for the next prompt."""
    repo = hostile(tmp_path, fake_model.url)
    client = await start_client(repo.env, tmp_path / "state", forms=False)
    try:
        client.held = []
        client.choose = lambda p: allow(p["options"][-1]["optionId"])(p)  # run without
        session = await client.new_session(repo.repo)
        params = {"sessionId": session, "prompt": [{"type": "text", "text": "hello"}]}
        turn_id, turn = client.send("session/prompt", params)
        async with asyncio.timeout(30):
            while not client.held:
                client.arrived.clear()
                await client.arrived.wait()
        client.notify("$/cancel_request", {"requestId": turn_id})
        assert await asyncio.wait_for(turn, 5) == {"stopReason": "cancelled"}
        again = asyncio.ensure_future(client.prompt(session, "hello again"))
        await asyncio.sleep(0.2)
        assert not again.done()  # it waits for the same question
        client.release()
        assert (await again)["stopReason"] == "end_turn"
        assert client.text(session) == "You said: hello again"
        assert len(client.permission_requests) == 1
    finally:
        await stop_client(client)


class _Out(io.BytesIO):
    """The agent's output, each line also queued as written."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: asyncio.Queue[bytes] = asyncio.Queue()

    def write(self, data: Any) -> int:
        self.lines.put_nowait(bytes(data))
        return super().write(data)


async def test_cancel_request_answers_any_other_pending_request_32800() -> None:
    """A request without a way of its own to end early is cancelled and answered
    -32800; one with a way (`when_cancelled`) ends as it says. In process: no ACP
    request but a prompt stays pending long enough to cancel it reliably."""
    out = _Out()
    conn = Connection(out)
    started, gentle_started = asyncio.Event(), asyncio.Event()
    ended_early = asyncio.Event()

    async def forever(_params: Any) -> Any:
        started.set()
        await asyncio.Event().wait()

    async def gentle(_params: Any) -> Any:
        conn.when_cancelled(ended_early.set)
        gentle_started.set()
        await ended_early.wait()
        return {"stopReason": "cancelled"}

    conn.on_request("dave/forever", forever)
    conn.on_request("dave/gentle", gentle)

    async def line(message: dict[str, Any]) -> None:
        await conn.receive(json.dumps({"jsonrpc": "2.0", **message}).encode())

    await line({"id": 7, "method": "dave/forever", "params": {}})
    await line({"id": "g", "method": "dave/gentle", "params": {}})
    await asyncio.wait_for(asyncio.gather(started.wait(), gentle_started.wait()), 5)
    await line({"method": "$/cancel_request", "params": {"requestId": 7}})
    await line({"method": "$/cancel_request", "params": {"requestId": "g"}})
    await line({"method": "$/cancel_request", "params": {"requestId": 99}})  # ignored
    sent = [json.loads(await asyncio.wait_for(out.lines.get(), 5)) for _ in range(2)]
    answers = {m["id"]: m for m in sent}
    assert set(answers) == {7, "g"} and out.lines.empty()
    assert all(m.pop("jsonrpc") == "2.0" for m in answers.values())
    strict(acp.AgentErrorMessage, answers[7])
    assert answers[7]["error"]["code"] == -32800
    strict(acp.PromptResponse, answers["g"]["result"])
    assert answers["g"]["result"] == {"stopReason": "cancelled"}


# -- questions as forms --------------------------------------------------------------


def _questions(tag: str) -> list[dict[str, Any]]:
    return [
        {
            "question": f"Which color {tag}?",
            "header": "Color",
            "multiSelect": False,
            "options": [
                {"label": "Blue", "description": "Calm"},
                {"label": "Red", "description": "Loud"},
            ],
        },
        {
            "question": f"Which sizes {tag}?",
            "header": "Size",
            "multiSelect": True,
            "options": [{"label": "S", "description": ""}, {"label": "L", "description": ""}],
        },
        {
            "question": f"Which shape {tag}?",
            "header": "Shape",
            "multiSelect": False,
            "options": [
                {"label": "Round", "description": ""},
                {"label": "Flat", "description": ""},
            ],
        },
    ]


def _ask(questions: list[dict[str, Any]]) -> str:
    return "tool AskUserQuestion " + json.dumps({"questions": questions})


async def test_questions_are_one_form_and_accepted_answers_reach_the_model(
    agent: Start, tmp_path: Path, fake_model: FakeModelServer
) -> None:
    tag = f"a{next(_unique)}"
    async with agent() as client:
        session = await client.new_session(tmp_path)
        client.answer_form = lambda _p: {
            "action": "accept",
            "content": {"q1": "Red", "q2": ["S", "L"], "q3": "Round", "q3_other": "A star"},
        }
        result = await client.prompt(session, _ask(_questions(tag)))
        assert result["stopReason"] == "end_turn"
        assert client.permission_requests == []
        [form] = client.elicitations
        [call] = client.of_kind(session, "tool_call")
        assert form["mode"] == "form" and form["sessionId"] == session
        assert form["toolCallId"] == call["toolCallId"]
        props = form["requestedSchema"]["properties"]
        assert props["q1"]["title"] == f"Which color {tag}?"
        assert props["q1"]["oneOf"] == [
            {"const": "Blue", "title": "Blue", "description": "Calm"},
            {"const": "Red", "title": "Red", "description": "Loud"},
        ]
        assert props["q2"]["type"] == "array"
        assert props["q2"]["items"] == {"type": "string", "enum": ["S", "L"]}
        assert props["q3"]["enum"] == ["Round", "Flat"]
        assert {"q1_other", "q2_other", "q3_other"} <= set(props)
        assert props["q3_other"]["type"] == "string"
        expected = [
            f'"Which color {tag}?"="Red"',
            f'"Which sizes {tag}?"="S, L"',
            f'"Which shape {tag}?"="A star"',  # own words win over the choice
        ]
        said = client.text(session)
        assert all(e in said for e in expected), said
        # The model's next request carries them (as JSON text: quotes escaped).
        marks = [json.dumps(e)[1:-1] for e in expected]
        bodies = [json.dumps(r.body) for r in fake_model.requests_containing(marks[0])]
        assert any(all(m in body for m in marks) for body in bodies), bodies


@pytest.mark.parametrize("action", ["decline", "cancel"])
async def test_a_declined_or_cancelled_form_tells_the_model_the_user_declined(
    agent: Start, tmp_path: Path, fake_model: FakeModelServer, action: str
) -> None:
    tag = f"d{next(_unique)}"
    async with agent() as client:
        session = await client.new_session(tmp_path)
        client.answer_form = lambda _p: {"action": action}
        result = await client.prompt(session, _ask(_questions(tag)[:1]))
        assert result["stopReason"] == "end_turn"
        [form] = client.elicitations
        assert form["message"] == f"Which color {tag}?"
        assert client.permission_requests == []
        said = client.text(session)
        assert "declined to answer" in said, said
        assert f'Which color {tag}?"=' not in said
        told = fake_model.requests_containing("The user declined to answer the questions.")
        assert any(tag in json.dumps(r.body) for r in told)


async def test_without_forms_each_question_is_a_permission_request(
    agent: Start, tmp_path: Path
) -> None:
    tag = f"p{next(_unique)}"
    async with agent(forms=False) as client:
        session = await client.new_session(tmp_path)
        client.choose = lambda p: allow(p["options"][-2]["optionId"])(p)  # the last choice
        questions = [q for q in _questions(tag) if not q["multiSelect"]]
        await client.prompt(session, _ask(questions))
        assert client.elicitations == []
        titles = [r["toolCall"]["title"] for r in client.permission_requests]
        assert titles == [f"Which color {tag}?", f"Which shape {tag}?"]
        said = client.text(session)
        assert f'"Which color {tag}?"="Red"' in said and f'"Which shape {tag}?"="Flat"' in said
