"""The debugging transports, `--tcp` and `--ws`: one client, and only one that holds
the token.

A socket is reachable by more than the editor that started the server: any local
process, another user of the machine, and a web page (a `fetch` POST or a WebSocket to
127.0.0.1 needs no permission from anyone). So the server owns its accept loop instead
of pygls's `start_tcp`/`start_ws` (which hand every connection the protocol's writer,
and stop the server when any of them closes), and a connection proves itself before
the server sees a single message of it:

- its first message is `initialize` with `initializationOptions.token`, the random
  128-bit token the server wrote to a 0600 file at start (or `DAVE_LSP_TOKEN`); a
  WebSocket may instead present it on the upgrade request (`Authorization: Bearer`, or
  a `token` query parameter);
- an HTTP request on `--tcp`, a WebSocket whose `Origin` is not allowed (browsers
  always send one; none is allowed unless `--ws-allow-origin` names it), a wrong or
  missing token, or any other first message is closed with one line on stderr;
- while a client is connected, every other connection is refused; when it leaves, the
  server ends (as with stdio, where the editor's pipe is the lifetime).

The WebSocket side is the small part of RFC 6455 a JSON-RPC peer needs (text and
binary messages, fragments, ping, close), so `--ws` needs no extra package.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import struct
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from dave_lsp.fsio import write_atomic
from dave_lsp.logs import remember_secret
from dave_lsp.paths import default_state_dir
from dave_lsp.stdio import FrameReader, PipeReader, ProtocolWriter

log = logging.getLogger(__name__)

TOKEN_ENV = "DAVE_LSP_TOKEN"
MIN_TOKEN_CHARS = 16
# A client that connects sends initialize at once; a slow one is a stuck or idle peer.
FIRST_MESSAGE_SECONDS = 30.0
# The first message is checked before it is trusted: it may not be large.
MAX_FIRST_MESSAGE = 1 << 20
MAX_HEAD = 16 << 10
# A WebSocket message is buffered whole (attachments are base64 images: megabytes).
MAX_WS_MESSAGE = 64 << 20
HTTP_METHOD = re.compile(rb"^[A-Z]{3,7} ")
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455, section 1.3


class Refused(Exception):
    """Why a connection is closed before the server sees it: one line for stderr."""

    def __init__(self, reason: str, status: int = 403) -> None:
        super().__init__(reason)
        self.status = status  # for a WebSocket upgrade: the HTTP status of the refusal


class TokenError(Exception):
    """The token cannot be made or read: one line for stderr, and the server stops."""


def load_token() -> str | None:
    """The token from DAVE_LSP_TOKEN, or None when it is unset (a new one is made)."""
    token = os.environ.get(TOKEN_ENV)
    if not token:
        return None
    if len(token) < MIN_TOKEN_CHARS or not token.isascii() or not token.isprintable():
        raise TokenError(
            f"{TOKEN_ENV} must be at least {MIN_TOKEN_CHARS} printable ASCII characters "
            "(python3 -c 'import secrets; print(secrets.token_hex(16))' makes one)"
        )
    return token


def write_token_file(token: str, kind: str, port: int) -> Path:
    """Write `token` where only this user can read it: `<state>/sockets/<kind>-<port>.token`,
    mode 0600, replaced atomically (a link planted at the path is replaced, not followed)."""
    folder = default_state_dir() / "sockets"
    path = folder / f"{kind}-{port}.token"
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomic(path, token.encode() + b"\n", 0o600, prefix=".tmp-")
    except OSError as exc:
        raise TokenError(
            f"cannot write the token file {path}: {exc.strerror or exc}; set {TOKEN_ENV} instead"
        ) from None
    return path


def remove_token_file(path: Path, token: str) -> None:
    with contextlib.suppress(OSError):
        if path.read_text().strip() == token:
            path.unlink()


class Gate:
    """The token, the allowed origins, and the one client slot."""

    def __init__(self, token: str, origins: list[str]) -> None:
        self._token = token.encode()
        self.origins = frozenset(origins)
        self.taken = False
        # Where a client finds the token, for the line that refuses one without it.
        self.where = ""

    def check_token(self, presented: object) -> None:
        given = presented.encode("utf-8", "surrogatepass") if isinstance(presented, str) else b""
        if not hmac.compare_digest(given, self._token):
            what = "no token" if presented is None else "a wrong token"
            raise Refused(f"{what} (the token {self.where})", 401)

    def check_first(self, body: bytes, token_on_upgrade: bool) -> None:
        """Refused unless `body` is `initialize` carrying the token (or the WebSocket
        upgrade carried it, and the message carries none or the same)."""
        try:
            message = json.loads(body)
        except (ValueError, RecursionError):
            raise Refused("a first message that is not JSON") from None
        if not isinstance(message, dict) or message.get("method") != "initialize":
            raise Refused("a first message that is not initialize")
        params = message.get("params")
        options = params.get("initializationOptions") if isinstance(params, dict) else None
        presented = options.get("token") if isinstance(options, dict) else None
        if presented is None and token_on_upgrade:
            return
        self.check_token(presented)

    def claim(self) -> None:
        if self.taken:
            raise Refused("a client is already connected (one at a time)", 409)
        self.taken = True


def _say(peer: str, reason: str) -> None:
    print(f"dave-lsp: refused a connection from {peer}: {reason}", file=sys.stderr, flush=True)


def _peer(writer: asyncio.StreamWriter) -> str:
    address = writer.get_extra_info("peername")
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return "an unknown peer"


class _StreamOut:
    """A socket as ProtocolWriter's output: bytes as they are (tcp) or one WebSocket
    text message per frame (ws)."""

    def __init__(self, writer: asyncio.StreamWriter, ws: bool) -> None:
        self._writer = writer
        self._ws = ws

    def write(self, data: bytes) -> None:
        if self._writer.is_closing():
            raise BrokenPipeError("the client has gone")
        self._writer.write(ws_frame(0x1, data) if self._ws else data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self._writer.close()


# -- TCP ------------------------------------------------------------------------------


async def _first_frame(reader: asyncio.StreamReader) -> bytes:
    """The body of the first LSP frame, refusing anything else as soon as it shows."""
    # Every frame starts with a Content-Length or Content-Type header: eight bytes tell
    # an LSP client from a web page (or a TLS hello) without waiting for a line end.
    start = await reader.readexactly(len(b"content-"))
    if HTTP_METHOD.match(start):
        raise Refused("an HTTP request (a web page?) on the LSP socket")
    if start.lower() != b"content-":
        raise Refused("bytes that are not an LSP frame")
    line = start + await reader.readline()
    length: int | None = None
    for _ in range(8):
        if line in (b"\r\n", b"\n") and length is not None:
            return await reader.readexactly(length)
        name, sep, value = line.partition(b":")
        name = name.strip().lower()
        if not line.endswith(b"\n") or not sep or name not in (b"content-length", b"content-type"):
            raise Refused("bytes that are not an LSP frame")
        if name == b"content-length":
            if not value.strip().isdigit() or int(value) > MAX_FIRST_MESSAGE:
                raise Refused("a first frame without a sane Content-Length")
            length = int(value)
        line = await reader.readline()
    raise Refused("bytes that are not an LSP frame")


# -- WebSocket ------------------------------------------------------------------------


def ws_frame(opcode: int, payload: bytes) -> bytes:
    """One final, unmasked frame (a server never masks)."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return head + payload


