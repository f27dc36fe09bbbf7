"""The editor's language intelligence as the model's tools (read-only).

A client lists what it can answer in `initialize`
(`capabilities.experimental.dave.editorTools`); for each, the model gets one tool, with
inputs a model can fill in (a path, a symbol, a 1-based line). A call becomes a
server-to-client request `dave/editor/<capability>` with LSP-shaped params, and the
client's LSP-shaped answer becomes compact text for the model: paths relative to the
session's cwd, 1-based lines, the source line.

The model gets text only from files inside the session's folders (its cwd and its
additional directories; symlinks resolved, paths.py): these tools run unasked in every
mode, while Read of a file outside them asks. A path the model names outside them is
refused, and a place the editor's answer points to outside them (another project, a
link to one, a non-file buffer) is named by path and line with "outside the session's
folder: read it with Read (asks)" and none of its text: no source line, no diagnostic
message (a linter may quote the line), no selected text. Hover text is the language
server's description of a symbol at a place in the folders, not a file's text, and is
returned as it is.

Backend-neutral: the Claude backend serves these through an in-process SDK MCP server
named `editor` (so `mcp__editor__getDiagnostics`, ...); another backend can offer the
same `specs()` as its own function tools. `ToolServer` is that shape; an ACP client's
file system (acp/files.py, a `FileTools`) is served the same way.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import attrs

from dave_lsp import paths
from dave_lsp.paths import OUTSIDE, inside_any
from dave_lsp.review.proposals import Proposal
from dave_lsp.tools.summaries import display_path

SERVER_NAME = "editor"
TOOL_PREFIX = f"mcp__{SERVER_NAME}__"
REQUEST_TIMEOUT = 10.0
MAX_RESULTS = 50  # locations, symbols or diagnostics listed; the rest are counted
MAX_TEXT = 8000  # characters of hover text or a selection


class EditorToolError(Exception):
    """A call the editor could not answer; the message is for the model."""


@attrs.frozen
class ToolSpec:
    """One editor tool as the model sees it."""

    capability: str  # the client's word in editorTools, and the request's suffix
    name: str  # the model-facing name (mcp__editor__<name> for Claude)
    description: str
    input_schema: dict[str, Any]


_PATH = {"type": "string", "description": "file path, absolute or relative to the project"}
_SYMBOL_INPUT = {
    "type": "object",
    "properties": {
        "path": _PATH,
        "symbol": {"type": "string", "description": "the identifier to look up"},
        "line": {
            "type": "integer",
            "description": "1-based line where the symbol appears (default: its first use)",
        },
    },
    "required": ["path", "symbol"],
}
_NO_INPUT: dict[str, Any] = {"type": "object", "properties": {}}

SPECS: dict[str, ToolSpec] = {
    spec.capability: spec
    for spec in (
        ToolSpec(
            "diagnostics",
            "getDiagnostics",
            "The editor's current diagnostics (errors, warnings) from its language servers "
            "and linters, for one file or every open file.",
            {"type": "object", "properties": {"path": _PATH}},
        ),
        ToolSpec(
            "definition",
            "findDefinition",
            "Where a symbol is defined, from the editor's language server.",
            _SYMBOL_INPUT,
        ),
        ToolSpec(
            "references",
            "findReferences",
            "Every reference to a symbol across the project, from the editor's language server.",
            _SYMBOL_INPUT,
        ),
        ToolSpec(
            "symbols",
            "searchSymbols",
            "Search the project's symbols (classes, functions, ...) by name, from the "
            "editor's language servers.",
            {
                "type": "object",
                "properties": {"query": {"type": "string", "description": "part of a name"}},
                "required": ["query"],
            },
        ),
        ToolSpec(
            "hover",
            "hover",
            "The editor's hover for a symbol: its type, signature and documentation.",
            _SYMBOL_INPUT,
        ),
        ToolSpec(
            "openEditors",
            "getOpenEditors",
            "The files open in the editor, which one is active and which have unsaved changes.",
            _NO_INPUT,
        ),
        ToolSpec(
            "selection",
            "getCurrentSelection",
            "The user's current selection in the editor: file, range and text.",
            _NO_INPUT,
        ),
    )
}
CAPABILITIES = tuple(SPECS)
_BY_NAME = {spec.name: spec for spec in SPECS.values()}
_SEVERITY = {1: "error", 2: "warning", 3: "info", 4: "hint"}
_SYMBOL_KIND = {
    1: "file", 2: "module", 3: "namespace", 4: "package", 5: "class", 6: "method",
    7: "property", 8: "field", 9: "constructor", 10: "enum", 11: "interface",
    12: "function", 13: "variable", 14: "constant", 15: "string", 16: "number",
    17: "boolean", 18: "array", 19: "object", 20: "key", 21: "null", 22: "enum member",
    23: "struct", 24: "event", 25: "operator", 26: "type parameter",
}  # fmt: skip

Request = Callable[[str, Any], Awaitable[Any]]


class ToolServer(Protocol):
    """Tools the model gets from an in-process server named `server_name`; a call's
    text goes back to the model, an EditorToolError's message as an error result."""

    @property
    def server_name(self) -> str: ...

    def specs(self) -> list[ToolSpec]: ...

    async def call(
        self, name: str, args: dict[str, Any], cwd: str, folders: Sequence[str] = ()
    ) -> str:
        """`cwd`: the session's; `folders`: its additional directories (ACP's
        additionalDirectories), inside the session as its cwd is."""
        ...


