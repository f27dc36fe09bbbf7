"""Unified diffs and their hunks: what a proposal, a turn's change and the model's
feedback show, and what revert applies.

Diffs are unified diffs with 3 lines of context, labelled with the path relative to the
session's cwd (no `a/` `b/` prefix, so `patch -p0` applies them from the cwd), with
`/dev/null` for a missing side and `\\ No newline at end of file` where it applies.
Lines keep their own endings, so a CRLF file's diff lines end in CR LF. `diff_hunks`
is the one source of hunks: hunk indices on the wire (`dave/changes`) are the ones
`revert` applies. Sizes are UTF-8 bytes: a proposal or change carries whole texts while
each side is at most `MAX_SIDE_BYTES`, a diff at most `MAX_DIFF_BYTES` (cut at a line),
and a side over `MAX_DIFF_SOURCE_BYTES` is not diffed at all.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

import attrs

MAX_SIDE_BYTES = 256 * 1024
MAX_DIFF_BYTES = 256 * 1024
MAX_DIFF_SOURCE_BYTES = 2 * 1024 * 1024
# What the model is told when the user edited its proposal: about 2k tokens at most.
MAX_FEEDBACK_DIFF_CHARS = 8000
CONTEXT_LINES = 3


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
