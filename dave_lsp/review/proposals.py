"""What a file tool would write, worked out before it runs, for review in the editor.

`proposal_for` applies a Write, Edit or MultiEdit input to the file's text now, the way
the Claude Code CLI does (read from the bundled CLI, 2.1.332), so the editor can show the
whole proposed text and a diff in the permission prompt. Where we cannot be sure of what
the tool will write, there is no proposal and the server asks as before:

- Edit and MultiEdit read the file with CRLF turned into LF, find `old_string` (exactly,
  else with curly quotes read as straight ones, giving the file's own quotes back in
  `new_string`), strip trailing whitespace from each line of `new_string` unless the
  file is Markdown, and write with the file's line endings (CRLF when CRLF outnumbers
  bare LF in its first 4096 characters). The CLI's last resort, matching `\\uXXXX`
  escapes, is not copied: such an edit gets no proposal.
- Write writes `content` as sent (no line-ending change), keeping a UTF-8 BOM the file
  had.
- NotebookEdit: no proposal (it edits JSON cells; the result is not a text edit).

Text is UTF-8 only: a file with a NUL byte or bytes that are not UTF-8 is binary, and
its proposal says so without content. Sizes (UTF-8 bytes): a proposal carries the
whole texts when each side is at most `MAX_SIDE_BYTES` (256 KiB); above that it says
`truncated` and carries the diff only, itself at most `MAX_DIFF_BYTES` (256 KiB, cut at
a line); above `MAX_DIFF_SOURCE_BYTES` (2 MiB) a side is not diffed at all.

Diffs are unified diffs with 3 lines of context, labelled with the path relative to the
session's cwd (no `a/` `b/` prefix, so `patch -p0` applies them from the cwd), with
`/dev/null` for a missing side and `\\ No newline at end of file` where it applies.
Lines keep their own endings, so a CRLF file's diff lines end in CR LF. The hunks come
from `diff_hunks`, which review/changes.py also uses, so hunk indices on the wire match what
`revert` applies.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import stat
from collections.abc import Sequence
from typing import Any

import attrs

from dave_lsp import paths
from dave_lsp.tools.summaries import display_path

log = logging.getLogger(__name__)

MAX_SIDE_BYTES = 256 * 1024
MAX_DIFF_BYTES = 256 * 1024
MAX_DIFF_SOURCE_BYTES = 2 * 1024 * 1024
# The CLI refuses to edit a file above 10 MiB; nothing above it is read here.
MAX_READ_BYTES = 10 * 1024 * 1024
# What the model is told when the user edited its proposal: about 2k tokens at most.
MAX_FEEDBACK_DIFF_CHARS = 8000
CONTEXT_LINES = 3

_BOM = "\ufeff"
# The CLI's "desanitization": tags the API spells short in the model's view of a file.
_DESANITIZE = {
    "<fnr>": "<function_results>",
    "<n>": "<name>",
    "</n>": "</name>",
    "<o>": "<output>",
    "</o>": "</output>",
    "<e>": "<error>",
    "</e>": "</error>",
    "<s>": "<system>",
    "</s>": "</system>",
    "<r>": "<result>",
    "</r>": "</result>",
    "< META_START >": "<META_START>",
    "< META_END >": "<META_END>",
    "< EOT >": "<EOT>",
    "< META >": "<META>",
    "< SOS >": "<SOS>",
    "\n\nH:": "\n\nHuman:",
    "\n\nA:": "\n\nAssistant:",
}
_LEFT_SINGLE, _RIGHT_SINGLE, _LEFT_DOUBLE, _RIGHT_DOUBLE = "\u2018", "\u2019", "\u201c", "\u201d"
_OPENS_QUOTE = frozenset(" \t\n\r([{\u2014\u2013")
_MARKDOWN = re.compile(r"\.(md|mdx)$", re.IGNORECASE)
_LINE_END = re.compile(r"(\r\n|\n|\r)")
_TRAILING_SPACE = re.compile(r"\s+$")


class EditError(ValueError):
    """An edit the tool would refuse; the message is the tool's reason, or close to it."""


# ---------------------------------------------------------------- diffs


