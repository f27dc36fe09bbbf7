"""A lean ACP client over stdio, the same for dave-lsp's agent and the reference agent.

Newline-delimited JSON-RPC 2.0: `initialize`, `session/new`, `session/prompt`, and an
answer (the first `allow_once` option) to every `session/request_permission`; with
`fs`, it offers the client's file system (as Zed and codecompanion do) and serves
`fs/read_text_file` and `fs/write_text_file` from the disk. Every
incoming message is stamped with `time.perf_counter()` as soon as it is parsed, and a
prompt keeps the `session/update` notifications of its session that arrive between
its request and its response.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import IO, Any

from bench.rpcpeer import RpcError, RpcPeer


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


class AcpClient(RpcPeer):
    """One agent process and what it sends."""

    def __init__(
        self, command: list[str], stderr: IO[bytes] | int | None = None, fs: bool = False
    ) -> None:
        super().__init__(command, stderr)
        self.fs = fs
        self._prompts: dict[str, Prompt] = {}  # session id -> the prompt running in it
        self.permissions = 0
        self.other_updates = 0  # session/update outside any prompt (commands lists, ...)

    def _frame(self, body: bytes) -> bytes:
        return body + b"\n"

    async def _next_body(self, stdout: asyncio.StreamReader) -> bytes | None:
        return await stdout.readline() or None

    def _dispatch(self, message: dict[str, Any], now: float) -> None:
        method = message.get("method")
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
            self.reply(message["id"], {"outcome": outcome})
        elif method in ("fs/read_text_file", "fs/write_text_file") and self.fs and "id" in message:
            self._file(message["id"], method, params)
        elif "id" in message:  # terminal/* (and fs/* without `fs`): not offered
            self.reply(message["id"], error={"code": -32601, "message": f"not supported: {method}"})

    def _file(self, msg_id: Any, method: str, params: dict[str, Any]) -> None:
        """The editor's file system, as the disk has it (the bench edits no buffer)."""
        path = Path(str(params.get("path")))
        try:
            if method == "fs/write_text_file":
                path.write_text(str(params.get("content", "")))
                self.reply(msg_id, {})
                return
            lines = path.read_text().splitlines(keepends=True)
        except OSError as exc:
            self.reply(msg_id, error={"code": -32002, "message": f"{path}: {exc.strerror}"})
            return
        start = max(int(params.get("line") or 1) - 1, 0)
        limit = params.get("limit")
        chosen = lines[start:] if limit is None else lines[start : start + int(limit)]
        self.reply(msg_id, {"content": "".join(chosen)})

    async def request(self, method: str, params: Any, within: float = 120.0) -> tuple[float, Any]:
        """Send a request; returns (the response's arrival stamp, its result)."""
        return await asyncio.wait_for(self.send(method, params), within)  # type: ignore[no-any-return]

    async def initialize(self) -> Any:
        _, result = await self.request(
            "initialize",
            {
                "protocolVersion": 1,
                "clientCapabilities": {
                    "fs": {"readTextFile": self.fs, "writeTextFile": self.fs},
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
        with contextlib.suppress(RpcError, TimeoutError):
            await self.request("session/close", {"sessionId": session_id}, 30)

    async def stop(self, within: float = 15.0) -> None:
        """Close stdin (how an editor ends an agent), wait; then TERM, then KILL."""
        await self._end(within)
