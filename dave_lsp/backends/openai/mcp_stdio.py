"""The stdio transport of an MCP server the OpenAI agent starts (mcp_servers.py).

The `mcp` package has one (`mcp.client.stdio`), but it hands back no process: it kills
the server's process group only when the server outlives its closed stdin, so a
helper the server started and left running (`npx` starts node, a wrapper script its
tool) stayed behind. This one runs the server in a process group of its own and, on
the way out, closes its stdin, waits `GRACE_SECONDS` for it to end, then kills the
whole group in any case: nothing the server started outlives the session. The pid is
in `pids.LIVE_PIDS` while it runs, so a server that exits hard kills it too.

Messages are newline-delimited JSON-RPC, as the MCP stdio transport has them; a line
that is not a JSON-RPC message reaches the session as an exception (it logs it).
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import IO, Any, Final

import anyio
import mcp_types
from mcp.shared.message import SessionMessage

from dave_lsp.pids import LIVE_PIDS

GRACE_SECONDS: Final = 2.0
"""How long a server has to end on its own once its stdin is closed."""

Streams = tuple[Any, Any]  # (what the server sends, what it is sent): a ClientSession's


@contextlib.asynccontextmanager
async def stdio(
    command: str,
    args: Sequence[str],
    env: Mapping[str, str],
    cwd: str,
    errlog: IO[str],
) -> AsyncIterator[Streams]:
    """Run the server and yield its message streams; stops it (its whole process group)
    however the block ends. OSError when it cannot be started."""
    process = await anyio.open_process(
        [command, *args],
        env=dict(env),
        cwd=cwd,
        stderr=errlog,
        # Its own process group, killed whole at the end.
        start_new_session=True,
    )
    LIVE_PIDS.add(process.pid)
    incoming_send, incoming = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    outgoing, outgoing_receive = anyio.create_memory_object_stream[SessionMessage](0)
    stdout, stdin = process.stdout, process.stdin
    assert stdout is not None and stdin is not None

    async def read() -> None:
        buffer = b""
        async with incoming_send:
            with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
                async for chunk in stdout:
                    lines = (buffer + chunk).split(b"\n")
                    buffer = lines.pop()
                    for line in lines:
                        if line.strip():
                            await incoming_send.send(_parse(line))

    async def write() -> None:
        async with outgoing_receive:
            with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
                async for message in outgoing_receive:
                    text = message.message.model_dump_json(by_alias=True, exclude_unset=True)
                    await stdin.send(text.encode() + b"\n")

    try:
        async with anyio.create_task_group() as group:
            group.start_soon(read)
            group.start_soon(write)
            try:
                yield incoming, outgoing
            finally:
                group.cancel_scope.cancel()
    finally:
        # Shielded: a cancelled session must still end its server.
        with anyio.CancelScope(shield=True):
            await _stop(process)


def _parse(line: bytes) -> SessionMessage | Exception:
    try:
        return SessionMessage(mcp_types.jsonrpc_message_adapter.validate_json(line))
    except ValueError as exc:
        return exc


async def _stop(process: anyio.abc.Process) -> None:
    """Close stdin, give the server `GRACE_SECONDS`, then kill its whole group."""
    assert process.stdin is not None
    with contextlib.suppress(OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
        await process.stdin.aclose()
    await _exited(process, GRACE_SECONDS)
    # Always: what the server started may still run after it ended.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    await _exited(process, GRACE_SECONDS)
    LIVE_PIDS.discard(process.pid)
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            with contextlib.suppress(OSError, anyio.BrokenResourceError):
                await stream.aclose()


async def _exited(process: anyio.abc.Process, seconds: float) -> None:
    """Wait at most `seconds` for the process to end. Not `wait()`, which on asyncio
    also waits for its pipes to close, which a child holding them keeps open."""
    with anyio.move_on_after(seconds):
        while process.returncode is None:  # noqa: ASYNC110 (polled: no event to wait on)
            await anyio.sleep(0.02)
