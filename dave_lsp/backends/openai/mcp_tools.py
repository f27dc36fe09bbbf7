"""MCP servers as the OpenAI agent's tools: the session's servers, started once, their
tools offered to the model as functions, called when the model asks.

Where the servers come from:

- `SessionConfig.mcp_servers`: ACP `session/new`'s `mcpServers` (acp/content.py) over
  `initializationOptions.mcpServers` (the same shapes; the session manager merges them,
  and the Claude CLI gets the same);
- for a trusted folder only (trust.py), the `.mcp.json` of the cwd and of every folder
  above it, as the CLI reads them (the nearer wins; the session's own win over all),
  with `${VAR}` and `${VAR:-default}` in its strings taken from the session's env.

A name dave-lsp's own tools use (policy.OWNED_SERVER_NAMES: `editor`, `acp`, `ide`) is
refused: the policy lets `mcp__editor__*` through unasked as the editor's own tools.

Each tool is the function `mcp__<server>__<tool>`, its parameters the tool's
`inputSchema`. Characters outside `[A-Za-z0-9_-]` become `_`, as Claude Code names MCP
tools (so the same settings rules, `mcp__server__tool`, match), cut at 64 characters
(the function-name limit); a name taken twice gets a number. The mapping to the
server's own names is kept here.

The servers start at the session's first turn, all at once; each has
`START_SECONDS` to answer `initialize` and `tools/list`. They run until `close` (a
stdio server's whole process group is killed: mcp_stdio.py). One that fails is named
in a one-line status, with its reason, and the turn goes on without its tools; a call
to one of them says why. A call has `CALL_SECONDS`. Its result is text for the model:
the text content joined, an image, audio or resource summarized in a line, at most
tools.READ_MAX_BYTES as Read's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import stat
import tempfile
from collections.abc import AsyncIterator, Mapping
from typing import IO, TYPE_CHECKING, Any, Final

import attrs

from dave_lsp import trust
from dave_lsp.backends.base import SessionConfig
from dave_lsp.backends.common import one_line
from dave_lsp.backends.openai.tools import READ_MAX_BYTES, Output
from dave_lsp.permissions.policy import OWNED_SERVER_NAMES

if TYPE_CHECKING:
    from mcp.client.session import ClientSession

log = logging.getLogger(__name__)

START_SECONDS: Final = 30.0
CALL_SECONDS: Final = 600.0
MAX_DESCRIPTION: Final = 2048  # characters of a tool's description offered
MAX_NAME: Final = 64  # the chat-completions function-name limit
MAX_PAGES: Final = 20  # of tools/list
STOP_SECONDS: Final = 10.0

_NOT_NAME = re.compile(r"[^A-Za-z0-9_-]")
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@attrs.frozen
class McpTool:
    """One tool of one server, as the model calls it."""

    name: str  # the function name: mcp__<server>__<tool>
    server: str
    tool: str  # the server's own name for it
    description: str
    schema: dict[str, Any]
    read_only: bool  # annotated readOnlyHint: runs unasked where Read would


def function_name(server: str, tool: str) -> str:
    return f"mcp__{_NOT_NAME.sub('_', server)}__{_NOT_NAME.sub('_', tool)}"[:MAX_NAME]


# -- the session's servers ------------------------------------------------------------


def configured(config: SessionConfig) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The servers to start, by name, and what to tell the user of the ones refused."""
    found: dict[str, Any] = {}
    notices: list[str] = []
    if config.trusted:
        found.update(_mcp_json(config.cwd, {**os.environ, **config.env}, notices))
    found.update(config.mcp_servers)
    servers: dict[str, dict[str, Any]] = {}
    for name, spec in found.items():
        why = problem(name, spec)
        if why:
            notices.append(f"MCP server {name} is not started: {why}")
        else:
            servers[name] = spec
    return servers, notices


def problem(name: str, spec: Any) -> str:
    """What is wrong with a server's entry ("" when nothing is)."""
    if name in OWNED_SERVER_NAMES:
        return f"the name {name} is dave-lsp's own (its tools); give the server another name"
    if not isinstance(spec, dict):
        return "its entry is not an object"
    kind = spec.get("type") or ("stdio" if "command" in spec else None)
    if kind == "stdio":
        args, env = spec.get("args", []), spec.get("env", {})
        if not isinstance(spec.get("command"), str) or not spec["command"]:
            return "command must be a non-empty string"
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            return "args must be a list of strings"
        if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
            return "env must be an object of strings"
        return ""
    if kind in ("http", "sse"):
        url, headers = spec.get("url"), spec.get("headers", {})
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            return "url must be an http:// or https:// URL"
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            return "headers must be an object of strings"
        return ""
    return f"its type {kind!r} is not one of stdio, http, sse"


