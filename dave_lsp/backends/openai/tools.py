"""The tools the OpenAI-compatible backend runs itself, named and shaped as Claude Code's.

The model is offered `Read`, `Write`, `Edit`, `Bash`, `Glob` and `Grep` as function tools
(plus the editor's tools when the client offers them), and dave-lsp runs them in the
session's cwd. This module owns what each tool is (`specs`) and running it (`run`); the
tool loop (calls.py) owns the permission (the mode's gate is permissions/modes.py) and
the reports, and session.py the order. Their names and inputs are tools/catalog.py's.

Bounds, so one tool call cannot flood the model's context or hang the turn:

- Read returns at most `READ_MAX_LINES` lines per call (page with offset/limit), each cut
  at `READ_MAX_LINE_CHARS` characters, and at most `READ_MAX_BYTES` of text; a file over
  `review.files.MAX_READ_BYTES` (10 MiB) or not UTF-8 text is refused.
- Bash output (stdout and stderr together) keeps its first `BASH_HEAD_CHARS` and last
  `BASH_TAIL_CHARS` characters; the command runs in its own process group with a timeout
  (`timeout` in milliseconds as in Claude Code: default 120 s, at most 600 s) and the
  whole group is killed on timeout or cancel.
- Glob and Grep (search.py) run in a thread that ends at its next step when the turn is
  cancelled, and after `search.SEARCH_SECONDS` (10 s); they never walk into a symlinked
  folder (so `a -> .` cannot loop them). Glob lists at most `MAX_LISTED` files, newest
  first of those found; Grep at most `MAX_LISTED` matching lines, its regular expression
  on RE2 (linear time: `(a+)+$` cannot stall the server).
- No tool runs on the event loop: file work runs in threads, and Python code in a thread
  gives the interpreter back to the loop every few milliseconds (`dave/listSessions`
  answers while any tool runs).

Edit and Write work out the new text with proposals.proposed_text, the same code that
builds a permission request's proposal, so what lands is what the user was shown.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections import deque
from collections.abc import Callable
from typing import Any, Final

import attrs

from dave_lsp import paths
from dave_lsp.backends.openai import search
from dave_lsp.review.edits import EditError
from dave_lsp.review.files import MAX_READ_BYTES, decode_text
from dave_lsp.review.proposals import proposed_text
from dave_lsp.tools import catalog
from dave_lsp.tools.editor import EditorToolError, EditorTools
from dave_lsp.tools.schemas import edit_schema, read_schema, write_schema

READ_MAX_LINES: Final = 2000
READ_MAX_LINE_CHARS: Final = 2000
READ_MAX_BYTES: Final = 256 * 1024
BASH_HEAD_CHARS: Final = 10_000
BASH_TAIL_CHARS: Final = 20_000
BASH_DEFAULT_TIMEOUT_MS: Final = 120_000
BASH_MAX_TIMEOUT_MS: Final = 600_000
MAX_LISTED: Final = search.MAX_LISTED

BUILTIN: Final = frozenset(
    {catalog.READ, catalog.WRITE, catalog.EDIT, catalog.BASH, catalog.GLOB, catalog.GREP}
)
"""The tools this backend runs itself; the catalog says which read and which edit."""

PLAN_MODE_REASON: Final = (
    "The session is in plan mode: only read-only tools (Read, Glob, Grep and the editor's"
    " tools) run. Describe the plan instead; the user switches the mode to carry it out."
)

_PATH = "absolute path, or relative to the project folder"
_BUILTIN_SPECS: Final[list[tuple[str, str, dict[str, Any]]]] = [
    (
        catalog.READ,
        f"Read a text file. Lines come numbered (`number<TAB>text`); at most {READ_MAX_LINES}"
        " lines per call: use offset and limit to page through a longer file.",
        read_schema(_PATH),
    ),
    (
        catalog.WRITE,
        "Write a file, replacing it if it exists (parent folders are created).",
        write_schema(_PATH),
    ),
    (
        catalog.EDIT,
        "Replace old_string with new_string in a file. old_string must match exactly once"
        " (whitespace included) unless replace_all is true; an empty old_string creates a"
        " new file with new_string.",
        edit_schema(_PATH),
    ),
    (
        catalog.BASH,
        "Run a shell command (bash -c) in the project folder; stdout and stderr come back"
        " together, with the exit code when it is not 0.",
        {
            "type": "object",
            "properties": {
                "command": {"type": "string"},
                "timeout": {
                    "type": "integer",
                    "description": f"milliseconds (default {BASH_DEFAULT_TIMEOUT_MS},"
                    f" at most {BASH_MAX_TIMEOUT_MS})",
                },
            },
            "required": ["command"],
        },
    ),
    (
        catalog.GLOB,
        "Find files by glob pattern (`**/*.py`), newest first.",
        {
            "type": "object",
            "properties": {
                "pattern": {"type": "string"},
                "path": {"type": "string", "description": "folder to search (default: project)"},
            },
            "required": ["pattern"],
        },
    ),
    (
        catalog.GREP,
        "Search file contents with a regular expression; answers `path:line: text` lines.",
        {
            "type": "object",
            "properties": {
                "pattern": {
                    "type": "string",
                    "description": "an RE2 regular expression (no backreferences or lookaround)",
                },
                "path": {"type": "string", "description": "file or folder (default: project)"},
                "glob": {"type": "string", "description": "only files matching, e.g. *.py"},
            },
            "required": ["pattern"],
        },
    ),
]


def specs(editor: EditorTools | None) -> list[dict[str, Any]]:
    """The `tools` of a chat-completions request: the built-in tools, then the editor's."""
    listed = [(name, text, schema) for name, text, schema in _BUILTIN_SPECS]
    if editor is not None:
        listed += [(s.name, s.description, s.input_schema) for s in editor.specs()]
    return [
        {"type": "function", "function": {"name": n, "description": d, "parameters": p}}
        for n, d, p in listed
    ]


