"""A session's conversation, read back from its backend's own record, as `dave/history`
entries (docs/protocol.md) and for ACP's `session/load`.

Each backend reads its own record (its `BackendSpec.history` module, a `HistoryModule`:
Claude Code's transcript files in `backends/claude/history.py`, the OpenAI backend's
messages in memory in `backends/openai/history.py`); this module holds what they share:
the answer, the entries and how they are built, and `read`, `kept` and `conversation`,
which ask the session's backend (so the front ends name none).

An entry is a plain dict an editor can render as it comes:
`{"role": "user", "text", "editorContext"?: true, "images"?: N}` or
`{"role": "assistant", "thinking"?, "text", "toolUses"?: [{"toolUseId", "toolName",
"message", "summary"?, "isError"?}]}`. An assistant entry's blocks come in that order
(thinking, text, tool uses); a block of an earlier kind after a later one starts a new
entry, so the entries in order show a turn as it streamed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import attrs

from dave_lsp.backends import registry

Entry = dict[str, Any]

# What context.render puts before a prompt that carries the editor's context.
_CONTEXT_OPEN = "<editor-context>\n"
_CONTEXT_CLOSE = "\n</editor-context>\n\n"
# An assistant entry's blocks, in the order one entry holds them.
_ORDER = {"thinking": 0, "text": 1, "toolUses": 2}


@attrs.frozen
class History:
    """What `dave/history` answers: the entries, or why the backend has no record."""

    backend: str
    entries: list[Entry]
    reason: str = ""  # "" when the backend has a record (maybe of no turns yet)


@attrs.frozen
class Message:
    """One message of a conversation as its backend keeps it, for ACP's `session/load`
    replay: `role` "user" or "assistant", and its content blocks in the Messages API's
    shape (`text`, `thinking`, `tool_use`, `tool_result` dicts), without the text the
    backend itself put in the user's turn."""

    role: str
    blocks: list[dict[str, Any]]


@attrs.frozen
class HistoryQuery:
    """Which conversation `read` reads back, and what the session knows of it."""

    backend: str
    conversation_id: str  # the backend's id of it ("" before a turn has ended)
    cwd: str  # the session's folder, that tool uses' paths are shown against
    env: Mapping[str, str]  # the session's environment (where its backend keeps records)
    turns: int  # how many turns the session has run
    # The live session's own messages when it keeps them in memory (`ChatHistory`).
    chat: Sequence[Mapping[str, Any]] | None = None


class HistoryModule(Protocol):
    """What a `BackendSpec.history` module provides (registry.py has mypy check each)."""

    def read(self, query: HistoryQuery) -> History:
        """The conversation as `dave/history` entries, or why there is none."""
        ...

    def kept(self, conversation_id: str, env: Mapping[str, str]) -> bool:
        """Whether a record of the conversation is there to read (without reading it)."""
        ...

    def conversation(self, conversation_id: str, env: Mapping[str, str]) -> list[Message]:
        """The conversation's messages, oldest first ([]: none kept). Reads files."""
        ...


@runtime_checkable
class ChatHistory(Protocol):
    """A live backend session that holds its conversation as chat-completions messages
    (the OpenAI backend's `OpenAISession`)."""

    @property
    def history(self) -> Sequence[Mapping[str, Any]]: ...


def read(query: HistoryQuery) -> History:
    """A session's history, read by its backend. Reads files: call it off the event
    loop."""
    spec = registry.BACKENDS.get(query.backend)
    if spec is None:
        return History(query.backend, [], f"dave-lsp has no {query.backend} backend")
    return spec.history_module().read(query)


def kept(backend: str, conversation_id: str, env: Mapping[str, str]) -> bool:
    """Whether `backend` keeps a record of `conversation_id` that this process can read
    (a conversation another process ran: ACP's `session/load` of a session it adopts)."""
    spec = registry.BACKENDS.get(backend)
    return spec is not None and spec.history_module().kept(conversation_id, env)


def conversation(backend: str, conversation_id: str, env: Mapping[str, str]) -> list[Message]:
    """`backend`'s record of `conversation_id` as messages ([]: none). Reads files: call
    it off the event loop."""
    spec = registry.BACKENDS.get(backend)
    return spec.history_module().conversation(conversation_id, env) if spec else []


class Entries:
    """The entries so far; assistant blocks join the last entry while their order allows."""

    def __init__(self) -> None:
        self._entries: list[Entry] = []
        self._stage = -1  # the last block kind the open assistant entry holds (_ORDER)

    def user(self, text: str, images: int) -> None:
        entry: Entry = {"role": "user", "text": text}
        if text.startswith(_CONTEXT_OPEN) and _CONTEXT_CLOSE in text:
            entry["text"] = text.split(_CONTEXT_CLOSE, 1)[1]
            entry["editorContext"] = True
        if images:
            entry["images"] = images
        self._entries.append(entry)
        self._stage = -1

    def assistant(self, kind: str, text: str) -> None:
        entry = self._open(kind)
        entry[kind] = entry.get(kind, "") + text

    def tool_use(self, tool_use_id: str, name: str, message: str) -> dict[str, Any]:
        use: dict[str, Any] = {"toolUseId": tool_use_id, "toolName": name, "message": message}
        self._open("toolUses").setdefault("toolUses", []).append(use)
        return use

    def _open(self, kind: str) -> Entry:
        """The assistant entry a block of `kind` belongs to (a new one when the last entry
        is the user's, or already holds a later kind of block)."""
        stage = _ORDER[kind]
        last = self._entries[-1] if self._entries else None
        if last is None or last["role"] != "assistant" or stage < self._stage:
            last = {"role": "assistant", "text": ""}
            self._entries.append(last)
        self._stage = stage
        return last

    def done(self) -> list[Entry]:
        return self._entries
