"""A Claude Code conversation, read back from its transcript for `session/load`.

Finding and parsing the transcript is dave_lsp/backends/claude/history.py's (it serves
`dave/history` too); this module turns the messages into ACP `session/update` bodies.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from dave_lsp.acp import schema
from dave_lsp.backends.claude.history import (
    blocks_of,
    config_dir,
    injected,
    messages,
    transcript_path,
)

__all__ = ["config_dir", "messages", "replay", "transcript_path"]


def replay(conversation: list[Any], cwd: str) -> Iterator[dict[str, Any]]:
    """The conversation as `session/update` bodies: user and agent text, thinking, and
    each tool use with its result."""
    names: dict[str, str] = {}
    for item in conversation:
        user = item.type == "user"
        for block in blocks_of(item.message):
            kind = block.get("type")
            if kind == "text" and isinstance(block.get("text"), str):
                text = block["text"]
                if user and injected(text):
                    continue
                yield schema.chunk("user_message_chunk" if user else "agent_message_chunk", text)
            elif kind == "thinking" and isinstance(block.get("thinking"), str):
                yield schema.chunk("agent_thought_chunk", block["thinking"])
            elif kind == "tool_use" and isinstance(block.get("id"), str):
                name = str(block.get("name") or "tool")
                names[block["id"]] = name
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