@attrs.frozen
class Hunk:
    """One hunk of a unified diff. Starts are 0-based line indices; lines keep their
    endings. `before_lines` is the hunk's old side (context and removed lines),
    `after_lines` its new side (context and added lines)."""

    before_start: int
    before_lines: tuple[str, ...]
    after_start: int
    after_lines: tuple[str, ...]
    body: tuple[str, ...]  # " line", "-line", "+line", in diff order

    @property
    def added(self) -> int:
        return sum(1 for line in self.body if line.startswith("+"))

    @property
    def removed(self) -> int:
        return sum(1 for line in self.body if line.startswith("-"))

    def header(self) -> str:
        old = _range(self.before_start, len(self.before_lines))
        new = _range(self.after_start, len(self.after_lines))
        return f"@@ -{old} +{new} @@\n"


def split_lines(text: str) -> list[str]:
    """Lines with their endings, split at LF only (str.splitlines also splits at form
    feeds and Unicode separators, which diff and patch do not)."""
    parts = text.split("\n")
    lines = [part + "\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def _range(start: int, length: int) -> str:
    # As diff -u writes it: 1-based; an empty side names the line before it.
    first = start + 1 if length else start
    return str(first) if length == 1 else f"{first},{length}"


def diff_hunks(before: str, after: str, context: int = CONTEXT_LINES) -> list[Hunk]:
    """The hunks turning `before` into `after`; none when they are equal."""
    a, b = split_lines(before), split_lines(after)
    # Most changes touch a small part of a file: diff only the part between the common
    # head and tail (plus context), which keeps difflib fast on large files.
    shortest = min(len(a), len(b))
    head = 0
    while head < shortest and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < shortest - head and a[-1 - tail] == b[-1 - tail]:
        tail += 1
    low = max(0, head - context)
    keep = max(0, tail - context)
    matcher = difflib.SequenceMatcher(None, a[low : len(a) - keep], b[low : len(b) - keep])
    hunks = []
    for group in matcher.get_grouped_opcodes(context):
        body: list[str] = []
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                body.extend(" " + line for line in a[low + i1 : low + i2])
                continue
            body.extend("-" + line for line in a[low + i1 : low + i2])
            body.extend("+" + line for line in b[low + j1 : low + j2])
        first, last = group[0], group[-1]
        hunks.append(
            Hunk(
                before_start=low + first[1],
                before_lines=tuple(a[low + first[1] : low + last[2]]),
                after_start=low + first[3],
                after_lines=tuple(b[low + first[3] : low + last[4]]),
                body=tuple(body),
            )
        )
    return hunks


def format_hunks(hunks: Sequence[Hunk]) -> str:
    out: list[str] = []
    for hunk in hunks:
        out.append(hunk.header())
        for line in hunk.body:
            out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out)


def unified_diff(
    before: str,
    after: str,
    path_label: str,
    *,
    created: bool = False,
    deleted: bool = False,
    before_label: str | None = None,
    after_label: str | None = None,
) -> str:
    """The unified diff from `before` to `after` ("" when equal). `created` and
    `deleted` name the missing side `/dev/null`."""
    hunks = diff_hunks(before, after)
    if not hunks:
        return ""
    old = "/dev/null" if created else (before_label or path_label)
    new = "/dev/null" if deleted else (after_label or path_label)
    return f"--- {old}\n+++ {new}\n" + format_hunks(hunks)


def cut_diff(diff: str, limit: int) -> tuple[str, bool]:
    """`diff` cut at a line so it holds at most `limit` UTF-8 bytes, and whether it was."""
    data = diff.encode("utf-8")
    if len(data) <= limit:
        return diff, False
    kept = data[:limit].decode("utf-8", "ignore")
    kept = kept[: kept.rfind("\n") + 1]
    more = diff.count("\n") - kept.count("\n")
    return kept + f"... (diff cut at {limit // 1024} KiB, {more} more lines)\n", True


# ---------------------------------------------------------------- reading files


@attrs.frozen
class FileText:
    """A file as a text tool sees it. `text` is None for a binary or unreadable file."""

    exists: bool
    text: str | None
    size: int = 0

    @property
    def binary(self) -> bool:
        return self.exists and self.text is None


def decode_text(data: bytes) -> str | None:
    """The UTF-8 text of `data`, or None when it is binary (a NUL byte, or not UTF-8)."""
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def read_text(path: str, limit: int = MAX_READ_BYTES) -> FileText | None:
    """The file at `path`; None when it is not a regular file (a directory, a FIFO we
    must not block on), cannot be read, or is larger than `limit`."""
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return FileText(exists=False, text="")
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
        return None
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError:
        return None
    if len(data) > limit:
        return None
    return FileText(exists=True, text=decode_text(data), size=len(data))


