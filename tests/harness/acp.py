"""An ACP client for the tests: starts `dave-lsp acp` over stdio the way an editor
does, keeps every `session/update`, answers `session/request_permission` with a
choice the test sets, serves `fs/read_text_file` and `fs/write_text_file` from its
`buffers` (an editor's unsaved text; the disk for a path it has no buffer of) when it
offers them, and checks every message it receives against the ACP schema types of the
`agent-client-protocol` package (a message that does not fit fails the test at the
end, in `stop`)."""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pydantic
from acp import schema as acp

# What each of our requests is answered with, by method.
RESPONSES: dict[str, type[pydantic.BaseModel]] = {
    "initialize": acp.InitializeResponse,
    "session/new": acp.NewSessionResponse,
    "session/load": acp.LoadSessionResponse,
    "session/resume": acp.ResumeSessionResponse,
    "session/list": acp.ListSessionsResponse,
    "session/prompt": acp.PromptResponse,
    "session/set_mode": acp.SetSessionModeResponse,
    "session/set_config_option": acp.SetSessionConfigOptionResponse,
}

# The client's file system requests, checked against the schema.
FS: dict[str, type[pydantic.BaseModel]] = {
    "fs/read_text_file": acp.ReadTextFileRequest,
    "fs/write_text_file": acp.WriteTextFileRequest,
}

Chooser = Callable[[dict[str, Any]], dict[str, Any]]


def allow(option: str = "allow_once") -> Chooser:
    return lambda _params: {"outcome": {"outcome": "selected", "optionId": option}}


def strict(model: type[pydantic.BaseModel], value: Any) -> None:
    """Validate, and also refuse what the package's lenient validators would salvage
    (an invalid optional field becomes None there): the dump must keep every key."""
    parsed = model.model_validate(value)
    dumped = parsed.model_dump(by_alias=True, exclude_none=True, mode="json")
    _same_keys(value, dumped, model.__name__)


def _same_keys(sent: Any, kept: Any, where: str) -> None:
    if isinstance(sent, dict) and isinstance(kept, dict):
        for key, item in sent.items():
            if item is None:
                continue
            assert key in kept, f"{where}.{key} was dropped by the schema: {item!r}"
            _same_keys(item, kept[key], f"{where}.{key}")
    elif isinstance(sent, list) and isinstance(kept, list):
        assert len(sent) == len(kept), f"{where}: items were dropped by the schema"
        for index, (a, b) in enumerate(zip(sent, kept, strict=True)):
            _same_keys(a, b, f"{where}[{index}]")


