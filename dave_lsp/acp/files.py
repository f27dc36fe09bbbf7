"""An ACP client's file system as the model's Read, Write and Edit, and its terminals
as the model's Bash (terminals.py).

When the client's `initialize` offers `clientCapabilities.fs.readTextFile` and
`writeTextFile`, a session's model gets these tools from an in-process MCP server
named `acp` (`mcp__acp__Read`, ...; the Claude backend serves any
`editor_tools.ToolServer` so) in place of Claude Code's own, which the backend
disables. A read is `fs/read_text_file`, so the model sees the editor's unsaved
buffers; a write is `fs/write_text_file` after the permission, so the edit lands in
the editor. The session layer sees the tools under the built-in names, so the
permission policy, the allow-always rules and the proposal apply as they are; the
proposal (the permission request's diff) is worked out from the buffer's text here.

What is written is what was shown: an asked Write or Edit remembers the text its
proposal was made from, and the tool refuses (telling the model to read again) when
the buffer changed between the question and the write.

Claude Code's plan file (under its config folder's `plans/`) is the CLI's own file,
not the project's: it is read and written on disk, and written without asking in plan
mode, as the CLI's own Write does.

A client that offers terminals gets the model's Bash from the same server (in place of
the CLI's; with the OpenAI backend, in place of its own), with or without its fs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

from dave_lsp import paths
from dave_lsp.acp import outgoing as out
from dave_lsp.acp.schema import acp
from dave_lsp.acp.terminals import SPEC as BASH_SPEC
from dave_lsp.acp.terminals import ClientTerminals
from dave_lsp.acp.transport import Connection, RpcError
from dave_lsp.backends import registry
from dave_lsp.backends.base import SessionConfig
from dave_lsp.fsio import write_atomic
from dave_lsp.permissions import modes
from dave_lsp.review.edits import EditError
from dave_lsp.review.files import FileText, read_text
from dave_lsp.review.proposals import Proposal, make_proposal, proposed_text, target_path
from dave_lsp.tools.catalog import BASH, CLIENT_FILES_SERVER, READ, file_path
from dave_lsp.tools.editor import EditorToolError, ToolSpec, ask_editor
from dave_lsp.tools.schemas import edit_schema, read_schema, write_schema
from dave_lsp.tools.summaries import display_path

log = logging.getLogger(__name__)

SERVER_NAME = CLIENT_FILES_SERVER
READ_FILE = "fs/read_text_file"
WRITE_FILE = "fs/write_text_file"
# A client answers from memory or its disk; 30 s covers a slow remote file system.
REQUEST_TIMEOUT = 30.0
MAX_READ_LINES = 2000  # what one Read returns without a limit, as the CLI's Read
MAX_LINE_CHARS = 2000

_PATH = "The absolute path of the file"
SPECS = {
    "Read": ToolSpec(
        "readTextFile",
        "Read",
        "Read a file as the editor has it (unsaved changes included). Lines are numbered "
        f"from 1; at most {MAX_READ_LINES} lines unless `limit` says otherwise.",
        read_schema(_PATH),
    ),
    "Write": ToolSpec(
        "writeTextFile",
        "Write",
        "Write a whole file (created if missing) in the editor, after the user's "
        "permission where the mode asks for it.",
        write_schema(_PATH),
    ),
    "Edit": ToolSpec(
        "writeTextFile",
        "Edit",
        "Replace `old_string` with `new_string` in a file as the editor has it. "
        "`old_string` must match exactly once unless `replace_all` is true.",
        edit_schema(_PATH),
    ),
}


class ClientFiles:
    """One ACP session's file tools (`editor_tools.FileTools`) over the client's fs
    (`fs`) and its terminals (`terminal`)."""

    server_name = SERVER_NAME

    def __init__(
        self,
        conn: Connection,
        session_id: str | Callable[[], str],
        *,
        env: dict[str, str],
        timeout: float = REQUEST_TIMEOUT,
        fs: bool = True,
        terminal: bool = False,
    ) -> None:
        self._conn = conn
        self._fs = fs
        # A spare's tools are made before its session: they ask for its id as it is
        # then (the id it is adopted under: session/manager.py).
        self._session_id = session_id
        self._timeout = timeout
        self._plans = os.path.realpath(paths.claude_config_dir(env) / "plans")
        # (path, the tool's input) -> the text an asked Write/Edit's proposal was made
        # from (None: no file).
        self._shown: dict[tuple[str, str], str | None] = {}
        # path -> (text before, text after) of the latest write, for the tool's diff.
        self._written: dict[str, tuple[str | None, str]] = {}
        self.terminals = ClientTerminals(conn, self._session) if terminal else None

    @property
    def replaces(self) -> tuple[str, ...]:
        # All three or none: with the built-in Read gone, the CLI refuses its own Write
        # and Edit of a file "not read yet" (probed), so a client that only reads keeps
        # the disk (agent.py).
        files = ("Read", "Write", "Edit") if self._fs else ()
        return (*files, BASH) if self.terminals is not None else files

    def specs(self) -> list[ToolSpec]:
        return [BASH_SPEC if name == BASH else SPECS[name] for name in self.replaces]

    # -- permissions -----------------------------------------------------------------

    def _plan_file(self, path: str) -> bool:
        real = os.path.realpath(path)
        return real.startswith(self._plans + os.sep) and real.endswith(".md")

    def runs_unasked(
        self,
        tool_name: str,
        tool_input: dict[str, Any],
        permission_mode: str,
        folders: tuple[str, ...],
    ) -> bool:
        """As the CLI's built-ins: the mode's gate (permissions/modes.py), and Claude
        Code's plan file, which Read always and Write and Edit in plan mode touch
        unasked. Bash (a client terminal) only in bypassPermissions: a path in its
        input says nothing of what the command touches."""
        if tool_name == BASH:
            return permission_mode == modes.BYPASS
        raw = file_path(tool_input)
        plan_file = raw and self._plan_file(paths.absolute(raw, folders[0]))
        if plan_file and permission_mode != modes.BYPASS:
            return tool_name == READ or permission_mode == modes.PLAN
        verdict = modes.gate(tool_name, raw or None, permission_mode, folders, guarded_reads=True)
        return verdict == "allow"

    async def proposal(
        self, tool_name: str, tool_input: dict[str, Any], cwd: str
    ) -> Proposal | None:
        try:
            path, file, proposed = await self._proposed(tool_name, tool_input, cwd)
        except (EditError, EditorToolError) as exc:
            log.debug("no proposal for %s: %s", tool_name, exc)
            return None
        self._shown[(path, _key(tool_input))] = file.text if file.exists else None
        return make_proposal(path, file.exists, file.text, proposed, cwd)

    # -- the tools -------------------------------------------------------------------

    async def call(
        self, name: str, args: dict[str, Any], cwd: str, folders: Sequence[str] = ()
    ) -> str:
        # `folders` are not needed here: what runs unasked is `runs_unasked`'s question.
        if name not in self.replaces:
            raise EditorToolError(f"the editor does not offer {name}")
        if name == BASH and self.terminals is not None:
            return await self.terminals.run(args, cwd)
        if name == "Read":
            return await self._read_tool(args, cwd)
        try:
            path, file, proposed = await self._proposed(name, args, cwd)
        except EditError as exc:
            raise EditorToolError(str(exc)) from None
        before = file.text if file.exists else None
        shown = (path, _key(args))
        if shown in self._shown and self._shown.pop(shown) != before:
            # The user saw a diff against other text: what lands must be what was shown.
            raise EditorToolError(
                f"{display_path(path, cwd)} changed in the editor since the permission "
                "was asked; nothing was written. Read it again before editing it."
            )
        if self._plan_file(path):
            await asyncio.to_thread(_write_disk, path, proposed)
        else:
            await self._ask(WRITE_FILE, out.WriteTextFileRequest(self._session(), path, proposed))
        self._written[path] = (before, proposed)
        label = display_path(path, cwd)
        if not file.exists:
            return f"File created successfully at: {label}"
        return f"The file {label} has been updated successfully."

    def written(self, path: str) -> tuple[str | None, str] | None:
        """The text before and after this turn's latest write of `path` (None: none)."""
        return self._written.pop(path, None)

    async def _read_tool(self, args: dict[str, Any], cwd: str) -> str:
        path = paths.absolute(_path(args), cwd)
        offset = _positive(args, "offset") or 1
        limit = _positive(args, "limit") or MAX_READ_LINES
        if self._plan_file(path):
            file = await asyncio.to_thread(read_text, path)
            if file is None or not file.exists or file.text is None:
                raise EditorToolError(f"cannot read {display_path(path, cwd)}")
            lines = file.text.splitlines()[offset - 1 : offset - 1 + limit]
        else:
            params = out.ReadTextFileRequest(self._session(), path, offset, limit)
            lines = _content(await self._ask(READ_FILE, params)).splitlines()
        if not lines:
            return "(the file is empty)" if offset == 1 else f"(no lines from line {offset})"
        return "\n".join(
            f"{number:6}\t{line[:MAX_LINE_CHARS]}" for number, line in enumerate(lines, offset)
        )

    async def _proposed(
        self, tool_name: str, tool_input: dict[str, Any], cwd: str
    ) -> tuple[str, FileText, str]:
        path = paths.absolute(target_path(tool_input), cwd)
        file = await self._file(path)
        return proposed_text(tool_name, tool_input, cwd, file)

    async def _file(self, path: str) -> FileText:
        """The file as the editor has it; a file neither the editor nor the disk has is
        a new one."""
        if not self._plan_file(path):
            try:
                params = out.ReadTextFileRequest(self._session(), path)
                text = _content(await self._ask(READ_FILE, params))
                return FileText(exists=True, text=text, size=len(text.encode("utf-8")))
            except EditorToolError:
                if await asyncio.to_thread(os.path.lexists, path):
                    raise
                return FileText(exists=False, text="")
        file = await asyncio.to_thread(read_text, path)
        if file is None:
            raise EditorToolError(f"{path} is not a regular file that can be read")
        return file

    def _session(self) -> str:
        return self._session_id if isinstance(self._session_id, str) else self._session_id()

    async def _ask(
        self, method: str, params: out.ReadTextFileRequest | out.WriteTextFileRequest
    ) -> Any:
        return await ask_editor(
            self._conn.request(method, params), method, self._timeout, (RpcError,)
        )


