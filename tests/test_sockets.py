"""The debugging transports (`--tcp`, `--ws`) hold against a web page and a second
client: the real server process on 127.0.0.1, the real CLI against the fake model.

A web page can reach a local port without asking anyone: a `fetch(url, {method:
"POST", mode: "no-cors"})` whose body is one JSON-RPC message, or a WebSocket (which
always carries the page's `Origin`). Only a client holding the token the server wrote
to a 0600 file gets in, one at a time.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness.processes import cli_processes
from tests.harness.raw import RawServer, frame

TOKEN_LINE = re.compile(r"the client's token is in (\S+): send it as initializationOptions\.token")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def listening(port: int) -> bool:
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and int(fields[1].partition(":")[2], 16) == port:
            return True
    return False


class Served:
    """`python -m dave_lsp --tcp|--ws PORT` as a user starts it for debugging."""

    def __init__(self, kind: str, *args: str, env: dict[str, str] | None = None) -> None:
        self.kind = kind
        self.port = free_port()
        self._stderr = tempfile.NamedTemporaryFile(prefix="dave-sock-stderr-", delete=False)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dave_lsp", f"--{kind}", str(self.port), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env={**os.environ, **(env or {})},
        )
        self.baseline = 0  # refusals the test has seen
        self.wait_stderr("listening on")
        # Ready when the port listens (a probe connection would be refused and counted).
        deadline = time.monotonic() + 15
        while not listening(self.port):
            assert time.monotonic() < deadline, self.stderr()
            time.sleep(0.05)

    def stderr(self) -> str:
        return Path(self._stderr.name).read_text(errors="replace")

    def wait_stderr(self, text: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while text not in (found := self.stderr()):
            assert time.monotonic() < deadline and self.proc.poll() is None, found
            time.sleep(0.05)
        return found

    def refusals(self) -> list[str]:
        return [line for line in self.stderr().splitlines() if "refused a connection" in line]

    def new_refusals(self, count: int, timeout: float = 15) -> list[str]:
        deadline = time.monotonic() + timeout
        while len(lines := self.refusals()[self.baseline :]) < count:
            assert time.monotonic() < deadline, self.stderr()
            time.sleep(0.05)
        self.baseline += count
        return lines

    def token_path(self) -> Path:
        found = TOKEN_LINE.search(self.wait_stderr("the client's token"))
        assert found, self.stderr()
        return Path(found.group(1))

    def token(self) -> str:
        return self.token_path().read_text().strip()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self._stderr.close()
        os.unlink(self._stderr.name)


@pytest.fixture
def served() -> Iterator[list[Served]]:
    started: list[Served] = []
    yield started
    for one in started:
        one.close()


def start(started: list[Served], kind: str, *args: str, **kw: Any) -> Served:
    one = Served(kind, *args, **kw)
    started.append(one)
    return one


def eof_without_a_byte(conn: socket.socket, timeout: float = 15) -> bool:
    """Whether the server closed `conn` without sending it anything."""
    conn.settimeout(timeout)
    try:
        return conn.recv(65536) == b""
    except ConnectionResetError:
        return True  # closed with our bytes unread: a reset, still nothing sent
    except TimeoutError:
        return False


class SocketClient(RawServer):
    """RawServer's strict frame parsing and requests, over a socket to a served server."""

    def __init__(self, port: int) -> None:
        self._attach(socket.create_connection(("127.0.0.1", port), timeout=30), b"", True)

    def _attach(self, conn: socket.socket, buffer: bytes, open_: bool) -> None:
        # RawServer's state, without its process and pipes.
        self.conn = conn
        self.messages: list[dict[str, Any]] = []
        self.garbage = b""
        self._buffer = buffer
        self._cond = threading.Condition()
        self._eof = not open_
        self._reader = threading.Thread(target=self._read, daemon=True)
        if open_:
            self._reader.start()

    def _chunk(self) -> bytes:
        try:
            return self.conn.recv(1 << 16)
        except OSError:
            return b""

    def _read(self) -> None:
        while True:
            chunk = self._chunk()
            with self._cond:
                if not chunk:
                    self._eof = True
                    self._cond.notify_all()
                    return
                self._buffer += chunk
                self._parse()
                self._cond.notify_all()

    def send_bytes(self, data: bytes) -> None:
        self.conn.sendall(data)

    def closed(self, timeout: float = 15) -> bool:
        if self._reader.is_alive():
            self._reader.join(timeout)
        return self._eof

    def close(self) -> None:
        # shutdown first: close() alone leaves the socket open while the reader thread
        # waits in recv, and the server would never see the client leave.
        with contextlib.suppress(OSError):
            self.conn.shutdown(socket.SHUT_RDWR)
        self.conn.close()
        if self._reader.is_alive():
            self._reader.join(5)


