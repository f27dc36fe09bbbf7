"""A lean LSP client over stdio for timing dave-lsp the way an editor sees it.

It frames JSON-RPC itself (no pygls on the client side, so the client adds as little
as possible to what is measured) and stamps every incoming message with
`time.perf_counter()` as soon as it is parsed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import IO, Any

DAVE_CMD = [sys.executable, "-m", "dave_lsp"]


class RpcError(Exception):
    """An error response: code, message and data as the server sent them."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(f"{error.get('code')}: {error.get('message')}")
        self.code = error.get("code")
        self.data = error.get("data")


class Query:
    """One dave/query in flight: its reports with arrival times, and its response."""

    def __init__(self, token: str, sent: float) -> None:
        self.token = token
        self.sent = sent
        self.reports: list[tuple[float, dict[str, Any]]] = []
        self.first_token = asyncio.get_running_loop().create_future()
        self.response: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.answered = 0.0

    @property
    def token_reports(self) -> list[tuple[float, dict[str, Any]]]:
        return [(t, v) for t, v in self.reports if v.get("type") == "token"]

    @property
    def text(self) -> str:
        return "".join(v["text"] for _, v in self.token_reports)

    @property
    def ttft(self) -> float:
        """Seconds from sending the query to the first `token` report."""
        return self.first_token.result() - self.sent

    @property
    def last_token(self) -> float:
        reports = self.token_reports
        return reports[-1][0] - self.sent if reports else float("nan")

    @property
    def latency(self) -> float:
        """Seconds from sending the query to its response."""
        return self.answered - self.sent


class LspClient:
    """One server process and the messages it sends."""

    def __init__(self, command: list[str], stderr: IO[bytes] | int | None = None) -> None:
        self.command = command
        self.stderr = stderr
        self.process: asyncio.subprocess.Process | None = None
        self.started = 0.0
        self._ids = itertools.count(1)
        self._pending: dict[int | str, asyncio.Future[Any]] = {}
        self._queries: dict[str, Query] = {}
        self._reader: asyncio.Task[None] | None = None
        self.logs: list[tuple[int, str]] = []
        self.progress: dict[Any, list[dict[str, Any]]] = defaultdict(list)

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
            limit=1 << 24,
        )
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        stdout = self.process.stdout
        try:
            while True:
                length = 0
                while (line := await stdout.readline()) not in (b"\r\n", b"\n"):
                    if not line:
                        return
                    name, _, value = line.decode("ascii").partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                body = await stdout.readexactly(length)
                now = time.perf_counter()
                self._dispatch(json.loads(body), now)
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectionError("the server closed its stdout"))

    def _dispatch(self, message: dict[str, Any], now: float) -> None:
        method = message.get("method")
        if method is None:  # a response
            msg_id = message.get("id")
            future = self._pending.pop(msg_id, None) if msg_id is not None else None
            if future is not None and not future.done():
                if "error" in message:
                    future.set_exception(RpcError(message["error"]))
                else:
                    future.set_result(message.get("result"))
            query = self._queries.pop(str(message.get("id")), None)
            if query is not None:
                query.answered = now
            return
        if "id" in message:  # a request from the server: accept it
            self._write({"jsonrpc": "2.0", "id": message["id"], "result": None})
            return
        params = message.get("params") or {}
        if method == "$/progress":
            token, value = params.get("token"), params.get("value") or {}
            query = self._queries.get(str(token))
            if query is not None:
                query.reports.append((now, value))
                if value.get("type") == "token" and not query.first_token.done():
                    query.first_token.set_result(now)
            else:
                self.progress[token].append(value)
        elif method == "window/logMessage":
            self.logs.append((int(params.get("type", 0)), str(params.get("message", ""))))

    def _write(self, message: dict[str, Any]) -> None:
        assert self.process is not None and self.process.stdin is not None
        body = json.dumps(message).encode()
        self.process.stdin.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))

    def request(
        self, method: str, params: Any, msg_id: int | str | None = None
    ) -> asyncio.Future[Any]:
        rid = msg_id if msg_id is not None else next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        self._write({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
        return future

    def notify(self, method: str, params: Any = None) -> None:
        self._write({"jsonrpc": "2.0", "method": method, "params": params})

    async def initialize(self, options: dict[str, Any], root: str | None = None) -> Any:
        """initialize + initialized; returns the initialize result."""
        params = {
            "processId": os.getpid(),
            "rootUri": Path(root).as_uri() if root else None,
            "capabilities": {"window": {"workDoneProgress": True}},
            "initializationOptions": options,
        }
        result = await self.request("initialize", params)
        self.notify("initialized", {})
        return result

    def start_query(self, session_id: str, prompt: str, **extra: Any) -> Query:
        """Send dave/query with a fresh work-done token (the token is also the request id)."""
        token = f"q{next(self._ids)}"
        query = Query(token, time.perf_counter())
        self._queries[token] = query
        future = self.request(
            "dave/query",
            {"sessionId": session_id, "prompt": prompt, "workDoneToken": token, **extra},
            msg_id=token,
        )
        future.add_done_callback(lambda f: _chain(f, query.response))
        return query

    async def query(self, session_id: str, prompt: str, within: float = 120.0) -> Query:
        query = self.start_query(session_id, prompt)
        await asyncio.wait_for(asyncio.shield(query.response), within)
        return query

    async def delete(self, session_id: str) -> Any:
        return await asyncio.wait_for(
            self.request("dave/deleteSession", {"sessionId": session_id}), 30
        )

    async def stop(self, within: float = 15.0) -> None:
        """shutdown, exit, close stdin and wait; kill the process if it lingers."""
        process = self.process
        if process is None:
            return
        if process.returncode is None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.request("shutdown", None), within)
            with contextlib.suppress(Exception):
                self.notify("exit")
                assert process.stdin is not None
                process.stdin.close()
            try:
                await asyncio.wait_for(process.wait(), within)
            except TimeoutError:
                process.kill()
                await process.wait()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader


def _chain(source: asyncio.Future[Any], target: asyncio.Future[Any]) -> None:
    if target.done():
        return
    if source.cancelled():
        target.cancel()
    elif (exc := source.exception()) is not None:
        target.set_exception(exc)
    else:
        target.set_result(source.result())