def is_editor_tool(name: str, editor: EditorTools | None) -> bool:
    return editor is not None and any(s.name == name for s in editor.specs())


@attrs.frozen
class Output:
    """A tool's result: the text for the model, whether it failed, and what the summary
    needs (summaries.format_tool_summary's `structured`)."""

    text: str
    is_error: bool = False
    structured: dict[str, Any] | None = None


class ToolInputError(ValueError):
    """The model's input does not fit the tool; the message is for the model."""


async def run(
    name: str,
    tool_input: dict[str, Any],
    cwd: str,
    env: dict[str, str],
    editor: EditorTools | None,
    on_output: Callable[[str], None] | None = None,
    folders: tuple[str, ...] = (),
) -> Output:
    """Run one tool use; every failure the model can act on is an error `Output`.
    `on_output` gets Bash output as it arrives; `folders`: the session's additional
    directories, inside it for the editor's tools as its cwd is."""
    try:
        match name:
            case catalog.READ:
                return await asyncio.to_thread(_read, tool_input, cwd)
            case catalog.WRITE | catalog.EDIT:
                return await asyncio.to_thread(_write, name, tool_input, cwd)
            case catalog.BASH:
                return await _bash(tool_input, cwd, env, on_output)
            case catalog.GLOB:
                return await _searching(_glob, tool_input, cwd)
            case catalog.GREP:
                return await _searching(_grep, tool_input, cwd)
        if editor is not None and is_editor_tool(name, editor):
            return Output(await editor.call(name, tool_input, cwd, folders))
        return Output(f"No such tool: {name}.", is_error=True)
    except (ToolInputError, EditError, EditorToolError) as exc:
        return Output(str(exc), is_error=True)
    except OSError as exc:
        return Output(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), is_error=True)


