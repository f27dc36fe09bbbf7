"""One loopback HTTP/1.1 server that fakes both the Anthropic and the OpenAI API.

It runs its own asyncio loop in a daemon thread, so synchronous tests, async tests
and the demo can all share it. Streams use chunked transfer encoding, so one
keep-alive connection serves many requests, as the Claude Code CLI expects.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Literal

from dave_lsp.testing import fake_anthropic, fake_openai
from dave_lsp.testing.scripts import plan_for

MESSAGE_PATHS = ("/v1/messages", "/v1/chat/completions")


@dataclass(frozen=True)
class RecordedRequest:
    path: str  # without the query string
    api: Literal["anthropic", "openai"]
    body: dict[str, Any]
    prompt: str  # the prompt the script ran on ("" for requests that are not messages)
    headers: dict[str, str]  # lower-case names
    method: str = "POST"


def _head(status: int, headers: dict[str, Any]) -> bytes:
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:  # a status that `error NNN` made up
        reason = "Error"
    lines = [f"HTTP/1.1 {status} {reason}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _json_response(status: int, obj: dict[str, Any], keep_alive: bool) -> bytes:
    data = json.dumps(obj).encode()
    connection = "keep-alive" if keep_alive else "close"
    headers = {"content-type": "application/json", "content-length": len(data)}
    return _head(status, {**headers, "connection": connection}) + data


# Chunked, so the connection stays usable after the stream ends.
_STREAM_HEAD = _head(
    200,
    {
        "content-type": "text/event-stream",
        "cache-control": "no-cache",
        "transfer-encoding": "chunked",
    },
)


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str], bytes]:
    """method, target, headers, body; IncompleteReadError when the client has gone."""
    line = await reader.readline()
    if not line.strip():
        raise asyncio.IncompleteReadError(line, None)
    method, target, _version = line.decode("latin-1").split(" ", 2)
    headers: dict[str, str] = {}
    while (header := await reader.readline()).strip():
        name, _, value = header.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while size := int((await reader.readline()).split(b";")[0], 16):
            body += await reader.readexactly(size)
            await reader.readexactly(2)
        while (await reader.readline()).strip():
            pass  # trailers
    else:
        body = await reader.readexactly(int(headers.get("content-length") or 0))
    return method, target, headers, body


class FakeModelServer:
    """A scripted model on 127.0.0.1 (see scripts.py for the commands)."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1") -> None:
        self.host, self.port = host, port
        self._requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._error: BaseException | None = None
        self.active_streams = 0  # streamed responses in progress: tests check disconnects end them

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def requests_containing(self, marker: str) -> list[RecordedRequest]:
        return [
            r
            for r in self.requests
            if r.path in MESSAGE_PATHS and marker in json.dumps(r.body, ensure_ascii=False)
        ]

    def start(self) -> None:
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="fake-model", daemon=True
        )
        self._thread.start()
        ready.wait()
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)

    def __enter__(self) -> FakeModelServer:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _run(self, ready: threading.Event) -> None:
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            server = loop.run_until_complete(
                asyncio.start_server(self._serve, self.host, self.port)
            )
        except BaseException as exc:  # e.g. port in use: start() re-raises it in the caller
            self._error = exc
            loop.close()
            ready.set()
            return
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        try:
            loop.run_forever()
        finally:
            server.close()
            for task in self._tasks:
                task.cancel()  # hanging and slow streams end here, closing their sockets
            loop.run_until_complete(asyncio.gather(*self._tasks, return_exceptions=True))
            loop.run_until_complete(asyncio.sleep(0))  # let the closed transports finish
            loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while await self._answer(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, ValueError, asyncio.CancelledError):
            pass  # client gone, garbage on the wire, or server stopping: just close
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Serve one request; False when the connection must close afterwards."""
        method, target, headers, raw = await _read_request(reader)
        path = target.split("?", 1)[0].rstrip("/")
        api: Literal["anthropic", "openai"] = (
            "openai" if path in ("/v1/chat/completions", "/v1/models") else "anthropic"
        )
        wire = fake_openai if api == "openai" else fake_anthropic
        keep = headers.get("connection", "").lower() != "close"
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError:
            body = None
        body = body if isinstance(body, dict) else None  # None: answered with a 400
        plan = plan_for(body.get("messages") or []) if body is not None else None
        if plan is not None and body is not None and api == "openai":
            plan = fake_openai.for_request(plan, body)
        prompt = plan.prompt if plan else ""
        record = RecordedRequest(path, api, body or {}, prompt, headers, method)
        with self._lock:
            self._requests.append(record)
        input_tokens = max(1, len(raw) // 4)  # rough, but grows with the conversation

        async def send_json(status: int, obj: dict[str, Any]) -> bool:
            writer.write(_json_response(status, obj, keep))
            await writer.drain()
            return keep

        if method == "GET" and path == "/v1/models":
            return await send_json(200, fake_openai.models())
        if method != "POST" or path not in (*MESSAGE_PATHS, "/v1/messages/count_tokens"):
            return await send_json(
                404, fake_anthropic.error_body(404, f"not found: {method} {path}")
            )
        if plan is None or body is None:
            return await send_json(400, wire.error_body(400, "request body must be a JSON object"))
        if path == "/v1/messages/count_tokens":
            return await send_json(200, {"input_tokens": input_tokens})
        if plan.error:
            return await send_json(plan.error[0], wire.error_body(*plan.error))
        if body.get("stream"):
            return (
                await self._stream(
                    reader, writer, wire.stream(plan, body, input_tokens), plan.ending
                )
                and keep
            )
        if plan.ending == "drop":
            return False
        if plan.ending == "hang":
            await reader.read()  # until the client goes away
            return False
        return await send_json(200, wire.complete(plan, body, input_tokens))

    async def _stream(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        items: Iterator[bytes | float],
        ending: str,
    ) -> bool:
        writer.write(_STREAM_HEAD)
        buffer = bytearray()

        async def flush() -> None:
            if buffer:
                writer.write(b"%x\r\n%s\r\n" % (len(buffer), bytes(buffer)))
                buffer.clear()
            await writer.drain()

        self.active_streams += 1
        try:
            for item in items:
                if isinstance(item, float):
                    await flush()
                    # Pause in short slices, watching for the client's FIN, so a cancelled
                    # slow stream ends within 50 ms rather than at its next failed write.
                    # (Reading to detect it would eat a pipelined request.)
                    deadline = time.monotonic() + item
                    while (left := deadline - time.monotonic()) > 0:
                        if reader.at_eof():
                            raise ConnectionResetError("client went away")
                        await asyncio.sleep(min(left, 0.05))
                else:
                    buffer += item
                    if len(buffer) >= 1 << 16:
                        await flush()
            await flush()
            if ending == "stop":
                writer.write(b"0\r\n\r\n")
                await writer.drain()
                return True
            if ending == "hang":
                await reader.read()  # nothing more to say until the client goes away
            return False  # drop: close without the final chunk, an abrupt end for the client
        finally:
            self.active_streams -= 1
