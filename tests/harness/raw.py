"""A dave-lsp server on raw pipes, the way an editor starts it, and process helpers:
for tests that must see every byte the server writes, or send bytes no client would."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.harness.processes import cli_processes

_ids = itertools.count(1000)


def alive_clis(pids: set[int]) -> set[int]:
    return pids & set(cli_processes())


async def wait_gone(pids: set[int], timeout: float) -> set[int]:
    """The PIDs of `pids` still alive after waiting up to `timeout` seconds for them to end."""
    deadline = time.monotonic() + timeout
    while alive_clis(pids) and time.monotonic() < deadline:  # noqa: ASYNC110 - polls /proc
        await asyncio.sleep(0.05)
    return alive_clis(pids)


def wait_gone_sync(pids: set[int], timeout: float) -> set[int]:
    deadline = time.monotonic() + timeout
    while alive_clis(pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive_clis(pids)


def frame(message: Any) -> bytes:
    body = json.dumps(message).encode()
    return b"Content-Length: %d\r\n\r\n%s" % (len(body), body)


class RawServer:
    """`python -m dave_lsp` on raw pipes, the way an editor starts it. A thread reads
    stdout and parses it strictly: every byte must belong to a well-formed frame
    (`garbage` holds anything that does not). stderr goes to a file."""

    def __init__(self, args: tuple[str, ...] = (), env: dict[str, str] | None = None) -> None:
        self._stderr = tempfile.NamedTemporaryFile(prefix="dave-stderr-", delete=False)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dave_lsp", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
        )
        self.messages: list[dict[str, Any]] = []
        self.garbage = b""
        self._buffer = b""
        self._cond = threading.Condition()
        self._eof = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    # -- reading -------------------------------------------------------------------------

    def _read(self) -> None:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while True:
            try:
                chunk = os.read(fd, 1 << 16)
            except (OSError, ValueError):
                chunk = b""
            with self._cond:
                if not chunk:
                    self._eof = True
                    self.garbage += self._buffer  # a frame cut short
                    self._cond.notify_all()
                    return
                self._buffer += chunk
                self._parse()
                self._cond.notify_all()

    def _parse(self) -> None:
        while True:
            head, sep, rest = self._buffer.partition(b"\r\n\r\n")
            if not sep:
                return
            length = None
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length" and value.strip().isdigit():
                    length = int(value)
                elif name.strip().lower() != b"content-type":
                    self.garbage += line + b"\r\n"
            if length is None:
                self.garbage += head + sep
                self._buffer = rest
                continue
            if len(rest) < length:
                return
            body, self._buffer = rest[:length], rest[length:]
            try:
                self.messages.append(json.loads(body))
            except ValueError:
                self.garbage += body

    def wait(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 30
    ) -> dict[str, Any]:
        """The first message (of all received) that satisfies `predicate`."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for message in self.messages:
                    if predicate(message):
                        return message
                left = deadline - time.monotonic()
                if left <= 0 or self._eof:
                    raise AssertionError(f"no matching message within {timeout} s")
                self._cond.wait(left)

    def response(self, msg_id: Any, timeout: float = 30) -> dict[str, Any]:
        return self.wait(lambda m: m.get("id") == msg_id and "method" not in m, timeout)

    def has_response(self, msg_id: Any) -> bool:
        with self._cond:
            return any(m.get("id") == msg_id and "method" not in m for m in self.messages)

    def progress(self, token: Any) -> list[dict[str, Any]]:
        with self._cond:
            return [
                m["params"]["value"]
                for m in self.messages
                if m.get("method") == "$/progress" and m["params"].get("token") == token
            ]

    def wait_report(self, token: Any, kind: str, timeout: float = 30) -> dict[str, Any]:
        message = self.wait(
            lambda m: (
                m.get("method") == "$/progress"
                and m["params"].get("token") == token
                and kind in (m["params"]["value"].get("type"), m["params"]["value"].get("kind"))
            ),
            timeout,
        )
        return message["params"]["value"]

    def notifications(self, method: str) -> list[dict[str, Any]]:
        with self._cond:
            return [m["params"] for m in self.messages if m.get("method") == method]

    # -- writing -------------------------------------------------------------------------

    def send_bytes(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def send(self, message: Any) -> None:
        self.send_bytes(frame(message))

    def request(self, method: str, params: Any = None, *, omit_params: bool = False) -> int:
        msg_id = next(_ids)
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": msg_id, "method": method}
        if not omit_params:
            message["params"] = params
        self.send(message)
        return msg_id

    def call(self, method: str, params: Any = None, timeout: float = 30) -> dict[str, Any]:
        return self.response(self.request(method, params), timeout)

    def notify(self, method: str, params: Any = None) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def initialize(self, options: dict[str, Any], capabilities: Any = None) -> dict[str, Any]:
        answer = self.call(
            "initialize",
            {"capabilities": capabilities or {}, "initializationOptions": options},
            timeout=60,
        )
        self.notify("initialized", {})
        return answer

    def start_query(self, session_id: str, prompt: str, **extra: Any) -> tuple[int, str]:
        token = f"raw-{next(_ids)}"
        params = {"sessionId": session_id, "prompt": prompt, "workDoneToken": token, **extra}
        return self.request("dave/query", params), token

    def query(self, session_id: str, prompt: str, timeout: float = 60, **extra: Any) -> Any:
        """(the response message, the token)."""
        msg_id, token = self.start_query(session_id, prompt, **extra)
        return self.response(msg_id, timeout), token

    def texts(self, token: str) -> str:
        return "".join(v["text"] for v in self.progress(token) if v.get("type") == "token")

    # -- ending --------------------------------------------------------------------------

    def close_stdin(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()

    def stderr_text(self) -> str:
        return Path(self._stderr.name).read_text(errors="replace")

    def stderr_size(self) -> int:
        return os.path.getsize(self._stderr.name)

    def stop(self, timeout: float = 15) -> int:
        """Close stdin (the editor went away) and wait for the server to end."""
        self.close_stdin()
        try:
            return self.proc.wait(timeout)
        finally:
            self._reader.join(5)

    def cleanup(self) -> None:
        """Kill the server if it still runs and forget its stderr; safe to call twice."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self._reader.join(5)
        self._stderr.close()
        if os.path.exists(self._stderr.name):
            os.unlink(self._stderr.name)
