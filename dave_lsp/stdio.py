"""The protocol's byte streams: the writer that stops at a broken pipe, and the readers
that frame a client's messages forgivingly and read a pipe on the event loop.

The LSP server on stdio (cli.py) and on a socket (lsp/sockets.py) share them; the stdio
serving lifecycle (guarding stdout, signals, winding down) is cli.py's and
acp/serve.py's today and belongs here next to them (issue 25).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import sys
from typing import Any


class ProtocolWriter:
    """stdout for protocol frames. When the client has gone (a broken pipe), further
    writes are dropped and the server winds down, instead of every later frame and log
    line failing again."""

    def __init__(self, out: Any, on_gone: Any) -> None:
        self._out = out
        self._on_gone = on_gone
        self.gone = False

    def write(self, data: bytes) -> None:
        if self.gone:
            return
        try:
            self._out.write(data)
            self._out.flush()
        except (BrokenPipeError, ConnectionResetError, ValueError, OSError):
            self.gone = True
            self._on_gone()

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._out.close()


class FrameReader:
    """stdin for pygls's frame loop, forgiving a client's framing mistakes.

    A `Content-Length` header at the end of a line is still found (after a frame whose
    Content-Length was too short or too long, the next header follows the leftover bytes
    on the same line), so one bad frame costs that frame, not every later one. A body is
    read in pieces, so an absurd Content-Length waits for bytes instead of allocating
    them all at once (a MemoryError that ended the server).
    """

    HEADER = b"Content-Length: "
    CHUNK = 1 << 20

    def __init__(self, reader: Any) -> None:
        self._reader = reader

    async def readline(self) -> bytes:
        line: bytes = await self._reader.readline()
        start = line.rfind(self.HEADER)
        return line[start:] if start > 0 else line

    async def readexactly(self, n: int) -> bytes:
        parts: list[bytes] = []
        while n > 0:
            part: bytes = await self._reader.readexactly(min(n, self.CHUNK))
            if not part:
                break
            parts.append(part)
            n -= len(part)
        return b"".join(parts)


class PipeReader:
    """stdin read on the event loop, when it is a pipe or socket of its own (how
    editors start servers: Node and libuv give each stdio stream its own socket pair).

    pygls's `StdinAsyncReader` hands every read (a header line, the blank line, the
    body) to a thread: three thread hops per message, about a millisecond added to
    every request. The event loop sets stdin non-blocking, which would also make the
    server's blocking writes fail if stdin shared its open file with the protocol's
    output (a terminal, or one socket on both): then the thread reader is kept.
    """

    def __init__(self, stream: asyncio.StreamReader) -> None:
        self._stream = stream

    @classmethod
    async def for_stdin(cls, out_fd: int) -> PipeReader | None:
        try:
            stdin, out = os.fstat(sys.stdin.fileno()), os.fstat(out_fd)
            own_stream = stat.S_ISFIFO(stdin.st_mode) or stat.S_ISSOCK(stdin.st_mode)
            if not own_stream or (stdin.st_dev, stdin.st_ino) == (out.st_dev, out.st_ino):
                return None
            stream = asyncio.StreamReader(limit=FrameReader.CHUNK)
            loop = asyncio.get_running_loop()
            await loop.connect_read_pipe(
                lambda: asyncio.StreamReaderProtocol(stream), sys.stdin.buffer
            )
        except (OSError, ValueError):
            return None
        return cls(stream)

    async def readline(self) -> bytes:
        try:
            return await self._stream.readline()
        except ValueError:  # a line longer than a megabyte: garbage, dropped
            return b"-\r\n"

    async def readexactly(self, n: int) -> bytes:
        # At most n bytes, fewer at the end of input: FrameReader loops for the rest.
        return await self._stream.read(n)
