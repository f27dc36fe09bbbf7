"""An ACP client's terminals as the model's Bash.

When the client's `initialize` offers `clientCapabilities.terminal`, a session's Bash
runs in a terminal of the client's (after its permission, which the session layer asks
as for Claude Code's own Bash: the tool is `Bash` to it, acp/files.py): the command is
`terminal/create {command: "bash", args: ["-c", <command>], cwd: <the session's
folder>, outputByteLimit}`, the tool call gets `{type: "terminal", terminalId}` content
so the editor shows the output as it comes, then `terminal/wait_for_exit`,
`terminal/output` and `terminal/release`. A cancelled turn kills the terminal
(`terminal/kill`) and releases it; a command past its timeout is killed too.

What the model gets stays within Claude Code's Bash bounds: at most `OUTPUT_LIMIT`
bytes of output (the client keeps the end of a longer one; so does this module when a
client keeps more), the exit code when it is not 0, and a note when output was cut or
the command was killed. What it keeps of the CLI's Bash, and what not (docs/acp.md):
the `timeout` input (ms: default 2 min, at most 10), the session's folder as the
working directory of every command (a `cd` does not carry over to the next command),
and the client's environment (the agent's `env` holds its API key and is not sent).
There is no `run_in_background`: a background shell's output tools are the CLI's.

The tool call a terminal belongs to: an MCP tool handler is told its arguments only,
so a Bash tool use the turn reported (`tool_use`) and a terminal made for the same
input (`run`) are paired here, whichever comes first.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections.abc import Callable
from typing import Any

import attrs

from dave_lsp.acp import outgoing as out
from dave_lsp.acp import schema
from dave_lsp.acp.transport import Connection, RpcError
from dave_lsp.tools.catalog import BASH
from dave_lsp.tools.editor import EditorToolError, ToolSpec, ask_editor

log = logging.getLogger(__name__)

CREATE = "terminal/create"
OUTPUT = "terminal/output"
WAIT = "terminal/wait_for_exit"
KILL = "terminal/kill"
RELEASE = "terminal/release"
UPDATE = "session/update"
# Claude Code's Bash output bound (BASH_MAX_OUTPUT_LENGTH's default, 30,000 characters).
OUTPUT_LIMIT = 30_000
# Claude Code's Bash `timeout` input: milliseconds, 2 min by default, at most 10.
DEFAULT_TIMEOUT_MS = 120_000
MAX_TIMEOUT_MS = 600_000
# How long a terminal request other than the wait may take the client to answer.
REQUEST_TIMEOUT = 30.0

SPEC = ToolSpec(
    "terminal",
    BASH,
    "Run a shell command (bash -c) in the editor's terminal, where the user sees it run. "
    "Each command starts in the session's folder (a `cd` does not carry over: use "
    "`cd dir && command`). Output (stdout and stderr) comes back with the exit code when "
    f"it is not 0; at most the last {OUTPUT_LIMIT} bytes of it.",
    {
        "type": "object",
        "properties": {
            "command": {"type": "string", "description": "The command to run"},
            "timeout": {
                "type": "number",
                "description": f"Optional timeout in milliseconds (default "
                f"{DEFAULT_TIMEOUT_MS}, at most {MAX_TIMEOUT_MS})",
            },
            "description": {
                "type": "string",
                "description": "What the command does, in 5-10 words",
            },
        },
        "required": ["command"],
    },
)


@attrs.define(eq=False)
class _Run:
    """One command's terminal, from its `terminal/create` to its release."""

    key: str  # its input, as `_key` spells it
    stopped: asyncio.Event = attrs.field(factory=asyncio.Event)
    terminal_id: str | None = None
    tool_use_id: str | None = None


