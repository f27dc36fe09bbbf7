"""What comes with a prompt: the editor's context (the active file and its selection,
and the files the user mentioned, `@path#L5-10`), put before the prompt in a block the
model reads as the editor's context; and images, checked. Bounded; a mention of a
missing file, or an image that is not one, is the client's mistake (-32602).
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Sequence
from pathlib import Path

from dave_lsp import paths
from dave_lsp.backends.base import Attachment
from dave_lsp.rpc import ActiveFile, AttachmentParam, Mention, ParamsError, QueryContext
from dave_lsp.tools.summaries import display_path

MAX_SELECTION_CHARS = 20_000
MAX_MENTION_LINES = 500
MAX_MENTION_CHARS = 40_000
MAX_CONTEXT_CHARS = 100_000
MAX_IMAGES = 20
MAX_IMAGE_BYTES = 5 * 1024 * 1024  # decoded; the Messages API's own limit per image
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
# A fence longer than any run of backquotes in the quoted text keeps the block whole.
_FENCE = "```"


def render(context: QueryContext | None, prompt: str, cwd: str) -> str:
    """The prompt the model receives: the context block (when there is any), then the
    user's prompt, last, as typed."""
    if context is None or (context.active_file is None and not context.mentions):
        return prompt
    parts: list[str] = []
    active = context.active_file
    if active is not None:
        parts.append(_active(active, cwd))
    for mention in context.mentions:
        parts.append(_mention(mention, cwd))
    body = "\n\n".join(parts)
    if len(body) > MAX_CONTEXT_CHARS:
        body = body[:MAX_CONTEXT_CHARS] + (
            f"\n… (editor context cut at {MAX_CONTEXT_CHARS} characters)"
        )
    return f"<editor-context>\n{body}\n</editor-context>\n\n{prompt}"


def check(context: QueryContext | None, cwd: str) -> None:
    """ParamsError naming the first mention that is not a readable file."""
    for index, mention in enumerate(context.mentions if context else ()):
        path = paths.absolute(mention.path, cwd)
        if not os.path.isfile(path):
            what = "is a folder, not a file" if os.path.isdir(path) else "does not exist"
            raise ParamsError(
                f"invalid params: context.mentions[{index}].path: {mention.path} "
                f"{what}; mention a file (relative to {cwd} or absolute)"
            )
        if mention.start_line is not None and mention.start_line < 1:
            raise ParamsError(
                f"invalid params: context.mentions[{index}].startLine: lines are 1-based"
            )


def images(attachments: Sequence[AttachmentParam]) -> list[Attachment]:
    """The prompt's images, checked; ParamsError naming the first that is not one."""
    if len(attachments) > MAX_IMAGES:
        raise ParamsError(
            f"invalid params: attachments: at most {MAX_IMAGES} images (got {len(attachments)})"
        )
    checked = []
    for index, item in enumerate(attachments):
        where = f"invalid params: attachments[{index}]"
        if item.media_type not in IMAGE_TYPES:
            raise ParamsError(f"{where}.mediaType: must be one of {', '.join(IMAGE_TYPES)}")
        try:
            size = len(base64.b64decode(item.data, validate=True))
        except (binascii.Error, ValueError):
            raise ParamsError(f"{where}.data: not base64") from None
        if not size or size > MAX_IMAGE_BYTES:
            raise ParamsError(
                f"{where}.data: {size} bytes; an image is 1 byte to {MAX_IMAGE_BYTES} bytes"
            )
        checked.append(Attachment(item.media_type, item.data))
    return checked


def _lines(path: str) -> list[str]:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []


def _fence(text: str, language: str = "") -> str:
    fence = _FENCE
    while fence in text:
        fence += "`"
    return f"{fence}{language}\n{text}\n{fence}"


def _active(active: ActiveFile, cwd: str) -> str:
    path, language = active.path, active.language_id
    label = display_path(paths.absolute(path, cwd), cwd)
    kind = f" ({language})" if language else ""
    selection = active.selection
    if selection is None:
        return f"The user's active file in the editor is {label}{kind}."
    first, last = selection.start.line + 1, selection.end.line + 1
    if selection.end.character == 0 and last > first:
        last -= 1  # a selection that ends at column 0 does not take that line
    text = active.selected_text
    if text is None:
        text = "\n".join(_lines(paths.absolute(path, cwd))[first - 1 : last])
    where = f"line {first}" if first == last else f"lines {first}-{last}"
    if not text.strip():
        return f"The user's active file in the editor is {label}{kind}; the cursor is on {where}."
    clipped = ""
    if len(text) > MAX_SELECTION_CHARS:
        text = text[:MAX_SELECTION_CHARS]
        clipped = f"\n… (selection cut at {MAX_SELECTION_CHARS} characters)"
    return (
        f"The user's active file in the editor is {label}{kind}, with {where} selected:\n"
        f"{_fence(text, language or '')}{clipped}"
    )


def _mention(mention: Mention, cwd: str) -> str:
    path = paths.absolute(mention.path, cwd)
    label = display_path(path, cwd)
    lines = _lines(path)
    first = mention.start_line or 1
    last = min(mention.end_line or len(lines), len(lines))
    if first > len(lines) or last < first:
        return (
            f"The user mentioned {label}, lines {first}-{mention.end_line}, past its end "
            f"(it has {len(lines)} lines)."
        )
    shown = lines[first - 1 : last]
    notes = []
    if len(shown) > MAX_MENTION_LINES:
        shown = shown[:MAX_MENTION_LINES]
        notes.append(f"… (cut at {MAX_MENTION_LINES} lines; read {label} for the rest)")
    width = len(str(first + len(shown) - 1))
    numbered = "\n".join(f"{first + i:>{width}}  {text}" for i, text in enumerate(shown))
    if len(numbered) > MAX_MENTION_CHARS:
        numbered = numbered[: numbered.rfind("\n", 0, MAX_MENTION_CHARS)]
        notes.append(f"… (cut at {MAX_MENTION_CHARS} characters; read {label} for the rest)")
    whole = mention.start_line is None and mention.end_line is None
    where = "" if whole else f", lines {first}-{first + len(shown) - 1}"
    tail = "\n" + "\n".join(notes) if notes else ""
    return f"The user mentioned {label}{where}:\n{_fence(numbered)}{tail}"
