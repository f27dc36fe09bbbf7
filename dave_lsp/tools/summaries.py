"""Short, human summaries of tool results, by the protocol's rules.

Read `file (N lines)`; Write `file (N bytes)`; Edit `file`; Bash the command plus the
size of its output; Grep and Glob `'pattern'`; the editor's tools what was asked and how
many results came back; any other tool an empty string.
"""

from __future__ import annotations

import os
import re
from typing import Any

from dave_lsp import paths
from dave_lsp.tools import catalog


def display_path(path: str, cwd: str) -> str:
    """`path` relative to `cwd` when it lies inside it, else as given."""
    if not path:
        return path
    root = os.path.normpath(cwd)
    target = paths.absolute(path, root)
    return os.path.relpath(target, root) if paths.within(target, root) else path


def result_text(content: Any) -> str:
    """The text of a tool result's content: a string or a list of content blocks."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(block.get("text", "")) for block in content if isinstance(block, dict))
    return str(content)


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def format_tool_summary(
    tool_name: str,
    tool_input: dict[str, Any],
    output: str,
    structured: dict[str, Any] | None,
    cwd: str,
    is_error: bool = False,
) -> str:
    """The summary line for one finished tool use.

    A failed or denied tool did not do what its input says, so its summary is the
    tool's target and the first line of the error, never a size it did not write.
    """
    if is_error:
        target = describe_tool_use(tool_name, tool_input, cwd).removeprefix(tool_name).strip()
        reason = next((line.strip() for line in output.splitlines() if line.strip()), "failed")
        reason = reason if len(reason) <= 100 else reason[:99] + "…"
        return f"{target}: {reason}" if target else reason
    structured = structured if isinstance(structured, dict) else {}
    path = display_path(str(tool_input.get("file_path") or tool_input.get("path") or ""), cwd)
    if tool_name == catalog.READ:
        file_info = structured.get("file")
        if isinstance(file_info, dict) and isinstance(file_info.get("numLines"), int):
            lines = file_info["numLines"]
        else:
            numbered = output.splitlines()
            # The CLI numbers the empty line after a final newline too ("2\t").
            if numbered and re.fullmatch(r"\s*\d+\t", numbered[-1]):
                numbered.pop()
            lines = len(numbered)
        return f"{path} ({plural(lines, 'line')})"
    if tool_name == catalog.WRITE:
        size = len(str(tool_input.get("content", "")).encode("utf-8"))
        return f"{path} ({plural(size, 'byte')})"
    if tool_name in catalog.FILE_EDITS:  # Write is above
        return display_path(
            str(tool_input.get("file_path") or tool_input.get("notebook_path") or ""), cwd
        )
    if tool_name == catalog.BASH:
        if "stdout" in structured or "stderr" in structured:
            output = str(structured.get("stdout") or "") + str(structured.get("stderr") or "")
        size = len(output.encode("utf-8"))
        return f"{tool_input.get('command', '')} ({plural(size, 'byte')} of output)"
    if tool_name in (catalog.GREP, catalog.GLOB):
        return f"'{tool_input.get('pattern', '')}'"
    if tool_name.startswith("mcp__editor__"):
        # The editor's tools: what was asked, and how much came back.
        asked = tool_input.get("symbol") or tool_input.get("query") or path
        lines = [line for line in output.splitlines() if line and not line.startswith(" ")]
        answer = plural(len(lines), "result") if lines else "nothing"
        return f"{asked} ({answer})" if asked else f"({answer})"
    return ""


def describe_tool_use(tool_name: str, tool_input: dict[str, Any], cwd: str) -> str:
    """`Write notes.txt`, `Bash ls -la`: the tool and its main argument, for a prompt."""
    target = (
        tool_input.get("file_path") or tool_input.get("notebook_path") or tool_input.get("path")
    )
    if target:
        detail = display_path(str(target), cwd)
    elif "command" in tool_input:
        detail = str(tool_input["command"])
    elif "pattern" in tool_input:
        detail = f"'{tool_input['pattern']}'"
    elif "url" in tool_input:
        detail = str(tool_input["url"])
    else:
        detail = ""
    detail = " ".join(detail.split())
    if len(detail) > 120:
        detail = detail[:119] + "…"
    return f"{tool_name} {detail}".strip()