class WsClient(SocketClient):
    """A WebSocket client: the upgrade with the headers given, then masked text frames."""

    def __init__(self, port: int, headers: dict[str, str], target: str = "/") -> None:
        conn = socket.create_connection(("127.0.0.1", port), timeout=30)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {target} HTTP/1.1",
            f"Host: 127.0.0.1:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
            *(f"{name}: {value}" for name, value in headers.items()),
        ]
        conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = conn.recv(4096)
            if not chunk:
                break
            head += chunk
        self.status_line, _, rest = head.partition(b"\r\n")
        self.status = int(self.status_line.split()[1]) if self.status_line else 0
        self.body = rest.partition(b"\r\n\r\n")[2]
        if self.status == 101:  # RFC 6455's proof that the server read our key
            digest = hashlib.sha1(key.encode() + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()
            assert b"\r\nSec-WebSocket-Accept: %s\r\n" % base64.b64encode(digest) in head, head
        self.close_code: int | None = None
        self._attach(conn, self.body, self.status == 101)

    def _parse(self) -> None:
        while len(self._buffer) >= 2:
            b0, b1 = self._buffer[0], self._buffer[1] & 0x7F
            at = 2
            if b1 == 126:
                (b1,) = struct.unpack("!H", self._buffer[2:4])
                at = 4
            elif b1 == 127:
                (b1,) = struct.unpack("!Q", self._buffer[2:10])
                at = 10
            if len(self._buffer) < at + b1:
                return
            payload, self._buffer = self._buffer[at : at + b1], self._buffer[at + b1 :]
            if b0 & 0x0F == 0x8:
                self.close_code = struct.unpack("!H", payload[:2])[0] if payload else 1005
            elif b0 & 0x0F in (0x1, 0x2):
                self.messages.append(json.loads(payload))

    def send_bytes(self, data: bytes) -> None:
        mask = os.urandom(4)
        n = len(data)
        head = struct.pack("!BB", 0x81, 0x80 | (n if n < 126 else 126 if n < 65536 else 127))
        if 126 <= n < 65536:
            head += struct.pack("!H", n)
        elif n >= 65536:
            head += struct.pack("!Q", n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.conn.sendall(head + mask + masked)

    def send(self, message: Any) -> None:
        self.send_bytes(json.dumps(message).encode())


def initialize_message(options: dict[str, Any], msg_id: int = 1) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": msg_id,
        "method": "initialize",
        "params": {"capabilities": {}, "initializationOptions": options},
    }


def browser_post(port: int, message: dict[str, Any]) -> bytes:
    """What Chrome sends for `fetch("http://127.0.0.1:PORT/", {method: "POST", mode:
    "no-cors", body: JSON.stringify(message)})` from a page on evil.example."""
    body = json.dumps(message).encode()
    head = (
        "POST / HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        "Connection: keep-alive\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Origin: http://evil.example\r\n"
        "Content-Type: text/plain;charset=UTF-8\r\n"
        "Accept: */*\r\n"
        "Referer: http://evil.example/\r\n"
        "\r\n"
    )
    return head.encode() + body


def test_a_browser_post_is_refused_and_runs_nothing(
    served: list[Served], backend_env: dict[str, str], tmp_path: Path
) -> None:
    one = start(served, "tcp")
    marker = tmp_path / "PWNED"
    # A page on evil.example, one fetch per message (each waits on its own connection,
    # as a browser's do while the server sends no HTTP answer).
    attack = [
        initialize_message(
            {"env": {**backend_env, "IS_SANDBOX": "1"}, "cwd": str(tmp_path), "prewarm": 0}
        ),
        {"jsonrpc": "2.0", "method": "initialized", "params": {}},
        {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "dave/newSession",
            "params": {"sessionId": "evil", "permissionMode": "bypassPermissions"},
        },
        {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "dave/query",
            "params": {
                "sessionId": "evil",
                "prompt": f'tool Bash {{"command": "touch {marker}"}}',
            },
        },
    ]
    conns, answered = [], []
    for message in attack:
        conn = socket.create_connection(("127.0.0.1", one.port), timeout=30)
        conn.sendall(browser_post(one.port, message))
        conns.append(conn)
        answered.append(not eof_without_a_byte(conn, timeout=10))
    if any(answered):  # the server took the page's messages: give its Bash time to run
        deadline = time.monotonic() + 90
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
    assert not marker.exists(), "the web page's Bash ran"
    assert answered == [False] * 4
    lines = one.new_refusals(4)
    assert all("an HTTP request (a web page?)" in line for line in lines), lines
    assert cli_processes(one.proc.pid) == []  # no session, no CLI
    assert one.proc.poll() is None  # and the server waits for its editor
    for conn in conns:
        conn.close()


def test_a_wrong_or_missing_token_or_another_first_message_is_refused(
    served: list[Served],
) -> None:
    one = start(served, "tcp")
    attempts = [
        (frame(initialize_message({"prewarm": 0})), "no token"),
        (frame(initialize_message({"token": "0" * 32})), "a wrong token"),
        (frame(initialize_message({"token": 12345})), "a wrong token"),
        (frame({"jsonrpc": "2.0", "id": 1, "method": "dave/listSessions"}), "not initialize"),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", "not an LSP frame"),  # TLS hello
    ]
    for data, reason in attempts:
        with socket.create_connection(("127.0.0.1", one.port), timeout=30) as conn:
            conn.sendall(data)
            assert eof_without_a_byte(conn), reason
        (line,) = one.new_refusals(1)
        assert reason in line, line
    token = one.token()
    with socket.create_connection(("127.0.0.1", one.port), timeout=30) as conn:
        conn.sendall(frame(initialize_message({"token": token[:-1]})))
        assert eof_without_a_byte(conn)
    (line,) = one.new_refusals(1)
    assert "a wrong token (the token is in" in line  # says where the right one is
    assert token[:-1] not in one.stderr()
    assert one.proc.poll() is None
    # The editor, with the token, still gets in.
    client = SocketClient(one.port)
    answer = client.initialize({"token": token, "prewarm": 0})
    assert answer["result"]["serverInfo"]["name"] == "dave-lsp"
    client.close()
    assert one.proc.wait(15) == 0


def test_the_token_file_is_private_and_its_path_printed(served: list[Served]) -> None:
    one = start(served, "tcp")
    path, token = one.token_path(), one.token()
    assert path.parent.parent == Path(os.environ["XDG_STATE_HOME"]) / "dave-lsp"
    assert re.fullmatch(r"[0-9a-f]{32}", token)  # 128 random bits
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o077 == 0
    client = SocketClient(one.port)
    assert "result" in client.initialize({"token": token, "prewarm": 0})
    client.close()
    assert one.proc.wait(15) == 0
    assert not path.exists()  # the token ends with the server


def test_one_client_at_a_time_and_the_token_works_end_to_end(
    served: list[Served], backend_env: dict[str, str], tmp_path: Path
) -> None:
    token = "an-editor-token-from-the-environment"
    one = start(served, "tcp", env={"DAVE_LSP_TOKEN": token})
    editor = SocketClient(one.port)
    editor.initialize({"token": token, "env": backend_env, "cwd": str(tmp_path), "prewarm": 0})
    answer, _ = editor.query("sock-1", "echo hello")
    assert answer["result"]["text"] == "You said: echo hello"
    # A second client, even one with the token, is refused while the editor is connected;
    # it gets nothing of the editor's traffic, and its leaving stops nothing.
    for options in ({"token": token}, {"prewarm": 0}):
        intruder = SocketClient(one.port)
        intruder.send(initialize_message(options))
        assert intruder.closed()
        assert intruder.messages == []
        intruder.close()
        (line,) = one.new_refusals(1)
        assert "a client is already connected" in line
    answer, token_id = editor.query("sock-1", "echo again")
    assert answer["result"]["text"] == "You said: echo again"
    assert editor.texts(token_id) == "You said: echo again"
    assert one.proc.poll() is None
    # When the editor leaves, the server ends.
    editor.close()
    assert one.proc.wait(30) == 0
    assert editor.garbage == b""


def test_a_token_from_the_environment_writes_no_file(served: list[Served]) -> None:
    token = "a-token-from-the-environment-42"
    one = start(served, "tcp", env={"DAVE_LSP_TOKEN": token})
    assert "the client's token is DAVE_LSP_TOKEN's value" in one.stderr()
    assert token not in one.stderr()
    sockets = Path(os.environ["XDG_STATE_HOME"]) / "dave-lsp" / "sockets"
    assert not (sockets / f"tcp-{one.port}.token").exists()
    client = SocketClient(one.port)
    assert "result" in client.initialize({"token": token, "prewarm": 0})
    client.close()
    assert one.proc.wait(15) == 0
    # A short one is refused at start, in one line that says how to make one.
    short = subprocess.run(
        [sys.executable, "-m", "dave_lsp", "--tcp", str(free_port())],
        env={**os.environ, "DAVE_LSP_TOKEN": "1234"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert short.returncode == 2
    assert short.stderr.strip().count("\n") == 0 and "secrets.token_hex" in short.stderr


def test_a_websocket_from_a_web_page_is_refused(
    served: list[Served], backend_env: dict[str, str], tmp_path: Path
) -> None:
    one = start(served, "ws")
    token = one.token()
    # A page's WebSocket carries its Origin; even with the token (leaked, guessed) the
    # page is refused before the upgrade.
    for headers in (
        {"Origin": "http://evil.example"},
        {"Origin": "http://evil.example", "Authorization": f"Bearer {token}"},
    ):
        page = WsClient(one.port, headers)
        assert page.status == 403, page.status_line
        assert page.messages == []
        page.close()
        (line,) = one.new_refusals(1)
        assert "origin 'http://evil.example'" in line, line
    # A wrong token on the upgrade, and no token at all, are refused too.
    wrong = WsClient(one.port, {"Authorization": "Bearer " + "f" * 32})
    assert wrong.status == 401
    wrong.close()
    assert "a wrong token" in one.new_refusals(1)[0]
    bare = WsClient(one.port, {})
    assert bare.status == 101  # the token may still come in initialize
    bare.send(initialize_message({"prewarm": 0}))
    assert bare.closed() and bare.messages == [] and bare.close_code == 1008
    bare.close()
    assert "no token" in one.new_refusals(1)[0]
    # The editor: the token on the upgrade (here as the query parameter), then a query.
    editor = WsClient(one.port, {}, target=f"/?token={token}")
    assert editor.status == 101
    editor.initialize({"env": backend_env, "cwd": str(tmp_path), "prewarm": 0})
    answer, _ = editor.query("ws-1", "echo over a websocket")
    assert answer["result"]["text"] == "You said: echo over a websocket"
    second = WsClient(one.port, {"Authorization": f"Bearer {token}"})
    assert second.status == 409
    second.close()
    assert "a client is already connected" in one.new_refusals(1)[0]
    answer, _ = editor.query("ws-1", "echo still here")
    assert answer["result"]["text"] == "You said: echo still here"
    editor.close()
    assert one.proc.wait(30) == 0


def test_an_allowed_origin_still_needs_the_token(served: list[Served]) -> None:
    one = start(served, "ws", "--ws-allow-origin", "http://localhost:5173")
    token = one.token()
    page = WsClient(one.port, {"Origin": "http://localhost:5173"})
    assert page.status == 101
    page.send(initialize_message({"prewarm": 0}))
    assert page.closed() and page.messages == []
    page.close()
    assert "no token" in one.new_refusals(1)[0]
    page = WsClient(one.port, {"Origin": "http://localhost:5173"})
    answer = page.initialize({"token": token, "prewarm": 0})
    assert answer["result"]["serverInfo"]["name"] == "dave-lsp"
    page.close()
    assert one.proc.wait(15) == 0