class AcpClient:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[str, asyncio.Future[Any]]] = {}
        self.updates: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.permission_requests: list[dict[str, Any]] = []
        self.buffers: dict[str, str] = {}  # path -> the editor's text of it
        self.fs_requests: list[tuple[str, dict[str, Any]]] = []
        self.cancelled_requests: list[Any] = []  # ids of ours the agent stopped waiting for
        self.choose: Chooser = allow()
        self.invalid: list[str] = []
        self.unattributed: list[dict[str, Any]] = []
        self.arrived = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, *args: str, env: dict[str, str] | None = None) -> AcpClient:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "dave_lsp",
            "acp",
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=env,
            limit=64 << 20,
        )
        return cls(proc)

    def _write(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"jsonrpc": "2.0", **message}).encode() + b"\n")

    async def request(self, method: str, params: Any, timeout: float = 60) -> Any:
        msg_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = (method, future)
        self._write({"id": msg_id, "method": method, "params": params})
        return await asyncio.wait_for(future, timeout)

    def notify(self, method: str, params: Any) -> None:
        self._write({"method": method, "params": params})

    def _check(self, model: type[pydantic.BaseModel], value: Any, what: str) -> None:
        try:
            strict(model, value)
        except (pydantic.ValidationError, AssertionError) as exc:
            self.invalid.append(f"{what}: {exc}")

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            try:
                message = json.loads(line)
            except ValueError:
                self.invalid.append(f"not JSON on stdout: {line[:200]!r}")
                continue
            if message.get("jsonrpc") != "2.0":
                self.invalid.append(f"not JSON-RPC 2.0: {message}")
            method = message.get("method")
            if method == "session/update":
                self._check(acp.SessionNotification, message["params"], "session/update")
                params = message["params"]
                self.updates[params["sessionId"]].append(params["update"])
                self.arrived.set()
            elif method == "session/request_permission":
                self._check(acp.RequestPermissionRequest, message["params"], method)
                self.permission_requests.append(message["params"])
                self.arrived.set()
                answer = self.choose(message["params"])
                self._write({"id": message["id"], "result": answer})
            elif method in FS:
                self._check(FS[method], message["params"], method)
                self.fs_requests.append((method, message["params"]))
                self._write({"id": message["id"], **self._fs(method, message["params"])})
            elif method == "$/cancel_request":
                self._check(acp.CancelRequestNotification, message["params"], method)
                self.cancelled_requests.append(message["params"]["requestId"])
            elif method is not None:
                self.invalid.append(f"unexpected method {method}")
            elif message.get("id") is None:  # an error about a message it could not read
                self.unattributed.append(message["error"])
            else:
                sent, future = self._pending.pop(message["id"])
                if "error" in message:
                    future.set_exception(AcpError(message["error"]))
                else:
                    model = RESPONSES.get(sent)
                    if model is not None:
                        self._check(model, message["result"], f"{sent} response")
                    future.set_result(message["result"])

    def _fs(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        path = params["path"]
        if method == "fs/write_text_file":
            self.buffers[path] = params["content"]
            return {"result": {}}
        text = self.buffers.get(path)
        if text is None:
            try:
                text = Path(path).read_text()
            except OSError as exc:
                return {"error": {"code": -32002, "message": f"{path}: {exc.strerror}"}}
        start = (params.get("line") or 1) - 1
        lines = text.splitlines(keepends=True)[start:]
        if params.get("limit") is not None:
            lines = lines[: params["limit"]]
        return {"result": {"content": "".join(lines)}}

    def of_kind(self, session_id: str, kind: str) -> list[dict[str, Any]]:
        return [u for u in self.updates[session_id] if u["sessionUpdate"] == kind]

    def text(self, session_id: str, kind: str = "agent_message_chunk") -> str:
        return "".join(u["content"]["text"] for u in self.of_kind(session_id, kind))

    async def wait_update(self, session_id: str, kind: str, timeout: float = 30) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                found = self.of_kind(session_id, kind)
                if found:
                    return found[0]
                self.arrived.clear()
                await self.arrived.wait()

    async def initialize(self, fs: bool = False, write: bool | None = None) -> Any:
        """`fs`: offer the client's file system (`write`: writes too; default as `fs`)."""
        writes = fs if write is None else write
        return await self.request(
            "initialize",
            {
                "protocolVersion": 1,
                "clientCapabilities": {"fs": {"readTextFile": fs, "writeTextFile": writes}},
                "clientInfo": {"name": "dave-tests", "version": "0"},
            },
        )

    async def new_session(self, cwd: Path, mcp: list[Any] | None = None) -> str:
        result = await self.request("session/new", {"cwd": str(cwd), "mcpServers": mcp or []})
        return str(result["sessionId"])

    async def prompt(self, session_id: str, text: str, timeout: float = 60) -> Any:
        params = {"sessionId": session_id, "prompt": [{"type": "text", "text": text}]}
        return await self.request("session/prompt", params, timeout)

    async def stop(self) -> int:
        """Close stdin; the agent ends its sessions and exits."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        code = await asyncio.wait_for(self.proc.wait(), 20)
        await asyncio.wait_for(self._reader, 5)
        assert not self.invalid, "\n".join(self.invalid)
        return code


class AcpError(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error.get("message"))
        self.code = error.get("code")
        self.error = error


def tool(name: str, **tool_input: Any) -> str:
    """A prompt the shipped fake model answers by calling tool `name` with `tool_input`."""
    return f"tool {name} {json.dumps(tool_input)}"


# What an `agent` fixture returns: `start(*flags, home=None, fs=False, write=None)`.
Start = Callable[..., AbstractAsyncContextManager[AcpClient]]


def agent_starter(
    backend_env: dict[str, str], folder: Path, process_env: dict[str, str] | None = None
) -> Start:
    """`start(*flags, home=None, fs=False, write=None)`: an initialized AcpClient, for
    `async with`, on the fake model's environment (`home`: another HOME, whose Claude
    Code settings its sessions read), in `folder`, with `folder/state` as its state dir
    (every agent of a test shares it, as an editor restarting its agent would) and no
    spare (a later `--prewarm=N` flag makes N); `fs` and `write`: the file system it
    offers at `initialize`; `process_env`: the agent process's own environment (default:
    the tests'). On leaving it is stopped and must exit 0 (and every message it sent
    must have fit the schema)."""

    @asynccontextmanager
    async def start(
        *flags: str, home: Path | None = None, fs: bool = False, write: bool | None = None
    ) -> AsyncIterator[AcpClient]:
        env = {**backend_env, **({"HOME": str(home)} if home else {})}
        client = await AcpClient.start(
            *(f"--env={k}={v}" for k, v in env.items()),
            f"--state-dir={folder / 'state'}",
            f"--cwd={folder}",
            "--prewarm=0",
            *flags,
            env=process_env,
        )
        try:
            await client.initialize(fs=fs, write=write)
            yield client
        finally:
            assert await client.stop() == 0

    return start
