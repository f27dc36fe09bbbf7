"""A lean ACP client over stdio, the same for dave-lsp's agent and the reference agent.

Newline-delimited JSON-RPC 2.0: `initialize`, `session/new`, `session/prompt`, and an
answer (the first `allow_once` option) to every `session/request_permission`. Every
incoming message is stamped with `time.perf_counter()` as soon as it is parsed, and a
prompt keeps the `session/update` notifications of its session that arrive between
its request and its response.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import time
from pathlib import Path
from typing import IO, Any


class AcpRpcError(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(f"{error.get('code')}: {error.get('message')}")
        self.code = error.get("code")


class Prompt:
    """One session/prompt in flight: its session's updates with arrival times."""

    def __init__(self, session_id: str, sent: float) -> None:
        self.session_id = session_id
        self.sent = sent
        self.updates: list[tuple[float, dict[str, Any]]] = []
        self.answered = 0.0
        self.result: Any = None

    @property
    def chunks(self) -> list[tuple[float, str]]:
        return [
            (t, u["content"].get("text", ""))
            for t, u in self.updates
            if u.get("sessionUpdate") == "agent_message_chunk"
            and isinstance(u.get("content"), dict)
        ]

    @property
    def text(self) -> str:
        return "".join(text for _, text in self.chunks)

    @property
    def latency(self) -> float:
        return self.answered - self.sent


class AcpClient:
    """One agent process and what it sends."""

    def __init__(self, command: list[str], stderr: IO[bytes] | int | None = None) -> None:
        self.command = command
        self.stderr = stderr
        self.process: asyncio.subprocess.Process | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._prompts: dict[str, Prompt] = {}  # session id -> the prompt running in it
        self._reader: asyncio.Task[None] | None = None
        self.permissions = 0
        self.other_updates = 0  # session/update outside any prompt (commands lists, ...)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self, env: dict[str, str]) -> None:
        self.process = await asyncio.create_subprocess_exec(
            *self.command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=self.stderr,
            env={**os.environ, **env},
            limit=64 << 20,
        )
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        stdout = self.process.stdout
        try:
            while line := await stdout.readline():
                now = time.perf_counter()
                with contextlib.suppress(ValueError):
                    self._dispatch(json.loads(line), now)
        except ConnectionError:
            pass
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectionError("the agent closed its stdout"))

    def _dispatch(self, message: dict[str, Any], now: float) -> None:
        method = message.get("method")
        if method is None:
            future = self._pending.pop(message.get("id"), None)  # type: ignore[arg-type]
            if future is not None and not future.done():
                if "error" in message:
                    future.set_exception(AcpRpcError(message["error"]))
                else:
                    future.set_result((now, message.get("result")))
            return
        params = message.get("params") or {}
        if method == "session/update":
            prompt = self._prompts.get(str(params.get("sessionId")))
            if prompt is not None:
                prompt.updates.append((now, params.get("update") or {}))
            else:
                self.other_updates += 1
        elif method == "session/request_permission" and "id" in message:
            self.permissions += 1
            options = params.get("options") or []
            chosen = next((o for o in options if o.get("kind") == "allow_once"), None)
            outcome = (
                {"outcome": "selected", "optionId": chosen["optionId"]}
                if chosen
                else {"outcome": "cancelled"}
            )
            self._write({"jsonrpc": "2.0", "id": message["id"], "result": {"outcome": outcome}})
        elif "id" in message:  # fs/*, terminal/*: not offered in our capabilities
            self._write(
                {
                    "jsonrpc": "2.0",
                    "id": message["id"],
                    "error": {"code": -32601, "message": f"not supported: {method}"},
                }
            )

    def _write(self, message: dict[str, Any]) -> None:
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write(json.dumps(message).encode() + b"\n")

    async def request(self, method: str, params: Any, within: float = 120.0) -> tuple[float, Any]:
        """Send a request; returns (the response's arrival stamp, its result)."""
        msg_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = future
        self._write({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params})
        return await asyncio.wait_for(future, within)  # type: ignore[no-any-return]

    async def initialize(self) -> Any:
        _, result = await self.request(
            "initialize",
            {
                "protocolVersion": 1,
                "clientCapabilities": {
                    "fs": {"readTextFile": False, "writeTextFile": False},
                    "terminal": False,
                },
                "clientInfo": {"name": "dave-bench", "version": "0"},
            },
            60,
        )
        return result

    async def new_session(self, cwd: Path) -> str:
        _, result = await self.request("session/new", {"cwd": str(cwd), "mcpServers": []})
        return str(result["sessionId"])

    async def prompt(self, session_id: str, text: str, within: float = 120.0) -> Prompt:
        prompt = Prompt(session_id, time.perf_counter())
        self._prompts[session_id] = prompt
        try:
            params = {"sessionId": session_id, "prompt": [{"type": "text", "text": text}]}
            prompt.answered, prompt.result = await self.request("session/prompt", params, within)
        finally:
            self._prompts.pop(session_id, None)
        return prompt

    async def close_session(self, session_id: str) -> None:
        with contextlib.suppress(AcpRpcError, TimeoutError):
            await self.request("session/close", {"sessionId": session_id}, 30)

    async def stop(self, within: float = 15.0) -> None:
        """Close stdin (how an editor ends an agent), wait; then TERM, then KILL."""
        process = self.process
        if process is None:
            return
        if process.returncode is None:
            with contextlib.suppress(Exception):
                assert process.stdin is not None
                process.stdin.close()
            try:
                await asyncio.wait_for(process.wait(), within)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.terminate()
                try:
                    await asyncio.wait_for(process.wait(), 5)
                except TimeoutError:
                    process.kill()
                    await process.wait()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader
