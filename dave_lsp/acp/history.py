"""A session's conversation, replayed as `session/update` bodies for `session/load`.

Reading it back is the session's backend's (`backends/history.py`: `kept` and
`conversation` go through the backend registry, so this front end names no backend);
this module turns the messages into ACP updates.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

from dave_lsp.acp import outgoing as out
from dave_lsp.acp import schema
from dave_lsp.backends.history import Message, conversation, kept

__all__ = ["conversation", "kept", "replay"]


def replay(messages: list[Message], cwd: str) -> Iterator[out.SessionUpdate]:
    """The conversation as `session/update` bodies: user and agent text, thinking, and
    each tool use with its result. Each chunk carries a `messageId`, as a live turn's do:
    one per user message, and one per run of the model's text or of its thinking (a new
    one after a tool use, a switch between them, or the user's next message)."""
    current: tuple[str, str] | None = None  # the (update kind, messageId) being sent
    for message in messages:
        user = message.role == "user"
        if user:
            current = None
        for block in message.blocks:
            kind = block.get("type")
            if kind in ("text", "thinking") and isinstance(block.get(kind), str):
                update: out.ChunkKind
                if kind == "thinking":
                    update = "agent_thought_chunk"
                else:
                    update = "user_message_chunk" if user else "agent_message_chunk"
                if current is None or current[0] != update:
                    current = (update, str(uuid.uuid4()))
                yield schema.chunk(update, block[kind], current[1])
            elif kind == "tool_use" and isinstance(block.get("id"), str):
                current = None  # the model's message ends at its tool use
                name = str(block.get("name") or "tool")
                raw = block.get("input")
                tool_input: dict[str, Any] = raw if isinstance(raw, dict) else {}
                yield schema.tool_call(block["id"], name, name, tool_input, cwd)
            elif kind == "tool_result" and isinstance(block.get("tool_use_id"), str):
                failed = bool(block.get("is_error"))
                text = _result_text(block.get("content"))
                yield schema.tool_call_update(
                    block["tool_use_id"],
                    status="failed" if failed else "completed",
                    content=[schema.text_content(text)] if text else [],
                )


def _result_text(content: Any) -> str:
    if isinstance(content, str):
        return content[:2000]
    if isinstance(content, list):
        parts = [
            b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text"
        ]
        return "\n".join(p for p in parts if isinstance(p, str))[:2000]
    return ""
