"""Newline-delimited JSON-RPC 2.0, both directions, for ACP over stdio.

One JSON object per line. Requests from the client run as tasks of their own (a
`session/prompt` lasts a whole turn while `session/cancel` and permission answers
keep arriving); notifications run in arrival order; responses to the agent's own
requests (`session/request_permission`) resolve their futures. A client's mistake
(bad JSON, an unknown method, params that do not fit) costs that message an error
response, never the server: a line that cannot be read for any reason (not JSON, not
UTF-8, nested too deeply, too large for memory, longer than `MAX_LINE`) is answered
-32700 with id null, and an id that is not a string or number -32600. An over-long
line is discarded up to its newline as it arrives, so reading it holds at most
`MAX_LINE` bytes.

`$/cancel_request {requestId}` (either side may send it) is the transport's own: a
pending request's handler that said how it ends early (`when_cancelled`, as
`session/prompt` does) is told so and answers as it will; any other pending request
is cancelled and answered -32800 (RequestCancelled). A finished or unknown id is
ignored, as the spec asks. The other way round, a request of the agent's that it stops
waiting for (its awaiting task cancelled, or `cancel_open` when a turn is cancelled)
is cancelled at the client with `$/cancel_request {requestId}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import itertools
import json
import logging
import os
import stat
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import Any, BinaryIO

from dave_lsp.acp.outgoing import CancelRequestNotification, unstructure
from dave_lsp.logs import redact
from dave_lsp.rpc import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    REQUEST_CANCELLED,
    ParamsError,
)

log = logging.getLogger(__name__)

# A line longer than this is dropped (an image prompt is a few MB of base64).
MAX_LINE = 64 << 20
# Input is read in pieces of at most this much, so a line is only held up to MAX_LINE.
_PIECE = 1 << 20

RequestHandler = Callable[[Any], Awaitable[Any]]
NotificationHandler = Callable[[Any], Awaitable[None] | None]

CANCEL_REQUEST = "$/cancel_request"
# The id of the client's request whose handler runs in this task (each request runs
# in a task of its own, with a copy of the context).
_request_id: contextvars.ContextVar[str | int | None] = contextvars.ContextVar(
    "acp request id", default=None
)


class RpcError(Exception):
    """An error response: `code`, a one-line `message`, optional `data`."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.data = data


def one_line(text: str) -> str:
    return " ".join(redact(text).split())


class DroppedLine(bytes):
    """Stands for an input line longer than MAX_LINE, discarded unread."""


class _Lines:
    """Pieces of input (each ends with a newline, or does not) as whole lines; a line
    growing past `limit` is dropped as it grows, and becomes one DroppedLine."""

    def __init__(self, limit: int = MAX_LINE) -> None:
        self._limit = limit
        self._parts = bytearray()
        self._dropping = False

    def add(self, piece: bytes) -> bytes | None:
        """The line `piece` completes (or a DroppedLine), else None."""
        if not self._dropping:
            self._parts += piece
            if len(self._parts) > self._limit + 2:  # its "\r\n" aside
                self._parts = bytearray()  # a new one: clear() keeps the allocation
                self._dropping = True
        if not piece.endswith(b"\n"):
            return None
        return self.end()

    def end(self) -> bytes | None:
        """The line so far, at a newline or the end of input."""
        if self._dropping:
            self._dropping = False
            return DroppedLine()
        line, self._parts = bytes(self._parts), bytearray()
        return line or None