def _mcp_json(cwd: str, env: Mapping[str, str], notices: list[str]) -> dict[str, Any]:
    """The servers of the `.mcp.json` files of `cwd` and the folders above it."""
    files: list[str] = []
    current = os.path.abspath(cwd)
    while True:
        files.append(os.path.join(current, trust.MCP_FILE))
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    servers: dict[str, Any] = {}
    for file in reversed(files):  # the root's first: nearer files win
        data = _read_json(file, notices)
        listed = data.get("mcpServers") if isinstance(data, dict) else None
        if isinstance(listed, dict):
            servers.update({str(k): _expand(v, env) for k, v in listed.items()})
        elif data is not None:
            notices.append(f"{file}: mcpServers is not an object; its servers are not started")
    return servers


def _read_json(file: str, notices: list[str]) -> Any:
    """A regular file's JSON, None when absent; never blocks on a FIFO or device."""
    try:
        fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_size > trust.MAX_FILE_BYTES:
                raise ValueError("not a regular file of at most 1 MiB")
            return json.loads(handle.read())
        except (OSError, ValueError) as exc:
            notices.append(f"{file} is not read: {one_line(str(exc), 120)}")
            return None


def _expand(value: Any, env: Mapping[str, str]) -> Any:
    """`${VAR}` and `${VAR:-default}` in every string of a `.mcp.json` entry."""
    if isinstance(value, str):
        return _VARIABLE.sub(lambda m: env.get(m[1]) or (m[2] or ""), value)
    if isinstance(value, list):
        return [_expand(v, env) for v in value]
    if isinstance(value, dict):
        return {k: _expand(v, env) for k, v in value.items()}
    return value


# -- one server ------------------------------------------------------------------------


class _Server:
    """One server's connection, owned by a task of its own (the `mcp` client's task
    groups must be entered and left in one task), which lives until `stop`."""

    def __init__(self, name: str, spec: dict[str, Any], config: SessionConfig) -> None:
        self.name = name
        self.spec = spec
        self.config = config
        self.session: ClientSession | None = None
        self.listed: list[Any] = []
        self.failure = ""
        self.ready = asyncio.Event()
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(self._run(), name=f"mcp server {name}")

    async def _run(self) -> None:
        import anyio
        from mcp.client.session import ClientSession

        errlog = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")
        try:
            async with contextlib.AsyncExitStack() as stack:
                read, write = await stack.enter_async_context(self._transport(errlog))
                session = await stack.enter_async_context(ClientSession(read, write))
                with anyio.fail_after(START_SECONDS):
                    await session.initialize()
                    self.listed = await _list_tools(session)
                self.session = session
                self.ready.set()
                await self.stop.wait()
        except Exception as exc:  # a failed server must not fail the session
            if not self.failure:
                self.failure = _reason(exc, errlog)
                log.warning("MCP server %s: %s", self.name, self.failure)
        finally:
            self.session = None
            self.failure = self.failure or "it stopped"
            self.ready.set()
            errlog.close()

    def _transport(self, errlog: IO[str]) -> contextlib.AbstractAsyncContextManager[Any]:
        spec = self.spec
        kind = spec.get("type") or "stdio"
        if kind == "stdio":
            from dave_lsp.backends.openai.mcp_stdio import stdio

            env = {**os.environ, **self.config.env, **spec.get("env", {})}
            return stdio(spec["command"], spec.get("args", []), env, self.config.cwd, errlog)
        return _http(kind, spec["url"], spec.get("headers", {}))


@contextlib.asynccontextmanager
async def _http(kind: str, url: str, headers: dict[str, str]) -> AsyncIterator[Any]:
    import httpx2

    if kind == "sse":
        from mcp.client.sse import sse_client

        async with sse_client(url, headers=headers, timeout=START_SECONDS) as streams:
            yield streams
        return
    from mcp.client.streamable_http import streamable_http_client

    timeout = httpx2.Timeout(START_SECONDS, read=CALL_SECONDS)
    async with (
        httpx2.AsyncClient(headers=headers, timeout=timeout) as client,
        streamable_http_client(url, http_client=client) as streams,
    ):
        yield streams


async def _list_tools(session: ClientSession) -> list[Any]:
    from mcp_types import PaginatedRequestParams

    listed: list[Any] = []
    cursor: str | None = None
    for _page in range(MAX_PAGES):
        params = PaginatedRequestParams(cursor=cursor) if cursor else None
        result = await session.list_tools(params=params)
        listed += result.tools
        cursor = result.next_cursor
        if not cursor:
            break
    return listed


