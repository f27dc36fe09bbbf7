"""The OpenAI backend's conversation as `dave/history` entries (backends/history.py).

The backend keeps its conversation as chat-completions messages in the server's memory
(`OpenAISession.history`); `chat_entries` turns those into entries. Once the session's
backend is gone (a restart, a close) there is no record left to read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from dave_lsp.backends.history import Entries, Entry, History, Message
from dave_lsp.tools.summaries import describe_tool_use


@attrs.frozen
class Conversation:
    """The backend's conversation: its messages, and where each turn's prompt is."""

    messages: tuple[Any, ...]  # chat-completions messages
    starts: tuple[int, ...]

    def first(self, turns: int) -> Conversation:
        """The conversation as it was after its first `turns` turns: the one place it is
        cut (dave/rewind, dave/fork). No turn: the system prompt only, so the next query
        is seeded with the editor's transcript again."""
        if turns >= len(self.starts):
            return self
        if turns <= 0:
            head = self.messages[: self.starts[0]] if self.starts else self.messages
            return Conversation(tuple(m for m in head if m.get("role") == "system"), ())
        return Conversation(self.messages[: self.starts[turns]], self.starts[:turns])


def read(
    backend: str,
    conversation_id: str,
    cwd: str,
    env: Mapping[str, str],
    turns: int,
    chat: Sequence[Mapping[str, Any]] | None,
) -> History:
    """`chat`, the live session's messages; without them, why there is no history."""
    if chat is not None:
        return History(backend, chat_entries(chat, cwd))
    if not turns:
        return History(backend, [])
    return History(
        backend,
        [],
        f"the {backend} backend keeps a conversation only in the memory of the server that"
        " ran it, and this session's is gone (the server restarted since, or the session's"
        " backend was closed); its next query continues from the editor's messages",
    )


def chat_entries(conversation: Sequence[Mapping[str, Any]], cwd: str) -> list[Entry]:
    """Chat-completions messages (system, user, assistant with `tool_calls`, tool) as
    `dave/history` entries. Tool messages carry no error flag, so tool uses have no
    `summary` or `isError` here."""
    built = Entries()
    for message in conversation:
        role = message.get("role")
        content = message.get("content")
        if role == "user":
            parts = content if isinstance(content, list) else [{"type": "text", "text": content}]
            texts = [
                str(p.get("text") or "")
                for p in parts
                if isinstance(p, dict) and p.get("type") == "text"
            ]
            images = sum(1 for p in parts if isinstance(p, dict) and p.get("type") == "image_url")
            built.user("\n\n".join(texts), images)
        elif role == "assistant":
            if isinstance(content, str) and content:
                built.assistant("text", content)
            for call in message.get("tool_calls") or []:
                function = call.get("function") or {}
                name = str(function.get("name") or "tool")
                try:
                    raw = json.loads(function.get("arguments") or "{}")
                except ValueError:
                    raw = {}
                tool_input = raw if isinstance(raw, dict) else {}
                built.tool_use(str(call.get("id")), name, describe_tool_use(name, tool_input, cwd))
    return built.done()


def kept(conversation_id: str, env: Mapping[str, str]) -> bool:
    """Never: the conversation lives only in the memory of the server that ran it."""
    return False


def conversation(conversation_id: str, env: Mapping[str, str]) -> list[Message]:
    """None to read back (see `kept`)."""
    return []