def resolved_path(path: str, cwd: str) -> str:
    """The file a tool naming `path` works on: absolute, every symlink on the way followed
    (a link to a missing file gives the file it would create)."""
    return os.path.realpath(paths.absolute(path, cwd))


def link_target(path: str, cwd: str) -> str | None:
    """Where `path` leads when a symlink on its way (inside `cwd`, or anywhere for a path
    outside it) makes that another file; None when it leads to itself. A `cwd` that is
    itself reached through a link does not count."""
    absolute = paths.absolute(path, cwd)
    resolved = os.path.realpath(absolute)
    relative = os.path.relpath(absolute, cwd)
    if relative != ".." and not relative.startswith(".." + os.sep):
        plain = os.path.normpath(os.path.join(os.path.realpath(cwd), relative))
    else:
        plain = absolute
    return None if resolved == plain else resolved


def link_note(tool_input: dict[str, Any], cwd: str) -> str:
    """` → ../outside/target.txt` when the file tool's path is a link to another file
    ("" otherwise), for the permission question: the user sees where the write goes.
    The target is shown relative to the folder while at most one `..` leads to it."""
    raw = tool_input.get("file_path") or tool_input.get("notebook_path")
    if not isinstance(raw, str) or not raw:
        return ""
    target = link_target(raw, cwd)
    if target is None:
        return ""
    relative = os.path.relpath(target, os.path.realpath(cwd))
    shown = target if relative.startswith(os.path.join("..", "..")) else relative
    return f" → {shown}"


# ---------------------------------------------------------------- applying edits


def _crlf(text: str) -> bool:
    # The CLI's rule: CRLF when CR LF outnumbers bare LF in the first 4096 characters.
    sample = text[:4096]
    crlf = sample.count("\r\n")
    return crlf > sample.count("\n") - crlf


def _strip_trailing_space(text: str) -> str:
    parts = _LINE_END.split(text)
    return "".join(
        _TRAILING_SPACE.sub("", part) if index % 2 == 0 else part
        for index, part in enumerate(parts)
    )


def _straight_quotes(text: str) -> str:
    return (
        text.replace(_LEFT_SINGLE, "'")
        .replace(_RIGHT_SINGLE, "'")
        .replace(_LEFT_DOUBLE, '"')
        .replace(_RIGHT_DOUBLE, '"')
    )


def _actual_old_string(content: str, old: str) -> str | None:
    """The text in the file that `old` stands for: itself, or the same text with the
    file's curly quotes (a model often types straight ones)."""
    if old in content:
        return old
    index = _straight_quotes(content).find(_straight_quotes(old))
    return content[index : index + len(old)] if index != -1 else None


def _curly(chars: list[str], index: int, straight: str) -> str:
    opens = index == 0 or chars[index - 1] in _OPENS_QUOTE
    if straight == '"':
        return _LEFT_DOUBLE if opens else _RIGHT_DOUBLE
    before = chars[index - 1] if index > 0 else ""
    after = chars[index + 1] if index + 1 < len(chars) else ""
    if before.isalpha() and after.isalpha():  # an apostrophe: don't
        return _RIGHT_SINGLE
    return _LEFT_SINGLE if opens else _RIGHT_SINGLE


def _keep_quote_style(actual: str, old: str, new: str) -> str:
    """`new` with straight quotes made curly where the file's text used curly ones."""
    if actual == old:
        return new
    doubles = _LEFT_DOUBLE in actual or _RIGHT_DOUBLE in actual
    singles = _LEFT_SINGLE in actual or _RIGHT_SINGLE in actual
    chars = list(new)
    for index, char in enumerate(chars):
        if (char == '"' and doubles) or (char == "'" and singles):
            chars[index] = _curly(chars, index, char)
    return "".join(chars)


def _normalize(edits: list[dict[str, Any]], content: str, markdown: bool) -> list[dict[str, Any]]:
    # The CLI's input normalization for an existing file. Idempotent, so it is right
    # whether or not the input we were shown had it applied already.
    out = []
    for edit in edits:
        old, new = edit["old_string"], edit["new_string"]
        new = new if markdown else _strip_trailing_space(new)
        if old not in content:
            desanitized = old
            for short, full in _DESANITIZE.items():
                desanitized = desanitized.replace(short, full)
            if desanitized != old and desanitized in content:
                for short, full in _DESANITIZE.items():
                    if short in old:
                        new = new.replace(short, full)
                old = desanitized
        out.append({**edit, "old_string": old, "new_string": new})
    return out