def _unmask(payload: bytes, mask: bytes) -> bytes:
    # One big-integer XOR instead of a Python loop over every byte.
    n = len(payload)
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")


class WebSocket:
    """The server side of one WebSocket connection, after its upgrade."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def message(self, limit: int = MAX_WS_MESSAGE) -> bytes | None:
        """The next text or binary message; None when the peer closes or breaks the
        protocol (then the connection is closed)."""
        parts: list[bytes] = []
        size = 0
        while True:
            try:
                b0, b1 = await self._reader.readexactly(2)
                n = b1 & 0x7F
                if n == 126:
                    (n,) = struct.unpack("!H", await self._reader.readexactly(2))
                elif n == 127:
                    (n,) = struct.unpack("!Q", await self._reader.readexactly(8))
                fin, opcode = b0 & 0x80, b0 & 0x0F
                control = opcode >= 0x8
                if size + n > limit:
                    self.close(1009, "message too big")
                    return None
                # RFC 6455: clients mask every frame; no extension was agreed, so no RSV
                # bit is set; control frames are short and whole; a continuation frame
                # only continues a message, and a new message waits for the last one.
                if (
                    not b1 & 0x80
                    or b0 & 0x70
                    or opcode not in (0x0, 0x1, 0x2, 0x8, 0x9, 0xA)
                    or (control and (n > 125 or not fin))
                    or (not control and (opcode == 0x0) != bool(parts))
                ):
                    self.close(1002, "protocol error")
                    return None
                mask = await self._reader.readexactly(4)
                payload = _unmask(await self._reader.readexactly(n), mask)
            except (asyncio.IncompleteReadError, ConnectionError):
                return None
            if opcode == 0x8:
                self.close(1000)
                return None
            if opcode == 0x9:
                self._writer.write(ws_frame(0xA, payload))
                continue
            if opcode == 0xA:
                continue
            parts.append(payload)
            size += n
            if fin:
                return b"".join(parts)

    def close(self, code: int, reason: str = "") -> None:
        if not self._writer.is_closing():
            self._writer.write(ws_frame(0x8, struct.pack("!H", code) + reason.encode()[:120]))
            self._writer.close()


def _http_response(writer: asyncio.StreamWriter, status: int, text: str) -> None:
    phrases = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 409: "Conflict"}
    body = text.encode() + b"\n"
    writer.write(
        f"HTTP/1.1 {status} {phrases.get(status, 'Forbidden')}\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n".encode()
        + body
    )


async def _upgrade(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, gate: Gate
) -> tuple[WebSocket, bool]:
    """Check the upgrade request and answer it; (the socket, whether it carried the token)."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise Refused("an HTTP request head too large", 400) from None
    if len(head) > MAX_HEAD:
        raise Refused("an HTTP request head too large", 400)
    request_line, *lines = head.decode("latin-1").split("\r\n")
    method, _, rest = request_line.partition(" ")
    target = rest.rpartition(" ")[0]
    headers: dict[str, list[str]] = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if sep:
            headers.setdefault(name.strip().lower(), []).append(value.strip())
    for origin in headers.get("origin", []):
        if origin not in gate.origins:
            raise Refused(
                f"a WebSocket from origin {origin[:100]!r} (a web page?; "
                "--ws-allow-origin ORIGIN allows one)"
            )
    if method != "GET" or "websocket" not in ",".join(headers.get("upgrade", [])).lower():
        raise Refused("an HTTP request that is not a WebSocket upgrade", 400)
    key = headers.get("sec-websocket-key", [""])[-1]
    if headers.get("sec-websocket-version", [""])[-1] != "13" or len(key) != 24:
        raise Refused("a WebSocket upgrade without version 13 and a key", 400)
    presented: list[str] = []
    for value in headers.get("authorization", []):
        scheme, _, credential = value.partition(" ")
        if scheme.lower() == "bearer":
            presented.append(credential.strip())
    presented += parse_qs(urlsplit(target).query).get("token", [])
    for token in presented:
        gate.check_token(token)
    if gate.taken:
        raise Refused("a client is already connected (one at a time)", 409)
    accept = base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()
    writer.write(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept}\r\n\r\n".encode()
    )
    return WebSocket(reader, writer), bool(presented)


