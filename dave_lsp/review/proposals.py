"""What a file tool would write, worked out before it runs, for review in the editor.

`proposal_for` applies a Write, Edit or MultiEdit input to the file's text now, the way
the Claude Code CLI does (edits.py), so the editor can show the whole proposed text and
a diff in the permission prompt. Where we cannot be sure of what the tool will write,
there is no proposal and the server asks as before:

- Edit and MultiEdit: as edits.py applies them.
- Write writes `content` as sent (no line-ending change), keeping a UTF-8 BOM the file
  had.
- NotebookEdit: no proposal (it edits JSON cells; the result is not a text edit).

A binary file's proposal says so without content. A proposal carries the whole texts
when each side is at most `MAX_SIDE_BYTES` (256 KiB); above that it says `truncated`
and carries the diff only, itself at most `MAX_DIFF_BYTES` (256 KiB, cut at a line);
above `MAX_DIFF_SOURCE_BYTES` (2 MiB) a side is not diffed at all (diff.py).
"""

from __future__ import annotations

import logging
from typing import Any

import attrs

from dave_lsp.review.diff import (
    MAX_DIFF_BYTES,
    MAX_DIFF_SOURCE_BYTES,
    MAX_SIDE_BYTES,
    cut_diff,
    unified_diff,
)
from dave_lsp.review.edits import EditError, edited_text
from dave_lsp.review.files import (
    FileText,
    read_text,
    resolved_path,
)
from dave_lsp.tools.summaries import display_path

log = logging.getLogger(__name__)

_BOM = "\ufeff"


@attrs.frozen
class Proposal:
    """What a file tool would write: the wire's `permissionRequest.proposal`.

    `original` and `proposed` are None when the file is binary or a side is over
    `MAX_SIDE_BYTES` (then `binary` or `truncated` says which)."""

    path: str
    exists: bool
    original: str | None
    proposed: str | None
    diff: str
    truncated: bool = False
    binary: bool = False


def make_proposal(
    path: str, exists: bool, original: str | None, proposed: str, cwd: str
) -> Proposal:
    """The proposal for writing `proposed` over `original` (None: a binary file)."""
    if original is None:
        return Proposal(path, exists, None, None, "", binary=True)
    label = display_path(path, cwd)
    sizes = (len(original.encode("utf-8")), len(proposed.encode("utf-8")))
    if max(sizes) > MAX_DIFF_SOURCE_BYTES:
        return Proposal(path, exists, None, None, "", truncated=True)
    diff, cut = cut_diff(
        unified_diff(original, proposed, label, created=not exists), MAX_DIFF_BYTES
    )
    if cut or max(sizes) > MAX_SIDE_BYTES:
        return Proposal(path, exists, None, None, diff, truncated=True)
    return Proposal(path, exists, original, proposed, diff)


def proposed_text(
    tool_name: str, tool_input: dict[str, Any], cwd: str, file: FileText | None = None
) -> tuple[str, FileText, str]:
    """(resolved path, the file now, its whole text after the tool) for a Write, Edit or
    MultiEdit; EditError when the tool would refuse or we cannot tell. `file` is the
    file's text when it comes from elsewhere than the disk (an editor's buffer)."""
    # Resolved: a link's proposal is its target's change, and the tool writes the target
    # (the link stays a link).
    path = resolved_path(target_path(tool_input), cwd)
    file = read_text(path) if file is None else file
    if file is None:
        raise EditError("not a regular file we can read, or too large")
    if tool_name == "Write":
        content = tool_input.get("content")
        if not isinstance(content, str):
            raise EditError("content must be a string")
        if file.text and file.text.startswith(_BOM) and content and not content.startswith(_BOM):
            content = _BOM + content
        return path, file, content
    if tool_name not in ("Edit", "MultiEdit"):
        raise EditError(f"{tool_name} has no text proposal")
    if file.binary:
        raise EditError("binary file")
    return path, file, edited_text(path, file, tool_input)


def target_path(tool_input: dict[str, Any]) -> str:
    """A file tool's `file_path` as given; EditError without one."""
    raw_path = tool_input.get("file_path")
    if not isinstance(raw_path, str) or not raw_path:
        raise EditError("no file_path")
    return raw_path


def proposal_for(
    tool_name: str, tool_input: dict[str, Any], cwd: str, file: FileText | None = None
) -> Proposal | None:
    """The proposal for this tool use, or None: not a text file tool (NotebookEdit
    included), or an edit the tool would refuse, so the server asks without one."""
    try:
        path, file, proposed = proposed_text(tool_name, tool_input, cwd, file)
    except EditError as exc:
        log.debug("no proposal for %s: %s", tool_name, exc)
        return None
    return make_proposal(path, file.exists, file.text, proposed, cwd)