class Connection:
    """One ACP peer over a byte stream pair."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._requests: dict[str, RequestHandler] = {}
        self._notifications: dict[str, NotificationHandler] = {}
        self._pending: dict[int, asyncio.Future[Any]] = {}
        # Our pending requests' method and sessionId, for `cancel_open`.
        self._asked: dict[int, tuple[str, Any]] = {}
        self._given_up: set[int] = set()  # ids we sent $/cancel_request for, unanswered
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        # The client's pending requests by id: their tasks, and how those that end
        # early themselves are told of a `$/cancel_request`.
        self._running: dict[str | int, asyncio.Task[None]] = {}
        self._on_cancel: dict[str | int, Callable[[], object]] = {}
        self._cancelled: set[str | int] = set()  # the ids of those the client cancelled
        self.gone = False
        self._closed = False  # the input ended: nothing more will be answered

    def on_request(self, method: str, handler: RequestHandler) -> None:
        self._requests[method] = handler

    def on_notification(self, method: str, handler: NotificationHandler) -> None:
        self._notifications[method] = handler

    def when_cancelled(self, callback: Callable[[], object]) -> None:
        """Within a request's handler: on `$/cancel_request` of this request, call
        `callback` (on the reader: it must not block) instead of cancelling the handler;
        the handler then ends and answers as it will."""
        msg_id = _request_id.get()
        if msg_id is not None and msg_id in self._running:
            self._on_cancel[msg_id] = callback

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
        """`params`: a message of acp/outgoing.py (or a plain JSON value)."""
        self._write({"jsonrpc": "2.0", "method": method, "params": unstructure(params)})

    async def request(self, method: str, params: Any) -> Any:
        """Send a request to the client and wait for its result (RpcError on its error).
        `params`: a message of acp/outgoing.py (or a plain JSON value)."""
        params = unstructure(params)
        msg_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = future
        session_id = params.get("sessionId") if isinstance(params, dict) else None
        self._asked[msg_id] = (method, session_id)
        try:
            self._write({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params})
            if self.gone or self._closed:
                raise RpcError(INTERNAL_ERROR, "the client has gone")
            return await future
        except asyncio.CancelledError:
            # Given up (a timeout, a cancelled tool): tell the client. (Cancelling the
            # task cancels the future it awaits, so a cancelled one is unanswered.)
            if future.cancelled() or not future.done():
                self._give_up(msg_id)
            raise
        finally:
            self._pending.pop(msg_id, None)
            self._asked.pop(msg_id, None)

    def cancel_open(self, session_id: str, methods: frozenset[str]) -> int:
        """Stop waiting for the session's open requests of these methods: each is
        cancelled at the client (`$/cancel_request`) and fails here with -32800 at once.
        How many there were."""
        found = 0
        for msg_id, (method, asked_for) in list(self._asked.items()):
            future = self._pending.get(msg_id)
            if asked_for != session_id or method not in methods or future is None:
                continue
            if not future.done():
                found += 1
                self._give_up(msg_id)
                future.set_exception(RpcError(REQUEST_CANCELLED, f"{method}: cancelled"))
        return found

    def _give_up(self, msg_id: int) -> None:
        self._given_up.add(msg_id)
        self.notify(CANCEL_REQUEST, CancelRequestNotification(msg_id))

    def _respond(self, msg_id: Any, result: Any = None, error: RpcError | None = None) -> None:
        if error is None:
            self._write({"jsonrpc": "2.0", "id": msg_id, "result": unstructure(result)})
            return
        body: dict[str, Any] = {"code": error.code, "message": one_line(str(error))}
        if error.data is not None:
            body["data"] = error.data
        self._write({"jsonrpc": "2.0", "id": msg_id, "error": body})

    # -- receiving -------------------------------------------------------------------

    async def receive(self, line: bytes) -> None:
        """Handle one line from the client."""
        if isinstance(line, DroppedLine):
            self._respond(
                None,
                error=RpcError(
                    PARSE_ERROR,
                    f"a message longer than {MAX_LINE >> 20} MiB was dropped: "
                    "send large content (images) smaller or by reference",
                ),
            )
            return
        if not line.strip():
            return
        try:
            message = json.loads(line)
        except (ValueError, UnicodeDecodeError) as exc:
            self._respond(None, error=RpcError(PARSE_ERROR, f"not JSON: {exc}"))
            return
        except RecursionError:
            self._respond(None, error=RpcError(PARSE_ERROR, "not read: JSON nested too deeply"))
            return
        except MemoryError:
            self._respond(None, error=RpcError(PARSE_ERROR, "not read: too large for memory"))
            return
        if not isinstance(message, dict):
            self._respond(None, error=RpcError(INVALID_REQUEST, "expected a JSON object"))
            return
        method = message.get("method")
        msg_id = message.get("id")
        if msg_id is not None and (isinstance(msg_id, bool) or not isinstance(msg_id, str | int)):
            # Never echoed: an id must be a string or a number (JSON-RPC 2.0).
            self._respond(None, error=RpcError(INVALID_REQUEST, "id must be a string or number"))
            return
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
            self._running[msg_id] = task
            task.add_done_callback(self._tasks.discard)

    def _resolve(self, msg_id: Any, message: dict[str, Any]) -> None:
        future = self._pending.get(msg_id) if isinstance(msg_id, int) else None
        if future is None and msg_id in self._given_up:
            self._given_up.discard(msg_id)  # the answer to a request we cancelled: late
            return
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
        _request_id.set(msg_id)
        try:
            await self._handle(msg_id, method, params)
        finally:
            if self._running.get(msg_id) is asyncio.current_task():
                del self._running[msg_id]
                self._on_cancel.pop(msg_id, None)
                self._cancelled.discard(msg_id)

    async def _handle(self, msg_id: Any, method: str, params: Any) -> None:
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
            if msg_id in self._cancelled:  # the client's $/cancel_request: answered, done
                self._respond(
                    msg_id, error=RpcError(REQUEST_CANCELLED, f"{method}: cancelled by the client")
                )
                return
            self._respond(msg_id, error=RpcError(INTERNAL_ERROR, "the server is shutting down"))
            raise
        except Exception as exc:  # a bug answers this request, and the server goes on
            log.exception("%s failed", method)
            self._respond(
                msg_id, error=RpcError(INTERNAL_ERROR, f"{method}: internal error: {exc}")
            )
        else:
            self._respond(msg_id, result if result is not None else {})

    def _cancel_request(self, params: Any) -> None:
        """`$/cancel_request`: end the pending request it names (see the module's doc)."""
        msg_id = params.get("requestId") if isinstance(params, dict) else None
        if isinstance(msg_id, bool) or not isinstance(msg_id, str | int):
            log.warning("%s without a requestId was ignored", CANCEL_REQUEST)
            return
        task = self._running.get(msg_id)
        if task is None or task.done() or msg_id in self._cancelled:
            return  # finished (the spec: ignore it), or ending already
        self._cancelled.add(msg_id)
        callback = self._on_cancel.get(msg_id)
        if callback is None:
            task.cancel()
            return
        try:
            callback()
        except Exception:  # a bug: the request runs on to its end
            log.exception("cancelling request %r failed", msg_id)

    async def _notification(self, method: str, params: Any) -> None:
        if method == CANCEL_REQUEST:
            self._cancel_request(params)
            return
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
        """Fail every request waiting on the client, and any made from now on (a
        terminal's kill and release as its tool call ends); cancel running handlers."""
        self._closed = True
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
    lines = _Lines()
    stream = await _loop_reader(out_fd)
    if stream is not None:
        while True:
            piece = await _read_piece(stream)
            line = lines.add(piece) if piece else lines.end()
            if line is not None:
                await _deliver(on_line, line)
            if not piece:
                return
    # The thread hands over whole lines; a line's pieces stay in the thread.
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=4)
    loop = asyncio.get_running_loop()

    def put(line: bytes | None) -> None:
        asyncio.run_coroutine_threadsafe(queue.put(line), loop).result()

    def pump() -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody reads on
            while piece := sys.stdin.buffer.readline(_PIECE):
                if (line := lines.add(piece)) is not None:
                    put(line)
            if (line := lines.end()) is not None:
                put(line)
            put(None)

    threading.Thread(target=pump, name="acp stdin", daemon=True).start()
    while (line := await queue.get()) is not None:
        await _deliver(on_line, line)


