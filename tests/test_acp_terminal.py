"""Bash in the client's terminals (issue 26), end to end: the real agent over stdio, the
real bundled CLI, the shipped fake model, and a client that offers `terminal` and runs
each `terminal/create` as a real process. Every message the agent sends is checked
against the ACP schema types (tests/harness/acp.py), the terminal requests too; so are
the `$/cancel_request`s with which a cancelled turn stops waiting for the client."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import attrs
import pydantic
import pytest
from acp import schema as acp

from dave_lsp.testing import FakeModelServer
from tests.harness.acp import allow
from tests.test_acp_cancel_elicit import FormClient

Start = Callable[..., Any]

TERMINAL: dict[str, type[pydantic.BaseModel]] = {
    "terminal/create": acp.CreateTerminalRequest,
    "terminal/output": acp.TerminalOutputRequest,
    "terminal/wait_for_exit": acp.WaitForTerminalExitRequest,
    "terminal/kill": acp.KillTerminalRequest,
    "terminal/release": acp.ReleaseTerminalRequest,
}


@attrs.define(eq=False)
class Terminal:
    """One `terminal/create`: a real process, its output kept as the spec says (the end,
    within `outputByteLimit`)."""

    process: asyncio.subprocess.Process
    limit: int | None
    output: bytearray = attrs.field(factory=bytearray)
    truncated: bool = False
    pump: asyncio.Task[None] | None = None

    async def read(self) -> None:
        assert self.process.stdout is not None
        while chunk := await self.process.stdout.read(65536):
            self.output += chunk
            if self.limit is not None and len(self.output) > self.limit:
                del self.output[: len(self.output) - self.limit]
                self.truncated = True

    def status(self) -> dict[str, Any]:
        code = self.process.returncode
        assert code is not None
        if code < 0:
            return {"exitCode": None, "signal": signal.Signals(-code).name}
        return {"exitCode": code, "signal": None}


class TerminalClient(FormClient):
    """A FormClient (held permission requests, `send`) that offers `terminal` and runs
    the terminal requests for real; it answers a `$/cancel_request` of a pending
    `terminal/wait_for_exit` -32800, as the spec asks."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        agent_out = proc.stdout
        middle = asyncio.StreamReader(limit=64 << 20)
        proc.stdout = middle
        self.terminals: dict[str, Terminal] = {}
        self.terminal_requests: list[tuple[str, dict[str, Any]]] = []
        self.released: list[Terminal] = []
        self._serving: dict[Any, asyncio.Task[None]] = {}
        super().__init__(proc)
        self._terminal_filter = asyncio.create_task(self._terminal_pass(agent_out, middle))

    async def _terminal_pass(self, out: asyncio.StreamReader, middle: asyncio.StreamReader) -> None:
        while line := await out.readline():
            try:
                message = json.loads(line)
            except ValueError:
                message = None
            method = message.get("method") if isinstance(message, dict) else None
            if isinstance(message, dict) and method in TERMINAL:
                self._check(TERMINAL[method], message["params"], method)
                self.terminal_requests.append((method, message["params"]))
                self.arrived.set()
                task = asyncio.create_task(self._serve(message))
                self._serving[message["id"]] = task
            elif isinstance(message, dict) and method == "$/cancel_request":
                self._check(acp.CancelRequestNotification, message["params"], method)
                request_id = message["params"]["requestId"]
                self.cancelled_requests.append(request_id)
                self.arrived.set()
                serving = self._serving.get(request_id)
                if serving is not None:
                    serving.cancel()
            else:
                middle.feed_data(line)
        middle.feed_eof()

    async def _serve(self, message: dict[str, Any]) -> None:
        method, params = message["method"], message["params"]
        try:
            result = await self._terminal(method, params)
        except asyncio.CancelledError:
            self._write({"id": message["id"], "error": {"code": -32800, "message": "cancelled"}})
            return
        except KeyError:
            self._write({"id": message["id"], "error": {"code": -32602, "message": "no such"}})
            return
        finally:
            self._serving.pop(message["id"], None)
        self._write({"id": message["id"], "result": result})

    async def _terminal(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        if method == "terminal/create":
            process = await asyncio.create_subprocess_exec(
                params["command"],
                *params.get("args", []),
                cwd=params.get("cwd"),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
            terminal = Terminal(process, params.get("outputByteLimit"))
            terminal.pump = asyncio.create_task(terminal.read())
            terminal_id = f"term-{process.pid}"
            self.terminals[terminal_id] = terminal
            return {"terminalId": terminal_id}
        terminal = self.terminals[params["terminalId"]]
        if method == "terminal/output":
            result: dict[str, Any] = {
                "output": terminal.output.decode("utf-8", "replace"),
                "truncated": terminal.truncated,
            }
            if terminal.process.returncode is not None:
                result["exitStatus"] = terminal.status()
            return result
        if method == "terminal/wait_for_exit":
            await terminal.process.wait()
            assert terminal.pump is not None
            await terminal.pump
            return terminal.status()
        if terminal.process.returncode is None:  # kill, or release of a running one
            with suppress(ProcessLookupError):
                os.killpg(terminal.process.pid, signal.SIGKILL)
            await terminal.process.wait()
        if method == "terminal/release":
            self.released.append(self.terminals.pop(params["terminalId"]))
        return {}

    def methods(self) -> list[str]:
        return [method for method, _ in self.terminal_requests]

    async def wait_for(self, method: str, timeout: float = 30) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                found = [p for m, p in self.terminal_requests if m == method]
                if found:
                    return found[-1]
                self.arrived.clear()
                await self.arrived.wait()


@pytest.fixture
def agent(backend_env: dict[str, str], tmp_path: Path) -> Start:
    """`agent(terminal=...)`: an initialized TerminalClient, offering terminals or not."""

    @asynccontextmanager
    async def start(terminal: bool = True, *flags: str) -> AsyncIterator[TerminalClient]:
        client = await TerminalClient.start(
            *(f"--env={k}={v}" for k, v in backend_env.items()),
            f"--state-dir={tmp_path / 'state'}",
            "--prewarm=0",
            *flags,
        )
        assert isinstance(client, TerminalClient)
        try:
            await client.request(
                "initialize",
                {
                    "protocolVersion": 1,
                    "clientCapabilities": {
                        "fs": {"readTextFile": False, "writeTextFile": False},
                        "terminal": terminal,
                    },
                    "clientInfo": {"name": "dave-tests", "version": "0"},
                },
            )
            yield client
        finally:
            assert await client.stop() == 0
            await asyncio.wait_for(client._filter, 5)
            await asyncio.wait_for(client._terminal_filter, 5)
            # No command is left running behind a terminal.
            assert client.terminals == {}
            assert all(t.process.returncode is not None for t in client.released)

    return start


def tool(name: str, **tool_input: Any) -> str:
    return f"tool {name} {json.dumps(tool_input)}"


def bash(command: str, name: str = "mcp__acp__Bash") -> str:
    return tool(name, command=command)


def terminal_contents(client: TerminalClient, session: str) -> list[tuple[str | None, str]]:
    """(status, terminalId) of every tool_call_update that shows a terminal."""
    return [
        (u.get("status"), c["terminalId"])
        for u in client.of_kind(session, "tool_call_update")
        for c in u.get("content") or []
        if c["type"] == "terminal"
    ]


async def test_bash_runs_in_the_client_terminal_and_the_model_gets_its_output(
    agent: Start, tmp_path: Path
) -> None:
    (tmp_path / "marker.txt").write_text("x\n")
    async with agent() as client:
        session = await client.new_session(tmp_path)
        command = 'echo "hello $((6 * 7))"; ls'
        assert (await client.prompt(session, bash(command)))["stopReason"] == "end_turn"
        # The model got the output, run in the session's folder.
        said = client.text(session)
        assert said.startswith("Tool said: hello 42") and "marker.txt" in said, said
        # Asked first, as the CLI's Bash is, with the whole command shown.
        [asked] = client.permission_requests
        assert asked["toolCall"]["kind"] == "execute"
        [shown] = asked["toolCall"]["content"]
        assert shown["content"]["text"] == f"```sh\n{command}\n```"
        assert client.methods() == [
            "terminal/create",
            "terminal/wait_for_exit",
            "terminal/output",
            "terminal/release",
        ]
        create = client.terminal_requests[0][1]
        assert create == {
            "sessionId": session,
            "command": "bash",
            "args": ["-c", command],
            "cwd": str(tmp_path),
            "outputByteLimit": 30_000,
        }
        [released] = client.released
        terminal_id = f"term-{released.process.pid}"
        # The tool call shows the terminal while it runs, and still once completed.
        assert terminal_contents(client, session) == [
            (None, terminal_id),
            ("completed", terminal_id),
        ]
        [call] = client.of_kind(session, "tool_call")
        assert (call["title"], call["kind"]) == (f"Bash {command}", "execute")

        # A failing command: its exit code reaches the model, the call failed.
        before = len(client.updates[session])
        await client.prompt(session, bash("echo oops; exit 3"))
        said = "".join(
            u["content"]["text"]
            for u in client.updates[session][before:]
            if u["sessionUpdate"] == "agent_message_chunk"
        )
        # (The CLI appends a ToolSearch hint to a deferred tool's error: docs/architecture.md.)
        assert said.startswith("Tool said: (error) oops\nExit code 3\n"), said
        assert client.of_kind(session, "tool_call_update")[-1]["status"] == "failed"

        # Output past Claude Code's bound: the model gets its end, and is told so.
        long = "seq 1 20000"  # 108,894 bytes
        await client.prompt(session, bash(long))
        said = client.text(session)
        assert "[output truncated: only its last 30000 bytes are kept]" in said
        assert said.rstrip().endswith("19999\n20000") and "\n1\n2\n" not in said

        # The model's timeout: the command is killed at it, and the model told so.
        client.terminal_requests.clear()
        before = len(client.updates[session])
        await client.prompt(session, tool("mcp__acp__Bash", command="sleep 20", timeout=300))
        said = "".join(
            u["content"]["text"]
            for u in client.updates[session][before:]
            if u["sessionUpdate"] == "agent_message_chunk"
        )
        assert said.startswith("Tool said: (error) Command timed out after 0.3 s and was killed.")
        assert client.methods() == [
            "terminal/create",
            "terminal/wait_for_exit",
            "terminal/kill",
            "terminal/output",
            "terminal/release",
        ]

        # No background shells: the model is told to run it in the foreground.
        client.terminal_requests.clear()
        await client.prompt(
            session, tool("mcp__acp__Bash", command="sleep 9", run_in_background=True)
        )
        assert "Tool said: (error) run_in_background is not available" in client.text(session)
        assert client.terminal_requests == []

        # The CLI's own Bash is off: nothing runs behind the editor's terminal.
        await client.prompt(session, bash("echo hidden", name="Bash"))
        assert "No such tool available: Bash" in client.text(session)


async def test_a_cancelled_turn_kills_and_releases_its_terminal(
    agent: Start, tmp_path: Path
) -> None:
    async with agent() as client:
        session = await client.new_session(tmp_path)
        for how in ("session/cancel", "$/cancel_request"):
            params = {"sessionId": session, "prompt": [{"type": "text", "text": bash("sleep 30")}]}
            turn_id, turn = client.send("session/prompt", params)
            waiting = await client.wait_for("terminal/wait_for_exit")
            terminal = client.terminals[waiting["terminalId"]]
            started = time.monotonic()
            if how == "session/cancel":
                client.notify("session/cancel", {"sessionId": session})
            else:
                client.notify("$/cancel_request", {"requestId": turn_id})
            assert await asyncio.wait_for(turn, 10) == {"stopReason": "cancelled"}
            assert time.monotonic() - started < 2, how
            release = await client.wait_for("terminal/release", 10)
            assert release["terminalId"] == waiting["terminalId"]
            # Killed, then released; the wait was cancelled at the client.
            tail = client.methods()[-3:]
            assert tail == ["terminal/wait_for_exit", "terminal/kill", "terminal/release"], how
            assert terminal.process.returncode == -signal.SIGKILL
            with pytest.raises(ProcessLookupError):
                os.killpg(terminal.process.pid, 0)  # nothing of the command is left
            assert client.cancelled_requests, how
            client.terminal_requests.clear()
        # The session goes on.
        assert (await client.prompt(session, "hello"))["stopReason"] == "end_turn"


async def test_without_terminals_bash_runs_as_today_and_a_cancel_cancels_its_question(
    agent: Start, tmp_path: Path
) -> None:
    async with agent(terminal=False) as client:
        session = await client.new_session(tmp_path)
        await client.prompt(session, bash("echo plain-$((1 + 1))", name="Bash"))
        assert client.text(session) == "Tool said: plain-2"
        assert terminal_contents(client, session) == []
        # The client's Bash is not there.
        await client.prompt(session, bash("echo x"))
        assert "No such tool available: mcp__acp__Bash" in client.text(session)

        # A cancelled turn's open permission request (the CLI's own Bash asks for
        # `touch`; it runs read-only commands unasked) is cancelled at the client.
        client.held = []
        text = bash("touch asked.txt", name="Bash")
        params = {"sessionId": session, "prompt": [{"type": "text", "text": text}]}
        turn_id, turn = client.send("session/prompt", params)
        async with asyncio.timeout(30):
            while not client.held:
                client.arrived.clear()
                await client.arrived.wait()
        [held] = client.held
        asked = json.loads(held)
        client.notify("$/cancel_request", {"requestId": turn_id})
        assert await asyncio.wait_for(turn, 10) == {"stopReason": "cancelled"}
        # The agent stopped waiting for the answer, and said so to the client.
        async with asyncio.timeout(5):
            while asked["id"] not in client.cancelled_requests:
                client.arrived.clear()
                await client.arrived.wait()
        client.held = None
        assert client.terminal_requests == []
        assert (await client.prompt(session, "hello"))["stopReason"] == "end_turn"


async def test_the_openai_agent_runs_its_bash_in_the_client_terminal(
    agent: Start, tmp_path: Path, fake_model: FakeModelServer
) -> None:
    config = tmp_path / "acp.json"
    config.write_text(json.dumps({"openai": {"baseUrl": fake_model.url + "/v1"}}))
    flags = ("--backend=openai", "--model=fake-model", f"--config={config}")
    async with agent(True, *flags, "--env=OPENAI_API_KEY=sk-fake-for-tests") as client:
        session = await client.new_session(tmp_path)
        await client.prompt(session, bash("echo from-$((2 * 3))", name="Bash"))
        assert client.text(session) == "Tool said: from-6"
        assert len(client.permission_requests) == 1
        assert client.methods() == [
            "terminal/create",
            "terminal/wait_for_exit",
            "terminal/output",
            "terminal/release",
        ]
        [(_, terminal_id), completed] = terminal_contents(client, session)
        assert completed == ("completed", terminal_id)


async def test_a_denied_bash_makes_no_terminal_and_the_agent_exits_mid_command(
    agent: Start, tmp_path: Path
) -> None:
    """stdin closed mid-command: the agent still sends the terminal's kill and release,
    and exits without waiting for a client that is going away to answer them."""
    async with agent() as client:
        session = await client.new_session(tmp_path)
        client.choose = allow("reject_once")
        await client.prompt(session, bash("touch made.txt"))
        assert len(client.permission_requests) == 1
        assert client.terminal_requests == []
        assert not (tmp_path / "made.txt").exists()
        assert "The user rejected this tool use" in client.text(session)

        client.choose = allow()
        params = {"sessionId": session, "prompt": [{"type": "text", "text": bash("sleep 30")}]}
        client.send("session/prompt", params)
        waiting = await client.wait_for("terminal/wait_for_exit")
        started = time.monotonic()
        assert client.proc.stdin is not None
        client.proc.stdin.close()
        assert await asyncio.wait_for(client.proc.wait(), 20) == 0
        assert time.monotonic() - started < 8
        assert client.methods()[-2:] == ["terminal/kill", "terminal/release"]
        assert waiting["terminalId"] not in client.terminals