async def _searching(
    search_in: Callable[[dict[str, Any], str, search.Stop], Output],
    tool_input: dict[str, Any],
    cwd: str,
) -> Output:
    """Run a search in a thread (off the event loop), stopped when the awaiting task is
    cancelled: a thread cannot be cancelled, so it is told to end at its next step."""
    stop = search.Stop()
    try:
        return await asyncio.to_thread(search_in, tool_input, cwd, stop)
    finally:
        stop.cancel()


def _text_arg(tool_input: dict[str, Any], key: str, required: bool = True) -> str:
    value = tool_input.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise ToolInputError(f"{key} must be a non-empty string")
    return value


def _int_arg(tool_input: dict[str, Any], key: str) -> int | None:
    value = tool_input.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ToolInputError(f"{key} must be a non-negative integer")
    return int(value)


def _label(path: str, cwd: str) -> str:
    relative = os.path.relpath(path, cwd)
    return path if relative.startswith("..") else relative


# ---------------------------------------------------------------- Read


def _read(tool_input: dict[str, Any], cwd: str) -> Output:
    path = paths.absolute(_text_arg(tool_input, "file_path"), cwd)
    offset = max(_int_arg(tool_input, "offset") or 1, 1)
    limit = min(_int_arg(tool_input, "limit") or READ_MAX_LINES, READ_MAX_LINES)
    if os.path.isdir(path):
        raise ToolInputError(f"{path} is a folder; use Glob or Bash ls to list it")
    if os.path.getsize(path) > MAX_READ_BYTES:
        raise ToolInputError(
            f"{path} is over {MAX_READ_BYTES // (1024 * 1024)} MiB; use Grep to find the part"
        )
    with open(path, "rb") as handle:
        text = decode_text(handle.read())
    if text is None:
        raise ToolInputError(f"{path} is not UTF-8 text")
    lines = text.splitlines()
    chosen = lines[offset - 1 : offset - 1 + limit]
    out: list[str] = []
    size = 0
    for number, line in enumerate(chosen, start=offset):
        if len(line) > READ_MAX_LINE_CHARS:
            line = line[:READ_MAX_LINE_CHARS] + " … (line cut)"
        entry = f"{number:>6}\t{line}"
        size += len(entry.encode("utf-8")) + 1
        if size > READ_MAX_BYTES:
            break
        out.append(entry)
    shown = len(out)
    last = offset + shown - 1
    if shown < len(lines) - (offset - 1):
        out.append(
            f"… (showed lines {offset}-{last} of {len(lines)}; read on with offset {last + 1})"
        )
    if not lines:
        out.append("(the file is empty)")
    return Output("\n".join(out), structured={"file": {"numLines": shown}})


# ---------------------------------------------------------------- Write and Edit


def _write(name: str, tool_input: dict[str, Any], cwd: str) -> Output:
    path, _file, text = proposed_text(name, tool_input, cwd)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    # newline="": the text already has the line endings the file is to keep (CRLF files
    # stay CRLF, as proposed_text worked out).
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
    verb = "Wrote" if name == catalog.WRITE else "Edited"
    return Output(f"{verb} {_label(path, cwd)}.")


# ---------------------------------------------------------------- Bash


class _Capture:
    """Bounded command output: the head, and a rolling tail of what came after it."""

    def __init__(self) -> None:
        self.head: list[str] = []
        self.head_size = 0
        self.tail: deque[str] = deque()
        self.tail_size = 0
        self.dropped = 0

    def add(self, text: str) -> None:
        room = BASH_HEAD_CHARS - self.head_size
        if room > 0:
            self.head.append(text[:room])
            self.head_size += len(text[:room])
            text = text[room:]
        if not text:
            return
        self.tail.append(text)
        self.tail_size += len(text)
        while self.tail_size > BASH_TAIL_CHARS:
            first = self.tail.popleft()
            excess = self.tail_size - BASH_TAIL_CHARS
            if len(first) > excess:
                self.tail.appendleft(first[excess:])
                self.dropped += excess
                self.tail_size -= excess
            else:
                self.dropped += len(first)
                self.tail_size -= len(first)

    def text(self) -> str:
        head, tail = "".join(self.head), "".join(self.tail)
        if self.dropped:
            return f"{head}\n… ({self.dropped} characters of output cut) …\n{tail}"
        return head + tail