def _edits(tool_input: dict[str, Any]) -> list[dict[str, Any]]:
    raw = tool_input.get("edits") if "edits" in tool_input else [tool_input]
    if not isinstance(raw, list) or not raw:
        raise EditError("no edits")
    edits = []
    for edit in raw:
        if not isinstance(edit, dict):
            raise EditError("an edit is not an object")
        old, new = edit.get("old_string"), edit.get("new_string")
        if not isinstance(old, str) or not isinstance(new, str):
            raise EditError("old_string and new_string must be strings")
        edits.append(
            {"old_string": old, "new_string": new, "replace_all": bool(edit.get("replace_all"))}
        )
    return edits


def apply_edits(content: str, edits: list[dict[str, Any]]) -> str:
    """`content` (LF line endings) after `edits` in order, as the CLI applies them;
    EditError when the tool would refuse."""
    result = content
    previous_new: list[str] = []
    for edit in edits:
        old, new, every = edit["old_string"], edit["new_string"], edit["replace_all"]
        if old == new:
            raise EditError("No changes to make: old_string and new_string are exactly the same.")
        stripped = old.rstrip("\n")
        if stripped and any(stripped in earlier for earlier in previous_new):
            raise EditError("old_string is a substring of a new_string from a previous edit.")
        if old == "":
            result = new
        else:
            actual = _actual_old_string(result, old)
            if actual is None:
                raise EditError("String not found in file.")
            new = _keep_quote_style(actual, old, new)
            first = result.find(actual)
            if not every and result.find(actual, first + len(actual)) != -1:
                count = result.count(actual)
                raise EditError(
                    f"Found {count} matches of the string to replace, but replace_all is false."
                )
            # Deleting a whole line deletes its newline too.
            target = actual
            if new == "" and not actual.endswith("\n") and actual + "\n" in result:
                target = actual + "\n"
            result = result.replace(target, new) if every else result.replace(target, new, 1)
        previous_new.append(new)
    if result == content:
        raise EditError("Original and edited file match exactly.")
    return result


def _edited_text(path: str, file: FileText, tool_input: dict[str, Any]) -> str:
    edits = _edits(tool_input)
    if path.endswith(".ipynb"):
        raise EditError("use NotebookEdit for notebooks")
    first = edits[0]
    if not file.exists:
        # Only a create ("" to the text) applies to a missing file; nothing to normalize.
        if first["old_string"] != "":
            raise EditError("File does not exist.")
        if len(edits) == 1:
            return str(first["new_string"])
        return apply_edits("", edits)
    assert file.text is not None
    crlf = _crlf(file.text)
    content = file.text.replace("\r\n", "\n")
    if first["old_string"] == "" and content.strip() != "":
        raise EditError("Cannot create new file - file already exists.")
    edits = _normalize(edits, content, bool(_MARKDOWN.search(path)))
    if len(edits) == 1 and edits[0]["old_string"] == "" == edits[0]["new_string"] == content:
        return content  # the CLI lets an empty edit of an empty file through
    result = apply_edits(content, edits)
    # As the CLI writes a CRLF file: every line ending CR LF, whatever new_string held.
    return result.replace("\r\n", "\n").replace("\n", "\r\n") if crlf else result


# ---------------------------------------------------------------- proposals


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

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"path": self.path, "exists": self.exists}
        if self.original is not None and self.proposed is not None:
            data["original"] = self.original
            data["proposed"] = self.proposed
        data["diff"] = self.diff
        if self.truncated:
            data["truncated"] = True
        if self.binary:
            data["binary"] = True
        return data


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
    return path, file, _edited_text(path, file, tool_input)


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


def edited_feedback(proposed: str, edited: str, path_label: str) -> str:
    """What to tell the model when the user changed its proposal before accepting it,
    so it does not believe its own version landed ("" when nothing was changed)."""
    if proposed == edited:
        return ""
    diff = unified_diff(
        proposed,
        edited,
        path_label,
        before_label=f"{path_label} (your proposal)",
        after_label=f"{path_label} (what the user accepted)",
    )
    if len(diff) > MAX_FEEDBACK_DIFF_CHARS:
        diff = diff[: diff.rfind("\n", 0, MAX_FEEDBACK_DIFF_CHARS) + 1]
        diff += f"... (diff cut; read {path_label} for the rest)\n"
    return (
        f"The user edited your proposed change to {path_label} before accepting it: the "
        f"file holds the user's version, not yours. The diff from your proposal to what "
        f"was written:\n```diff\n{diff}```\n"
        f"Treat the user's changes as intended, and read {path_label} again before "
        f"editing it."
    )