class FileTools(ToolServer, Protocol):
    """A `ToolServer` whose tools stand in for built-in file tools (`replaces`: their
    names, which are also the tools' own): the backend disables those built-ins, and
    the session layer sees these under the built-in names, so rules, proposals and
    summaries apply as they are."""

    @property
    def replaces(self) -> tuple[str, ...]: ...

    def runs_unasked(
        self,
        tool_name: str,
        tool_input: dict[str, Any],
        permission_mode: str,
        folders: tuple[str, ...],
    ) -> bool:
        """Whether the backend's own tool would run without asking in this mode, in the
        session's `folders` (the CLI asks for every MCP tool, whatever the mode)."""
        ...

    async def proposal(
        self, tool_name: str, tool_input: dict[str, Any], cwd: str
    ) -> Proposal | None:
        """What a Write or Edit would write, from the file system these tools use."""
        ...


def method_for(capability: str) -> str:
    return f"dave/editor/{capability}"


def uri_of(path: str) -> str:
    return Path(path).as_uri()


def path_of(uri: str) -> str:
    parts = urlsplit(uri)
    return unquote(parts.path) if parts.scheme == "file" else uri


class EditorTools:
    """The editor tools of one server: the client's capabilities and how to reach it."""

    server_name = SERVER_NAME

    def __init__(
        self, capabilities: Sequence[str], request: Request, timeout: float = REQUEST_TIMEOUT
    ) -> None:
        self.capabilities = tuple(c for c in CAPABILITIES if c in set(capabilities))
        self._request = request
        self._timeout = timeout

    def specs(self) -> list[ToolSpec]:
        return [SPECS[c] for c in self.capabilities]

    async def call(
        self, name: str, args: dict[str, Any], cwd: str, folders: Sequence[str] = ()
    ) -> str:
        """Run the tool `name` (model-facing) for the model; EditorToolError otherwise."""
        spec = _BY_NAME.get(name.removeprefix(TOOL_PREFIX))
        if spec is None or spec.capability not in self.capabilities:
            raise EditorToolError(f"the editor does not offer {name}")
        view = _View(cwd, folders)
        match spec.capability:
            case "diagnostics":
                path = _optional_str(args, "path")
                params: dict[str, Any] = {"uri": uri_of(view.in_folder(path))} if path else {}
                return view.diagnostics(await self._ask(spec, params))
            case "definition" | "references" | "hover":
                path = view.in_folder(_required_str(args, "path"))
                position = await asyncio.to_thread(
                    find_symbol, path, _required_str(args, "symbol"), _line(args)
                )
                params = {"textDocument": {"uri": uri_of(path)}, "position": position}
                if spec.capability == "references":
                    params["context"] = {"includeDeclaration": True}
                answer = await self._ask(spec, params)
                if spec.capability == "hover":
                    return view.hover(answer)
                return await asyncio.to_thread(view.locations, answer)
            case "symbols":
                answer = await self._ask(spec, {"query": _required_str(args, "query")})
                return await asyncio.to_thread(view.symbols, answer)
            case "openEditors":
                return view.open_editors(await self._ask(spec, {}))
            case _:
                return view.selection(await self._ask(spec, {}))

    async def _ask(self, spec: ToolSpec, params: dict[str, Any]) -> Any:
        method = method_for(spec.capability)
        return await ask_editor(self._request(method, params), method, self._timeout)


