"""What the bench's LSP and ACP clients share: one child process spoken to in JSON-RPC.

The two protocols differ only in framing (LSP's Content-Length headers, ACP's one
message a line) and in what their notifications mean, so a subclass gives `_frame`,
`_next_body` and `_dispatch`; starting, stamping arrivals, matching responses to
requests and stopping the process live here once.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import time
from typing import IO, Any


class RpcError(Exception):
    """An error response: code, message and data as the peer sent them."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(f"{error.get('code')}: {error.get('message')}")
        self.code = error.get("code")
        self.data = error.get("data")


class RpcPeer:
    """One child process over stdio; every incoming message stamped with
    `time.perf_counter()` as soon as it is parsed."""

    # How much one message may hold (a 20,000-token stream's lines are long).
    read_limit = 64 << 20

    def __init__(self, command: list[str], stderr: IO[bytes] | int | None = None) -> None:
        self.command = command
        self.stderr = stderr
        self.process: asyncio.subprocess.Process | None = None
        self.started = 0.0
        self._ids = itertools.count(1)
        self._pending: dict[int | str, asyncio.Future[Any]] = {}
        self._reader: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self, env: dict[str, str] | None = None) -> None:
        self.started = time.perf_counter()
        self.process = await asyncio.create_subprocess_exec(
            *self.command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=self.stderr,
            env={**os.environ, **(env or {})},
            limit=self.read_limit,
        )
        self._reader = asyncio.create_task(self._read())

    # -- framing and meaning: the subclass's part

    def _frame(self, body: bytes) -> bytes:
        raise NotImplementedError

    async def _next_body(self, stdout: asyncio.StreamReader) -> bytes | None:
        """The next message's bytes; None at the end of the stream."""
        raise NotImplementedError

    def _dispatch(self, message: dict[str, Any], now: float) -> None:
        """A request or notification from the peer (responses are matched here)."""
        raise NotImplementedError

    def _answered(self, message: dict[str, Any], now: float) -> None:
        """A response arrived (after its future is resolved): for subclasses' timings."""

    # -- shared

    async def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        stdout = self.process.stdout
        try:
            while (body := await self._next_body(stdout)) is not None:
                now = time.perf_counter()
                try:
                    message = json.loads(body)
                except ValueError:
                    continue
                if message.get("method") is None:
                    self._resolve(message, now)
                else:
                    self._dispatch(message, now)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectionError("the peer closed its stdout"))

    def _resolve(self, message: dict[str, Any], now: float) -> None:
        msg_id = message.get("id")
        future = self._pending.pop(msg_id, None) if msg_id is not None else None
        if future is not None and not future.done():
            if "error" in message:
                future.set_exception(RpcError(message["error"]))
            else:
                future.set_result((now, message.get("result")))
        self._answered(message, now)

    def _write(self, message: dict[str, Any]) -> None:
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write(self._frame(json.dumps(message).encode()))

    def send(
        self, method: str, params: Any, msg_id: int | str | None = None
    ) -> asyncio.Future[Any]:
        """Send a request; the future gets (the response's arrival stamp, its result)."""
        rid = msg_id if msg_id is not None else next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        self._write({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
        return future

    def reply(self, msg_id: Any, result: Any = None, error: dict[str, Any] | None = None) -> None:
        answer = {"error": error} if error is not None else {"result": result}
        self._write({"jsonrpc": "2.0", "id": msg_id, **answer})

    def notify(self, method: str, params: Any = None) -> None:
        self._write({"jsonrpc": "2.0", "method": method, "params": params})

    async def _end(self, within: float, close_first: bool = True) -> None:
        """Close stdin and wait for the process; then TERM, then KILL."""
        process = self.process
        if process is None:
            return
        if process.returncode is None:
            if close_first:
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
