"""Applying a file tool's edits to a file's text the way the Claude Code CLI does (read
from the bundled CLI, 2.1.332), so that a proposal shows what the tool will write.

- Edit and MultiEdit read the file with CRLF turned into LF, find `old_string` (exactly,
  else with curly quotes read as straight ones, giving the file's own quotes back in
  `new_string`), strip trailing whitespace from each line of `new_string` unless the
  file is Markdown, and write with the file's line endings (CRLF when CRLF outnumbers
  bare LF in its first 4096 characters). The CLI's last resort, matching `\\uXXXX`
  escapes, is not copied: such an edit is refused here (`EditError`).
- An edit the tool would refuse raises `EditError` with the tool's reason.
"""

from __future__ import annotations

import re
from typing import Any

from dave_lsp.review.files import FileText

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


def edited_text(path: str, file: FileText, tool_input: dict[str, Any]) -> str:
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