async def ask_editor(
    answer: Awaitable[Any],
    method: str,
    within: float,
    failures: tuple[type[Exception], ...] = (Exception,),
) -> Any:
    """The editor's answer to a request within `within` s; EditorToolError, which the
    model reads, when it is late or one of `failures` (the editor tools here and the ACP
    client's file tools ask the same way)."""
    try:
        return await asyncio.wait_for(answer, within)
    except TimeoutError:
        raise EditorToolError(f"the editor did not answer {method} within {within:g} s") from None
    except failures as exc:
        raise EditorToolError(f"the editor could not answer {method}: {exc}") from None


def _optional_str(args: dict[str, Any], key: str) -> str | None:
    value = args.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise EditorToolError(f"{key} must be a string")
    return value


def _required_str(args: dict[str, Any], key: str) -> str:
    value = _optional_str(args, key)
    if value is None:
        raise EditorToolError(f"{key} is required")
    return value


def _line(args: dict[str, Any]) -> int | None:
    value = args.get("line")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise EditorToolError("line must be a 1-based line number")
    return value


def find_symbol(path: str, symbol: str, line: int | None) -> dict[str, int]:
    """The LSP position (0-based line, UTF-16 character) of `symbol` in the file: its
    first whole-word occurrence on `line` (1-based) or, without a line, in the file."""
    try:
        lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise EditorToolError(f"cannot read {path}: {exc.strerror or exc}") from None
    word = re.compile(rf"(?<![\w$]){re.escape(symbol)}(?![\w$])")
    indices = [line - 1] if line is not None else range(len(lines))
    for index in indices:
        # Whole words only: `greet` is not the start of `greeting`.
        match = word.search(lines[index]) if 0 <= index < len(lines) else None
        if match is not None:
            before = lines[index][: match.start()]
            return {"line": index, "character": len(before.encode("utf-16-le")) // 2}
    where = f"on line {line}" if line is not None else "anywhere"
    raise EditorToolError(f"{symbol!r} does not appear {where} in {path}")


class _View:
    """LSP answers as compact text for the model."""

    def __init__(self, cwd: str, folders: Sequence[str] = ()) -> None:
        self.cwd = cwd
        self.folders = (cwd, *folders)  # the session's: a path in any is inside
        self._lines: dict[str, list[str]] = {}

    def absolute(self, path: str) -> str:
        return paths.absolute(path, self.cwd)

    def in_folder(self, path: str) -> str:
        """The model's `path`, absolute; EditorToolError when it lies outside the folders."""
        absolute = self.absolute(path)
        if not inside_any(absolute, self.folders):
            raise EditorToolError(f"{path}: {OUTSIDE}")
        return absolute

    def readable(self, uri: str) -> bool:
        """Whether the model may see text of the file at `uri`: a file in the folders."""
        path = path_of(uri)
        return uri.startswith("file:") and os.path.isabs(path) and inside_any(path, self.folders)

    def label(self, uri: str) -> str:
        return display_path(path_of(uri), self.cwd)

    def source_line(self, uri: str, line: int) -> str:
        """The text of the line, stripped; OUTSIDE for a file the model may not see."""
        if not self.readable(uri):
            return OUTSIDE
        path = path_of(uri)
        if path not in self._lines:
            try:
                text = Path(path).read_text(encoding="utf-8", errors="replace")
                self._lines[path] = text.splitlines()
            except OSError:
                self._lines[path] = []
        lines = self._lines[path]
        return lines[line].strip() if 0 <= line < len(lines) else ""

    def _where(self, uri: str, range_: Any) -> tuple[str, int]:
        start = (range_ or {}).get("start") or {}
        line = int(start.get("line") or 0)
        return f"{self.label(uri)}:{line + 1}:{int(start.get('character') or 0) + 1}", line

    def locations(self, answer: Any) -> str:
        if isinstance(answer, dict):
            answer = [answer]
        if not answer:
            return "No results."
        out = []
        for item in answer[:MAX_RESULTS]:
            if not isinstance(item, dict):
                continue
            uri = item.get("uri") or item.get("targetUri") or ""
            range_ = (
                item.get("range") or item.get("targetSelectionRange") or item.get("targetRange")
            )
            where, line = self._where(uri, range_)
            out.append(f"{where}: {self.source_line(uri, line)}".rstrip())
        return _listed(out, len(answer))

    def diagnostics(self, answer: Any) -> str:
        files = (answer or {}).get("files") if isinstance(answer, dict) else None
        out: list[str] = []
        total = 0
        for entry in files or []:
            uri = str(entry.get("uri") or "")
            for diagnostic in entry.get("diagnostics") or []:
                total += 1
                if len(out) >= MAX_RESULTS:
                    continue
                where, line = self._where(uri, diagnostic.get("range"))
                severity = _SEVERITY.get(diagnostic.get("severity") or 1, "error")
                source = diagnostic.get("source")
                code = diagnostic.get("code")
                tag = f" [{source}{f' {code}' if code not in (None, '') else ''}]" if source else ""
                if not self.readable(uri):  # the message may quote the file
                    out.append(f"{where}: {severity}{tag}: {OUTSIDE}")
                    continue
                message = " ".join(str(diagnostic.get("message") or "").split())
                text = self.source_line(uri, line)
                out.append(
                    f"{where}: {severity}{tag}: {message}" + (f"\n    {text}" if text else "")
                )
        if not total:
            return "No diagnostics."
        return _listed(out, total)

    def symbols(self, answer: Any) -> str:
        if not answer:
            return "No symbols found."
        out = []
        for item in answer[:MAX_RESULTS]:
            location = item.get("location") or {}
            uri = location.get("uri") or ""
            kind = _SYMBOL_KIND.get(item.get("kind") or 0, "symbol")
            container = f" in {item['containerName']}" if item.get("containerName") else ""
            if location.get("range"):
                where, line = self._where(uri, location.get("range"))
                out.append(
                    f"{kind} {item.get('name')}{container} at {where}: "
                    f"{self.source_line(uri, line)}".rstrip()
                )
            else:
                where = self.label(uri) + ("" if self.readable(uri) else f": {OUTSIDE}")
                out.append(f"{kind} {item.get('name')}{container} in {where}")
        return _listed(out, len(answer))

    def hover(self, answer: Any) -> str:
        contents = (answer or {}).get("contents") if isinstance(answer, dict) else None
        text = _hover_text(contents).strip()
        if not text:
            return "No hover information."
        return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "\n… (cut)"

    def open_editors(self, answer: Any) -> str:
        editors = (answer or {}).get("editors") if isinstance(answer, dict) else None
        if not editors:
            return "No files are open."
        out = []
        for editor in editors:
            uri = str(editor.get("uri") or "")
            marks = [
                m
                for m, on in (
                    ("active", editor.get("isActive")),
                    ("unsaved changes", editor.get("isDirty")),
                    ("outside the session's folder", not self.readable(uri)),
                )
                if on
            ]
            language = f" ({editor['languageId']})" if editor.get("languageId") else ""
            suffix = f" [{', '.join(marks)}]" if marks else ""
            out.append(f"{self.label(uri)}{language}{suffix}")
        return "\n".join(out)

    def selection(self, answer: Any) -> str:
        if not isinstance(answer, dict) or not answer.get("uri"):
            return "Nothing is selected."
        range_ = answer.get("range") or {}
        start = (range_.get("start") or {}).get("line", 0) + 1
        end_at = range_.get("end") or {}
        end = end_at.get("line", 0) + 1
        if end_at.get("character") == 0 and end > start:
            end -= 1  # as context.py: a selection ending at column 0 does not take that line
        text = str(answer.get("text") or "")
        if len(text) > MAX_TEXT:
            text = text[:MAX_TEXT] + "\n… (cut)"
        where = f"line {start}" if start == end else f"lines {start}-{end}"
        head = f"{self.label(str(answer['uri']))}, {where}"
        if not self.readable(str(answer["uri"])):
            return f"{head}: {OUTSIDE}"  # what the user sees, yet not the folder's
        return f"{head}:\n{text}" if text else f"{head} (no text selected)"


def _listed(lines: list[str], total: int) -> str:
    if total > len(lines):
        lines = [*lines, f"… and {total - len(lines)} more"]
    return "\n".join(lines)


def _hover_text(contents: Any) -> str:
    if isinstance(contents, str):
        return contents
    if isinstance(contents, dict):
        return str(contents.get("value") or "")
    if isinstance(contents, list):
        return "\n\n".join(_hover_text(part) for part in contents)
    return ""
