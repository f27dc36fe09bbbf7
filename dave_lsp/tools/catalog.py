"""The tool vocabulary: the names of Claude Code's built-in tools that dave-lsp knows,
which of them edit a file, which only read, and under which key a tool use names its path.

The one home of these facts (as claude-code-acp's tools.ts is for its agent): the
permission rules, the mode gate, the change recorder, the ACP updates, the Claude
backend's file hooks and the OpenAI backend's own tools all ask here. The OpenAI backend
runs a subset of these tools itself, under the same names and inputs
(backends/openai/tools.py), so whatever holds for Claude Code's tool holds for its.
"""

from __future__ import annotations

from typing import Any, Final

READ: Final = "Read"
WRITE: Final = "Write"
EDIT: Final = "Edit"
MULTI_EDIT: Final = "MultiEdit"
NOTEBOOK_EDIT: Final = "NotebookEdit"
NOTEBOOK_READ: Final = "NotebookRead"
BASH: Final = "Bash"
GLOB: Final = "Glob"
GREP: Final = "Grep"
LS: Final = "LS"
WEB_FETCH: Final = "WebFetch"
WEB_SEARCH: Final = "WebSearch"

# The MCP servers dave-lsp itself serves tools from: the ACP client's file system
# (`mcp__acp__Read`, ...). The editor's tools are tools/editor.py's `editor`.
CLIENT_FILES_SERVER: Final = "acp"

# In this order: the Claude backend's hook matcher is these names joined by "|".
_EDITS_IN_ORDER: Final = (WRITE, EDIT, MULTI_EDIT, NOTEBOOK_EDIT)

FILE_EDITS: Final = frozenset(_EDITS_IN_ORDER)
"""The tools that write a file: an `Edit(...)` rule covers all of them, the session
snapshots their file before they run, and their change is reviewed."""

FILE_EDIT_MATCHER: Final = "|".join(_EDITS_IN_ORDER)
"""The file-editing tools as a Claude Code hook matcher (`Write|Edit|MultiEdit|NotebookEdit`)."""

READ_ONLY: Final = frozenset({READ, GREP, GLOB, LS, NOTEBOOK_READ})
"""The tools that only read files: a `Read(...)` rule covers all of them, and they run
unasked on a path in the session's folder."""

SEARCHES: Final = frozenset({GREP, GLOB, LS})
"""The read-only tools that name a folder (`path`, the session's folder when absent)
rather than a file."""


def file_path(tool_input: dict[str, Any]) -> str:
    """The file a file tool names (`file_path`, or a notebook tool's `notebook_path`);
    "" when it names none."""
    value = tool_input.get("file_path") or tool_input.get("notebook_path") or ""
    return value if isinstance(value, str) else ""


def target_of(tool_name: str, tool_input: dict[str, Any]) -> str:
    """The path a tool use works on: a search's `path`, any other tool's `file_path`
    ("" when absent: the session's folder for a search)."""
    value = tool_input.get("path" if tool_name in SEARCHES else "file_path")
    return value if isinstance(value, str) else ""
