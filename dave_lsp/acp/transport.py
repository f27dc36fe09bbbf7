"""Newline-delimited JSON-RPC 2.0, both directions, for ACP over stdio.

One JSON object per line. Requests from the client run as tasks of their own (a
`session/prompt` lasts a whole turn while `session/cancel` and permission answers
keep arriving); notifications run in arrival order; responses to the agent's own
requests (`session/request_permission`) resolve their futures. A client's mistake
(bad JSON, an unknown method, params that do not fit) costs that message an error
response, never the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import stat
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import Any, BinaryIO

from dave_lsp.logs import redact
from dave_lsp.protocol import ParamsError

log = logging.getLogger(__name__)

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
RESOURCE_NOT_FOUND = -32002
# A line longer than this is dropped (an image prompt is a few MB of base64).
MAX_LINE = 64 << 20

RequestHandler = Callable[[Any], Awaitable[Any]]
NotificationHandler = Callable[[Any], Awaitable[None] | None]


class RpcError(Exception):
    """An error response: `code`, a one-line `message`, optional `data`."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.data = data


def one_line(text: str) -> str:
    return " ".join(redact(text).split())


class Connection:
    """One ACP peer over a byte stream pair."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._requests: dict[str, RequestHandler] = {}
        self._notifications: dict[str, NotificationHandler] = {}
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self.gone = False

    def on_request(self, method: str, handler: RequestHandler) -> None:
        self._requests[method] = handler

    def on_notification(self, method: str, handler: NotificationHandler) -> None:
        self._notifications[method] = handler

    # -- sending ---------------------------------------------------------------------

    def _write(self, message: dict[str, Any]) -> None:
        if self.gone:
            return
        data = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
        try:
            self._out.write(data)
            self._out.flush()
        except (BrokenPipeError, ConnectionResetError, ValueError, OSError):
            self.gone = True

    def notify(self, method: str, params: Any) -> None:
        self._write({"jsonrpc": "2.0", "method": method, "params": params})

    async def request(self, method: str, params: Any) -> Any:
        """Send a request to the client and wait for its result (RpcError on its error)."""
        msg_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = future
        try:
            self._write({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params})
            if self.gone:
                raise RpcError(INTERNAL_ERROR, "the client has gone")
            return await future
        finally:
            self._pending.pop(msg_id, None)

    def _respond(self, msg_id: Any, result: Any = None, error: RpcError | None = None) -> None:
        if error is None:
            self._write({"jsonrpc": "2.0", "id": msg_id, "result": result})
            return
        body: dict[str, Any] = {"code": error.code, "message": one_line(str(error))}
        if error.data is not None:
            body["data"] = error.data
        self._write({"jsonrpc": "2.0", "id": msg_id, "error": body})

    # -- receiving -------------------------------------------------------------------

    async def receive(self, line: bytes) -> None:
        """Handle one line from the client."""
        if not line.strip():
            return
        try:
            message = json.loads(line)
        except (ValueError, UnicodeDecodeError) as exc:
            self._respond(None, error=RpcError(PARSE_ERROR, f"not JSON: {exc}"))
            return
        if not isinstance(message, dict):
            self._respond(None, error=RpcError(INVALID_REQUEST, "expected a JSON object"))
            return
        method = message.get("method")
        msg_id = message.get("id")
        if method is None and ("result" in message or "error" in message):
            self._resolve(msg_id, message)
            return
        if not isinstance(method, str):
            if msg_id is not None:
                self._respond(msg_id, error=RpcError(INVALID_REQUEST, "method must be a string"))
            return
        params = message.get("params")
        if msg_id is None:
            await self._notification(method, params)
        else:
            task = asyncio.create_task(self._request(msg_id, method, params), name=method)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _resolve(self, msg_id: Any, message: dict[str, Any]) -> None:
        future = self._pending.get(msg_id) if isinstance(msg_id, int) else None
        if future is None or future.done():
            log.warning("a response to no pending request (id %r) was ignored", msg_id)
            return
        error = message.get("error")
        if isinstance(error, dict):
            code = error.get("code")
            future.set_exception(
                RpcError(
                    code if isinstance(code, int) else INTERNAL_ERROR, str(error.get("message"))
                )
            )
        else:
            future.set_result(message.get("result"))

    async def _request(self, msg_id: Any, method: str, params: Any) -> None:
        handler = self._requests.get(method)
        if handler is None:
            self._respond(msg_id, error=RpcError(METHOD_NOT_FOUND, f"unknown method {method}"))
            return
        try:
            result = await handler(params)
        except RpcError as exc:
            self._respond(msg_id, error=exc)
        except ParamsError as exc:
            self._respond(msg_id, error=RpcError(INVALID_PARAMS, str(exc)))
        except asyncio.CancelledError:
            self._respond(msg_id, error=RpcError(INTERNAL_ERROR, "the server is shutting down"))
            raise
        except Exception as exc:  # a bug answers this request, and the server goes on
            log.exception("%s failed", method)
            self._respond(
                msg_id, error=RpcError(INTERNAL_ERROR, f"{method}: internal error: {exc}")
            )
        else:
            self._respond(msg_id, result if result is not None else {})

    async def _notification(self, method: str, params: Any) -> None:
        handler = self._notifications.get(method)
        if handler is None:
            log.info("ignoring the notification %s", method)
            return
        try:
            outcome = handler(params)
            if outcome is not None:
                await outcome
        except Exception:
            log.exception("the notification %s failed", method)

    def close(self) -> None:
        """Fail every request waiting on the client; cancel running handlers."""
        for future in self._pending.values():
            if not future.done():
                future.set_exception(RpcError(INTERNAL_ERROR, "the client has gone"))
        for task in list(self._tasks):
            task.cancel()


async def read_lines(on_line: Callable[[bytes], Awaitable[None]], out_fd: int) -> None:
    """Feed each line of stdin to `on_line` until end of input.

    stdin is read on the event loop when it is a pipe or socket of its own (how editors
    start agents); else (a terminal, or one socket shared with stdout) by a thread, since
    the loop would make a shared file non-blocking for our writes too.
    """
    stream = await _loop_reader(out_fd)
    if stream is not None:
        while True:
            try:
                line = await stream.readline()
            except ValueError:  # longer than MAX_LINE: dropped whole
                log.warning("dropped an input line longer than %d bytes", MAX_LINE)
                continue
            if not line:
                return
            await on_line(line)
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    loop = asyncio.get_running_loop()

    def pump() -> None:
        for line in sys.stdin.buffer:
            loop.call_soon_threadsafe(queue.put_nowait, line)
        loop.call_soon_threadsafe(queue.put_nowait, b"")

    threading.Thread(target=pump, name="acp stdin", daemon=True).start()
    while line := await queue.get():
        await on_line(line)


async def _loop_reader(out_fd: int) -> asyncio.StreamReader | None:
    with contextlib.suppress(OSError, ValueError):
        stdin, out = os.fstat(sys.stdin.fileno()), os.fstat(out_fd)
        own = stat.S_ISFIFO(stdin.st_mode) or stat.S_ISSOCK(stdin.st_mode)
        if not own or (stdin.st_dev, stdin.st_ino) == (out.st_dev, out.st_ino):
            return None
        stream = asyncio.StreamReader(limit=MAX_LINE)
        await asyncio.get_running_loop().connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(stream), sys.stdin.buffer
        )
        return stream
    return None
