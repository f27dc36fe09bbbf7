"""A lean LSP client over stdio for timing dave-lsp the way an editor sees it.

It frames JSON-RPC itself (no pygls on the client side, so the client adds as little
as possible to what is measured) and stamps every incoming message with
`time.perf_counter()` as soon as it is parsed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from bench.rpcpeer import RpcError, RpcPeer

__all__ = ["DAVE_CMD", "LspClient", "Query", "RpcError"]

DAVE_CMD = [sys.executable, "-m", "dave_lsp"]


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


class LspClient(RpcPeer):
    """One server process and the messages it sends."""

    read_limit = 1 << 24

    def __init__(self, command: list[str], stderr: IO[bytes] | int | None = None) -> None:
        super().__init__(command, stderr)
        self._queries: dict[str, Query] = {}
        self.logs: list[tuple[int, str]] = []
        self.progress: dict[Any, list[dict[str, Any]]] = defaultdict(list)

    def _frame(self, body: bytes) -> bytes:
        return b"Content-Length: %d\r\n\r\n%s" % (len(body), body)

    async def _next_body(self, stdout: asyncio.StreamReader) -> bytes | None:
        length = 0
        while (line := await stdout.readline()) not in (b"\r\n", b"\n"):
            if not line:
                return None
            name, _, value = line.decode("ascii").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        return await stdout.readexactly(length)

    def _answered(self, message: dict[str, Any], now: float) -> None:
        query = self._queries.pop(str(message.get("id")), None)
        if query is not None:
            query.answered = now

    def _dispatch(self, message: dict[str, Any], now: float) -> None:
        method = message.get("method")
        if "id" in message:  # a request from the server: accept it
            self.reply(message["id"], None)
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

    def request(
        self, method: str, params: Any, msg_id: int | str | None = None
    ) -> asyncio.Future[Any]:
        """Send a request; the future gets its result."""
        result: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.send(method, params, msg_id).add_done_callback(
            lambda f: _chain(f, result, lambda stamped: stamped[1])
        )
        return result

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
        if process is not None and process.returncode is None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.request("shutdown", None), within)
            with contextlib.suppress(Exception):
                self.notify("exit")
        await self._end(within)


def _chain(
    source: asyncio.Future[Any],
    target: asyncio.Future[Any],
    take: Callable[[Any], Any] = lambda result: result,
) -> None:
    if target.done():
        return
    if source.cancelled():
        target.cancel()
    elif (exc := source.exception()) is not None:
        target.set_exception(exc)
    else:
        target.set_result(take(source.result()))