def client_tools(
    conn: Connection,
    caps: acp.ClientCapabilities | None,
    config: SessionConfig,
    session_id: Callable[[], str] | None = None,
) -> ClientFiles | None:
    """A session's tools from what the client offered at `initialize`: its file system
    as Read/Write/Edit when it offers both reads and writes (with one of them only, the
    disk, as without) and the backend's file tools can be swapped (the Claude
    backend's; the OpenAI backend's run on disk), and its terminals as Bash (either
    backend's). None when neither."""
    fs = caps.fs if caps else None
    both = bool(fs and fs.read_text_file and fs.write_text_file)
    both = both and registry.BACKENDS[config.backend].client_file_tools
    terminal = bool(caps and caps.terminal)
    if not both and not terminal:
        return None
    return ClientFiles(
        conn, session_id or config.session_id, env=config.env, fs=both, terminal=terminal
    )


def _key(tool_input: dict[str, Any]) -> str:
    return json.dumps(tool_input, sort_keys=True, ensure_ascii=False)


def _path(args: dict[str, Any]) -> str:
    try:
        return target_path(args)
    except EditError:
        raise EditorToolError("file_path is required") from None


def _positive(args: dict[str, Any], key: str) -> int | None:
    value = args.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise EditorToolError(f"{key} must be a positive integer")
    return value


def _content(result: Any) -> str:
    content = result.get("content") if isinstance(result, dict) else None
    if not isinstance(content, str):
        raise EditorToolError(f"the editor's {READ_FILE} answer had no content")
    return content


def _write_disk(path: str, text: str) -> None:
    write_atomic(os.path.realpath(path), text.encode("utf-8"), 0o644)
