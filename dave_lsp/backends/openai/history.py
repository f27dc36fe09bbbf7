"""The OpenAI backend's conversation as `dave/history` entries (backends/history.py).

The backend keeps its conversation as chat-completions messages in the server's memory
(`OpenAISession.history`) and in its transcript file (transcript.py), which is read once
the session's backend is gone (a restart, an eviction); `chat_entries` turns either
into entries, `conversation` into `Message`s for ACP's `session/load`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from dave_lsp.backends.history import Entries, Entry, History, HistoryQuery, Message
from dave_lsp.tools.summaries import describe_tool_use

if TYPE_CHECKING:
    from dave_lsp.backends.openai import transcript

log = logging.getLogger(__name__)


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


def read(query: HistoryQuery) -> History:
    """The live session's messages (`query.chat`), else its transcript's; without either,
    why there is no history."""
    backend = query.backend
    if query.chat is not None:
        return History(backend, chat_entries(query.chat, query.cwd))
    found = _load(query.conversation_id, query.env)
    if found.conversation is not None:
        return History(backend, chat_entries(found.conversation.messages, query.cwd))
    if not query.turns:
        return History(backend, [])
    why = f"its transcript: {found.problem}" if found.problem else "no transcript of it is kept"
    return History(
        backend,
        [],
        f"the {backend} backend cannot read this session's conversation back ({why});"
        " its next query continues from the editor's messages",
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
                tool_input = _arguments(function.get("arguments"))
                built.tool_use(str(call.get("id")), name, describe_tool_use(name, tool_input, cwd))
    return built.done()


def kept(conversation_id: str, env: Mapping[str, str]) -> bool:
    """Whether the conversation's transcript file is there."""
    from dave_lsp.backends.openai import transcript  # it builds on Conversation

    return transcript.exists(transcript.folder(env), conversation_id)


def conversation(conversation_id: str, env: Mapping[str, str]) -> list[Message]:
    """The transcript's messages as `Message`s: text, tool uses and their results."""
    found = _load(conversation_id, env).conversation
    return [] if found is None else chat_messages(found.messages)


def chat_messages(conversation: Sequence[Mapping[str, Any]]) -> list[Message]:
    """Chat-completions messages in the Messages API's shape (system prompts left out):
    a tool message is the user's `tool_result`, as Claude Code's transcripts hold it."""
    found: list[Message] = []
    blocks: list[dict[str, Any]]
    for message in conversation:
        role, content = message.get("role"), message.get("content")
        if role == "user":
            parts = content if isinstance(content, list) else [{"type": "text", "text": content}]
            blocks = [
                {"type": "text", "text": str(p.get("text") or "")}
                for p in parts
                if isinstance(p, dict) and p.get("type") == "text"
            ]
            found.append(Message("user", blocks))
        elif role == "assistant":
            said = isinstance(content, str) and content
            blocks = [{"type": "text", "text": content}] if said else []
            for call in message.get("tool_calls") or []:
                function = call.get("function") or {}
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": str(call.get("id")),
                        "name": str(function.get("name") or "tool"),
                        "input": _arguments(function.get("arguments")),
                    }
                )
            found.append(Message("assistant", blocks))
        elif role == "tool":
            result = {
                "type": "tool_result",
                "tool_use_id": str(message.get("tool_call_id")),
                "content": content if isinstance(content, str) else "",
            }
            found.append(Message("user", [result]))
    return found


def _arguments(raw: Any) -> dict[str, Any]:
    """A tool call's arguments as its input ({} when they are not a JSON object)."""
    try:
        parsed = json.loads(raw or "{}")
    except (TypeError, ValueError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _load(conversation_id: str, env: Mapping[str, str]) -> transcript.Loaded:
    """The transcript's `Loaded` (transcript.py), a broken one logged."""
    from dave_lsp.backends.openai import transcript  # it builds on Conversation

    root = transcript.folder(env)
    found = transcript.load(root, conversation_id) if conversation_id else transcript.Loaded(None)
    if found.problem:
        log.warning(
            "the transcript of %s (%s) is not read: %s",
            conversation_id,
            transcript.path_of(root, conversation_id),
            found.problem,
        )
    return found