# -- Serving --------------------------------------------------------------------------


async def serve(kind: str, host: str, port: int, origins: list[str]) -> int:
    """Listen until the authenticated client leaves; the exit status."""
    from pygls.exceptions import JsonRpcException
    from pygls.io_ import run_async

    from dave_lsp.lsp.server import server

    try:
        env_token = load_token()
    except TokenError as exc:
        print(f"dave-lsp: {exc}", file=sys.stderr)
        return 2
    token = env_token or secrets.token_hex(16)  # 128 bits
    remember_secret(token)
    gate = Gate(token, origins)
    done: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def finish() -> None:
        if not done.done():
            done.set_result(0)

    async def tcp_messages(reader: asyncio.StreamReader) -> None:
        await run_async(
            stop_event=server.stop_event,
            reader=FrameReader(PipeReader(reader)),
            protocol=server.protocol,
            logger=logging.getLogger("pygls"),
            error_handler=server.report_server_error,
        )

    def handle(data: bytes) -> None:
        # As pygls's own loops do with each message.
        try:
            message = json.loads(data, object_hook=server.protocol.structure_message)
            server.protocol.handle_message(message)
        except Exception as exc:
            log.exception("Unable to handle message")
            server.report_server_error(exc, JsonRpcException)

    async def ws_messages(ws: WebSocket) -> None:
        while not server.stop_event.is_set():
            data = await ws.message()
            if data is None:
                return
            handle(data)

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # When the server ends (`exit`, a signal) its connections' tasks are cancelled;
        # asyncio's stream callback would log each one's CancelledError as an error.
        with contextlib.suppress(asyncio.CancelledError):
            await serve_connection(reader, writer)

    async def serve_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = _peer(writer)
        ws: WebSocket | None = None
        try:
            if gate.taken:
                raise Refused("a client is already connected (one at a time)", 409)
            async with asyncio.timeout(FIRST_MESSAGE_SECONDS):
                if kind == "ws":
                    ws, on_upgrade = await _upgrade(reader, writer, gate)
                    first = await ws.message(MAX_FIRST_MESSAGE)
                    if first is None:
                        raise Refused("a WebSocket closed before initialize")
                else:
                    on_upgrade, first = False, await _first_frame(reader)
            gate.check_first(first, on_upgrade)
            gate.claim()
        except Refused as exc:
            _say(peer, str(exc))
            if ws is not None:
                ws.close(1008, str(exc))
            elif kind == "ws":
                _http_response(writer, exc.status, f"dave-lsp refused: {exc}")
            writer.close()
            return
        except (TimeoutError, asyncio.IncompleteReadError, ValueError, ConnectionError) as exc:
            timeout = isinstance(exc, TimeoutError)
            _say(
                peer,
                f"no initialize within {FIRST_MESSAGE_SECONDS:.0f} s"
                if timeout
                else "it closed or broke off before initialize",
            )
            if ws is not None:
                ws.close(1008, "no initialize")
            writer.close()
            return
        log.info("client %s connected", peer)
        server.protocol.set_writer(
            ProtocolWriter(_StreamOut(writer, ws is not None), finish),
            include_headers=ws is None,
        )
        try:
            handle(first)
            await (ws_messages(ws) if ws is not None else tcp_messages(reader))
        except ConnectionError:
            log.info("client %s went away", peer)
        finally:
            writer.close()
            finish()

    try:
        listener = await asyncio.start_server(connection, host, port, limit=FrameReader.CHUNK)
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        print(f"dave-lsp: cannot listen on {host}:{port}: {reason}", file=sys.stderr)
        return 1
    bound = int(listener.sockets[0].getsockname()[1])
    print(f"dave-lsp listening on {kind}://{host}:{bound} (debugging transport)", file=sys.stderr)
    path: Path | None = None
    try:
        if env_token is None:
            path = write_token_file(token, kind, bound)
            gate.where = f"is in {path}"
        else:
            gate.where = f"is {TOKEN_ENV}'s value"
        print(
            f"dave-lsp: the client's token {gate.where}: send it as initializationOptions.token",
            file=sys.stderr,
            flush=True,
        )
        async with listener:
            return await done
    except TokenError as exc:
        print(f"dave-lsp: {exc}", file=sys.stderr)
        return 1
    finally:
        if path is not None:
            remove_token_file(path, token)