def _reason(exc: BaseException, errlog: IO[str]) -> str:
    """Why a server failed, in one line: the error, and its stderr's last line."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, TimeoutError):
        text = f"it did not answer initialize and tools/list within {START_SECONDS:g} s"
    elif isinstance(exc, OSError) and exc.strerror:
        text = f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    else:
        text = str(exc) or type(exc).__name__
    with contextlib.suppress(OSError, ValueError):
        errlog.seek(0)
        lines = [line.strip() for line in errlog.read()[-4000:].splitlines() if line.strip()]
        if lines:
            text = f"{text} (its stderr: {lines[-1]})"
    return one_line(text, 300)


# -- the session's tools ---------------------------------------------------------------


class McpTools:
    """A session's MCP servers and their tools: `start` at the first turn, `close` with
    the session."""

    def __init__(self, config: SessionConfig) -> None:
        self._config = config
        self._servers: list[_Server] | None = None
        self._tools: dict[str, McpTool] = {}
        self._failed: dict[str, str] = {}  # function-name prefix -> why its server failed

    async def start(self) -> list[str]:
        """Start the servers (once) and wait until each is up or has failed; the lines
        to tell the user, the first time only."""
        if self._servers is not None:
            await asyncio.gather(*(s.ready.wait() for s in self._servers))
            return []
        specs, notices = configured(self._config)
        self._servers = [_Server(name, spec, self._config) for name, spec in specs.items()]
        await asyncio.gather(*(s.ready.wait() for s in self._servers))
        for server in self._servers:
            if server.session is None:
                notices.append(
                    f"MCP server {server.name} did not start: {server.failure};"
                    " its tools are not offered"
                )
                self._failed[function_name(server.name, "")] = server.failure
            else:
                self._add_tools(server)
        return notices

    def _add_tools(self, server: _Server) -> None:
        for tool in server.listed:
            name = function_name(server.name, tool.name)
            number = 1
            while name in self._tools:
                number += 1
                name = f"{function_name(server.name, tool.name)[: MAX_NAME - 4]}_{number}"
            annotations = tool.annotations
            description = tool.description or tool.title or tool.name
            self._tools[name] = McpTool(
                name=name,
                server=server.name,
                tool=tool.name,
                description=description[:MAX_DESCRIPTION],
                schema=tool.input_schema or {"type": "object", "properties": {}},
                read_only=bool(annotations is not None and annotations.read_only_hint),
            )

    def specs(self) -> list[dict[str, Any]]:
        """The functions of a chat-completions request."""
        return [
            {
                "type": "function",
                "function": {"name": t.name, "description": t.description, "parameters": t.schema},
            }
            for t in self._tools.values()
        ]

    def find(self, name: str) -> McpTool | None:
        return self._tools.get(name)

    def missing(self, name: str) -> str:
        """Why there is no tool `name`, when its server failed to start ("" if not)."""
        for prefix, why in self._failed.items():
            if name.startswith(prefix):
                return f"Its MCP server did not start: {why}."
        return ""

    async def call(self, tool: McpTool, arguments: dict[str, Any]) -> Output:
        """Call the tool; every failure is an error `Output` for the model."""
        server = next((s for s in self._servers or () if s.name == tool.server), None)
        session = server.session if server is not None else None
        if session is None:
            why = server.failure if server is not None else "it is not running"
            return Output(f"The MCP server {tool.server} is not running: {why}.", is_error=True)
        try:
            result = await session.call_tool(
                tool.tool, arguments, read_timeout_seconds=CALL_SECONDS
            )
        except Exception as exc:
            text = one_line(str(exc) or type(exc).__name__, 300)
            return Output(f"The MCP server {tool.server} failed: {text}", is_error=True)
        return Output(result_text(result), is_error=bool(result.is_error))

    async def close(self) -> None:
        """Stop every server (a stdio server's process group is killed)."""
        servers, self._servers = self._servers or [], None
        self._tools, self._failed = {}, {}
        for server in servers:
            server.stop.set()
        tasks = [s.task for s in servers]
        if not tasks:
            return
        _done, late = await asyncio.wait(tasks, timeout=STOP_SECONDS)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late, timeout=STOP_SECONDS)


def result_text(result: Any) -> str:
    """A tools/call result as the model's text, bounded as Read's."""
    parts: list[str] = []
    for block in result.content:
        kind = getattr(block, "type", "")
        if kind == "text":
            parts.append(block.text)
        elif kind in ("image", "audio"):
            size = len(block.data) * 3 // 4
            parts.append(f"[{kind}: {block.mime_type}, {size} bytes, not shown]")
        elif kind == "resource_link":
            parts.append(f"[resource link: {block.uri} ({block.name})]")
        elif kind == "resource":
            resource = block.resource
            text = getattr(resource, "text", None)
            what = f"{len(text)} characters of text" if text is not None else "binary"
            parts.append(f"[resource: {resource.uri}, {resource.mime_type or what}, not shown]")
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content))
    text = "\n".join(parts) or "(no output)"
    data = text.encode("utf-8")
    if len(data) > READ_MAX_BYTES:
        kept = data[:READ_MAX_BYTES].decode("utf-8", "ignore")
        text = f"{kept}\n… ({len(data) - READ_MAX_BYTES} bytes of the result cut)"
    return text