async def _read_piece(stream: asyncio.StreamReader) -> bytes:
    """Up to and including the next newline, or at most about `_PIECE` bytes of a line
    (the stream's limit); b"" at the end of input."""
    try:
        return await stream.readuntil(b"\n")
    except asyncio.IncompleteReadError as exc:
        return exc.partial
    except asyncio.LimitOverrunError as exc:
        # No newline within the limit: take what is buffered, the line goes on.
        return await stream.readexactly(exc.consumed)


async def _deliver(on_line: Callable[[bytes], Awaitable[None]], line: bytes) -> None:
    if isinstance(line, DroppedLine):
        log.warning("dropped an input line longer than %d bytes", MAX_LINE)
    try:
        await on_line(line)
    except Exception:  # a bug costs that line, never the connection
        log.exception("an input line could not be handled")


async def _loop_reader(out_fd: int) -> asyncio.StreamReader | None:
    with contextlib.suppress(OSError, ValueError):
        stdin, out = os.fstat(sys.stdin.fileno()), os.fstat(out_fd)
        own = stat.S_ISFIFO(stdin.st_mode) or stat.S_ISSOCK(stdin.st_mode)
        if not own or (stdin.st_dev, stdin.st_ino) == (out.st_dev, out.st_ino):
            return None
        stream = asyncio.StreamReader(limit=_PIECE)
        await asyncio.get_running_loop().connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(stream), sys.stdin.buffer
        )
        return stream
    return None