class ClientTerminals:
    """One session's Bash over the client's terminals."""

    def __init__(
        self,
        conn: Connection,
        session_id: Callable[[], str],
        *,
        timeout: float = REQUEST_TIMEOUT,
    ) -> None:
        self._conn = conn
        self._session_id = session_id
        self._timeout = timeout
        self._runs: set[_Run] = set()
        self._unpaired_uses: dict[str, str] = {}  # tool use id -> its input's key
        self._content: dict[str, str] = {}  # tool use id -> its terminal's id
        self._closing: set[asyncio.Task[None]] = set()

    # -- the tool call each terminal belongs to --------------------------------------

    def tool_use(self, tool_use_id: str, tool_name: str, tool_input: dict[str, Any]) -> None:
        """The turn reported a tool use: a Bash's terminal goes on its tool call."""
        if tool_name != BASH:
            return
        key = _key(tool_input)
        run = next(
            (r for r in self._runs if r.tool_use_id is None and r.terminal_id and r.key == key),
            None,
        )
        if run is None:
            self._unpaired_uses[tool_use_id] = key
        else:
            self._pair(run, tool_use_id)

    def content(self, tool_use_id: str) -> list[out.ToolCallContent]:
        """The terminal content of a finished tool use ([] if it ran in none): the
        client shows a released terminal's output still."""
        self._unpaired_uses.pop(tool_use_id, None)  # denied, or failed before its terminal
        terminal_id = self._content.pop(tool_use_id, None)
        return [terminal_content(terminal_id)] if terminal_id else []

    def _created(self, run: _Run) -> None:
        # The tool use with this input (the oldest, if several); else the first
        # unpaired one, since the CLI may have reshaped the input.
        uses = self._unpaired_uses
        found = next((t for t, k in uses.items() if k == run.key), None)
        found = found or next(iter(uses), None)
        if found is not None:
            del uses[found]
            self._pair(run, found)

    def _pair(self, run: _Run, tool_use_id: str) -> None:
        assert run.terminal_id is not None
        run.tool_use_id = tool_use_id
        self._content[tool_use_id] = run.terminal_id
        body = schema.tool_call_update(tool_use_id, content=[terminal_content(run.terminal_id)])
        self._conn.notify(UPDATE, schema.update(self._session_id(), body))

    # -- running a command -----------------------------------------------------------

    def cancel(self) -> None:
        """The turn was cancelled: every command still running is killed and released."""
        self._unpaired_uses.clear()
        for run in self._runs:
            run.stopped.set()

    async def run(self, args: dict[str, Any], cwd: str) -> str:
        """Run the model's Bash in a client terminal; its output for the model (an
        EditorToolError, which the model reads as a failed tool, when the command failed
        or could not run)."""
        command = args.get("command")
        if not isinstance(command, str) or not command.strip():
            raise EditorToolError("command must be a non-empty string")
        if args.get("run_in_background"):
            raise EditorToolError(
                "run_in_background is not available: commands run in the editor's "
                "terminal; run it in the foreground with a timeout"
            )
        timeout_ms = args.get("timeout") or DEFAULT_TIMEOUT_MS
        if (
            isinstance(timeout_ms, bool)
            or not isinstance(timeout_ms, int | float)
            or not math.isfinite(timeout_ms)
        ):
            raise EditorToolError("timeout must be a number of milliseconds")
        timeout = min(max(float(timeout_ms), 1.0), MAX_TIMEOUT_MS) / 1000
        run = _Run(_key(args))
        self._runs.add(run)
        try:
            created = await self._ask(
                CREATE,
                out.CreateTerminalRequest(
                    self._session_id(), "bash", ["-c", command], cwd, OUTPUT_LIMIT
                ),
            )
            terminal_id = created.get("terminalId") if isinstance(created, dict) else None
            if not isinstance(terminal_id, str) or not terminal_id:
                raise EditorToolError(f"the editor's {CREATE} answer had no terminalId")
            run.terminal_id = terminal_id
            self._created(run)
            return await self._finish(run, terminal_id, timeout)
        finally:
            self._runs.discard(run)

    async def _finish(self, run: _Run, terminal_id: str, seconds: float) -> str:
        """Wait for the command (killed at its timeout, or when the turn is cancelled),
        read its output, and release its terminal whatever happened."""
        exited = False
        try:
            status, timed_out = await self._wait(run, terminal_id, seconds)
            if status is None and not timed_out:
                raise EditorToolError("The command was cancelled; its terminal was killed.")
            exited = status is not None
            if timed_out:
                await self._ask(KILL, self._terminal(terminal_id))
                exited = True
            output = await self._ask(OUTPUT, self._terminal(terminal_id))
            return _result(output, status, seconds if timed_out else None)
        finally:
            closing = asyncio.ensure_future(self._close(terminal_id, kill=not exited))
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)
            # Shielded: a cancelled tool call still kills and releases its terminal.
            await asyncio.shield(closing)

    async def _wait(
        self, run: _Run, terminal_id: str, seconds: float
    ) -> tuple[dict[str, Any] | None, bool]:
        """The command's exit status and whether it timed out; (None, False) when the
        turn was cancelled first. A wait given up is cancelled at the client too
        (`$/cancel_request`: transport.py)."""
        waiting = asyncio.ensure_future(self._conn.request(WAIT, self._terminal(terminal_id)))
        stopped = asyncio.ensure_future(run.stopped.wait())
        try:
            done, _ = await asyncio.wait(
                {waiting, stopped}, timeout=seconds, return_when="FIRST_COMPLETED"
            )
        finally:
            stopped.cancel()
            if not waiting.done():
                waiting.cancel()
                await asyncio.gather(waiting, return_exceptions=True)
        if waiting in done:
            try:
                result = waiting.result()
            except RpcError as exc:
                if run.stopped.is_set():
                    return None, False
                raise EditorToolError(f"the editor could not answer {WAIT}: {exc}") from None
            return (result if isinstance(result, dict) else {}), False
        return None, not run.stopped.is_set()

    async def _close(self, terminal_id: str, *, kill: bool) -> None:
        """Kill (when the command may still run) and release the terminal; failures are
        the client's to log, not the model's to read."""
        methods = (KILL, RELEASE) if kill else (RELEASE,)
        for method in methods:
            with contextlib.suppress(EditorToolError):
                await self._ask(method, self._terminal(terminal_id))

    def _terminal(self, terminal_id: str) -> out.TerminalRequest:
        return out.TerminalRequest(self._session_id(), terminal_id)

    async def _ask(
        self, method: str, params: out.CreateTerminalRequest | out.TerminalRequest
    ) -> Any:
        return await ask_editor(
            self._conn.request(method, params), method, self._timeout, (RpcError,)
        )