async def _bash(
    tool_input: dict[str, Any],
    cwd: str,
    env: dict[str, str],
    on_output: Callable[[str], None] | None,
) -> Output:
    command = _text_arg(tool_input, "command")
    timeout_ms = _int_arg(tool_input, "timeout") or BASH_DEFAULT_TIMEOUT_MS
    timeout = min(timeout_ms, BASH_MAX_TIMEOUT_MS) / 1000
    process = await asyncio.create_subprocess_exec(
        "/bin/bash",
        "-c",
        command,
        cwd=cwd,
        env={**os.environ, **env},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        # Its own process group, so a timeout or cancel ends everything it started.
        start_new_session=True,
    )
    capture = _Capture()
    assert process.stdout is not None
    stdout = process.stdout

    async def drain() -> None:
        while chunk := await stdout.read(65536):
            text = chunk.decode("utf-8", "replace")
            capture.add(text)
            if on_output is not None:
                on_output(text)

    timed_out = False
    try:
        try:
            async with asyncio.timeout(timeout):
                await drain()
                await process.wait()
        except TimeoutError:
            timed_out = True
    finally:
        if process.returncode is None:
            _kill_group(process.pid)
            # Shielded: the process must be reaped even when the turn is being cancelled.
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(process.wait())
    output = capture.text()
    if timed_out:
        line = f"Command timed out after {timeout:g} s and was killed."
        return Output(_then(output, line), is_error=True, structured={"stdout": output})
    code = process.returncode
    if code:
        return Output(
            _then(output, f"Exit code {code}"), is_error=True, structured={"stdout": output}
        )
    return Output(output or "(no output)", structured={"stdout": output})


def _then(output: str, line: str) -> str:
    """`line` on a line of its own after the output."""
    return f"{output}{'' if not output or output.endswith(chr(10)) else chr(10)}{line}"


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


# ---------------------------------------------------------------- Glob and Grep


def _search_root(tool_input: dict[str, Any], cwd: str) -> str:
    root = paths.absolute(_text_arg(tool_input, "path", required=False) or ".", cwd)
    if not os.path.exists(root):
        raise ToolInputError(f"{root} does not exist")
    return root


def _glob(tool_input: dict[str, Any], cwd: str, stop: search.Stop) -> Output:
    pattern = _text_arg(tool_input, "pattern")
    root = _search_root(tool_input, cwd)
    # A pattern such as `../**` or a symlink must not list what lies outside the folder
    # the permission covered: search.glob finds nothing there.
    found, note = search.glob(pattern, root, stop)
    files = search.newest_first(found[:MAX_LISTED])
    if not files:
        return Output(note or "No files found.")
    shown = [_label(p, cwd) for p in files]
    if note:
        shown.append(note)
    return Output("\n".join(shown))


def _grep(tool_input: dict[str, Any], cwd: str, stop: search.Stop) -> Output:
    try:
        regex = search.compile_regex(_text_arg(tool_input, "pattern"))
    except search.SearchError as exc:
        raise ToolInputError(str(exc)) from None
    only = _text_arg(tool_input, "glob", required=False)
    root = _search_root(tool_input, cwd)
    hits, total, note = search.grep(regex, root, only, cwd, stop)
    if total > MAX_LISTED:
        hits.append(f"… and {total - MAX_LISTED} more matches; narrow the pattern")
    if note:
        hits.append(note)
    if not total:
        return Output("\n".join(["No matches found.", *([note] if note else [])]))
    return Output("\n".join(hits))