def terminal_content(terminal_id: str) -> out.Terminal:
    return out.Terminal(terminal_id)


def _key(tool_input: dict[str, Any]) -> str:
    return json.dumps(tool_input, sort_keys=True, ensure_ascii=False)


def _result(output: Any, status: dict[str, Any] | None, killed_after: float | None) -> str:
    """The model's text: the output (its end, within OUTPUT_LIMIT), a note when it was
    cut, and how the command ended when not with 0. Raises EditorToolError for a
    command that failed, as Claude Code's Bash reports an error result."""
    text = output.get("output") if isinstance(output, dict) else None
    text = text if isinstance(text, str) else ""
    truncated = bool(isinstance(output, dict) and output.get("truncated"))
    data = text.encode("utf-8")
    if len(data) > OUTPUT_LIMIT:  # a client that kept more than it was asked to
        text = data[-OUTPUT_LIMIT:].decode("utf-8", "ignore")
        truncated = True
    if truncated:
        text = f"[output truncated: only its last {OUTPUT_LIMIT} bytes are kept]\n{text}"
    final = status or (output.get("exitStatus") if isinstance(output, dict) else None) or {}
    code, signal = final.get("exitCode"), final.get("signal")
    if killed_after is not None:
        raise EditorToolError(
            _then(text, f"Command timed out after {killed_after:g} s and was killed.")
        )
    if signal:
        raise EditorToolError(_then(text, f"Killed by signal {signal}"))
    if isinstance(code, int) and code != 0:
        raise EditorToolError(_then(text, f"Exit code {code}"))
    return text or "(no output)"


def _then(text: str, line: str) -> str:
    """`line` on a line of its own after the output."""
    return "\n".join(part for part in (text.rstrip("\n"), line) if part)
