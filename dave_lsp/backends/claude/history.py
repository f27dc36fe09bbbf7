"""A session's conversation, read back from its backend's own record, as `dave/history`
entries (docs/protocol.md) and for ACP's `session/load`.

The Claude Code CLI keeps each conversation at `<config>/projects/<cwd slug>/<id>.jsonl`,
where `<config>` is `CLAUDE_CONFIG_DIR` or `~/.claude` of the environment the CLI ran in,
which is the session's `env` over the server's (tests and some setups give the CLI a
HOME of its own). claude_agent_sdk's `get_session_messages` reads only the server's own
config dir, so the file is found here and parsed with the SDK's parser (the same chain
building and filtering `get_session_messages` does).

The OpenAI backend keeps its conversation as chat-completions messages in the server's
memory; `chat_entries` turns those into the same entries.

An entry is a plain dict an editor can render as it comes:
`{"role": "user", "text", "editorContext"?: true, "images"?: N}` or
`{"role": "assistant", "thinking"?, "text", "toolUses"?: [{"toolUseId", "toolName",
"message", "summary"?, "isError"?}]}`. An assistant entry's blocks come in that order
(thinking, text, tool uses); a block of an earlier kind after a later one starts a new
entry, so the entries in order show a turn as it streamed.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import attrs

from dave_lsp.tools.summaries import describe_tool_use, format_tool_summary, result_text

log = logging.getLogger(__name__)

Entry = dict[str, Any]

# What context.render puts before a prompt that carries the editor's context.
_CONTEXT_OPEN = "<editor-context>\n"
_CONTEXT_CLOSE = "\n</editor-context>\n\n"
_CONVERSATION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
# Markers the CLI writes as the user's text after an interrupted turn or for a pasted
# image: not something the user typed.
_MARKER = re.compile(r"^\[(?:Request interrupted by user[^\]]*|Image: source: [^\]]*)\]$")
# An assistant entry's blocks, in the order one entry holds them.
_ORDER = {"thinking": 0, "text": 1, "toolUses": 2}


@attrs.frozen
class History:
    """What `dave/history` answers: the entries, or why the backend has no record."""

    backend: str
    entries: list[Entry]
    reason: str = ""  # "" when the backend has a record (maybe of no turns yet)


@runtime_checkable
class ChatHistory(Protocol):
    """A live backend session that holds its conversation as chat-completions messages
    (the OpenAI backend's `OpenAISession`)."""

    @property
    def history(self) -> Sequence[Mapping[str, Any]]: ...


def read(
    backend: str,
    conversation_id: str,
    cwd: str,
    env: Mapping[str, str],
    turns: int,
    chat: Sequence[Mapping[str, Any]] | None = None,
) -> History:
    """A session's history: `chat`, the live session's own messages when it keeps them in
    memory, else Claude Code's transcript of `conversation_id` (for the claude backend).
    Reads files: call it off the event loop."""
    if chat is not None:
        return History(backend, chat_entries(chat, cwd))
    if backend == "claude":
        if not conversation_id:
            return History(backend, [])  # no turn has ended yet
        if transcript_path(conversation_id, env) is None:
            if not turns:
                return History(backend, [])
            where = config_dir(env) / "projects"
            return History(
                backend,
                [],
                f"Claude Code's transcript of conversation {conversation_id} is not under"
                f" {where} (it was deleted, or the CLI ran with another HOME or"
                " CLAUDE_CONFIG_DIR); there is no history to show",
            )
        return History(backend, entries(messages(conversation_id, env), cwd))
    if not turns:
        return History(backend, [])
    return History(
        backend,
        [],
        f"the {backend} backend keeps a conversation only in the memory of the server that"
        " ran it, and this session's is gone (the server restarted since, or the session's"
        " backend was closed); its next query continues from the editor's messages",
    )


# -- Claude Code's transcript ----------------------------------------------------------


def config_dir(env: Mapping[str, str]) -> Path:
    """Claude Code's config dir for a CLI run with `env` over the server's environment."""
    merged = {**os.environ, **env}
    if merged.get("CLAUDE_CONFIG_DIR"):
        return Path(merged["CLAUDE_CONFIG_DIR"]).expanduser()
    home = merged.get("HOME") or str(Path.home())
    return Path(home) / ".claude"


def transcript_paths(conversation_id: str, env: Mapping[str, str]) -> list[Path]:
    """Every transcript file of the conversation (one per project folder it ran in); []
    for an id that is not one the CLI makes (a UUID): a path or a glob pattern could
    name other files."""
    if not _CONVERSATION_ID.fullmatch(conversation_id):
        return []
    projects = config_dir(env) / "projects"
    try:
        return sorted(projects.glob(f"*/{conversation_id}.jsonl"))
    except OSError:
        return []


def transcript_path(conversation_id: str, env: Mapping[str, str]) -> Path | None:
    return next(iter(transcript_paths(conversation_id, env)), None)


def messages(conversation_id: str, env: Mapping[str, str]) -> list[Any]:
    """The conversation's user and assistant messages, oldest first ([]: none found).
    Each has `type` ("user" or "assistant") and `message` (the API message dict)."""
    path = transcript_path(conversation_id, env)
    if path is None:
        return []
    try:
        content = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        log.warning("could not read the transcript %s: %s", path, exc)
        return []
    try:
        from claude_agent_sdk._internal import sessions as sdk_sessions

        entries = sdk_sessions._parse_transcript_entries(content)
        return list(sdk_sessions._entries_to_session_messages(entries, None, 0))
    except (ImportError, AttributeError):
        # An SDK without those helpers: the file's own order, every visible message.
        return [_Line(e) for e in _lines(content) if e.get("type") in ("user", "assistant")]


class _Line:
    """A transcript line shaped like the SDK's SessionMessage."""

    def __init__(self, entry: dict[str, Any]) -> None:
        self.type = entry.get("type")
        self.message = entry.get("message") or {}


def _lines(content: str) -> Iterator[dict[str, Any]]:
    for line in content.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and not entry.get("isSidechain") and not entry.get("isMeta"):
            yield entry


def injected(text: str) -> bool:
    """Text the CLI put in the user's turn itself (reminders, command wrappers)."""
    stripped = text.lstrip()
    return stripped.startswith(("<system-reminder>", "<command-", "<local-command-", "Caveat:"))


def blocks_of(message: Any) -> list[dict[str, Any]]:
    """A transcript message's content blocks (a plain string content is one text block)."""
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list):
        return [block for block in content if isinstance(block, dict)]
    return []


def entries(conversation: Sequence[Any], cwd: str) -> list[Entry]:
    """`messages()` as `dave/history` entries (see the module docstring)."""
    built = _Entries()
    uses: dict[str, tuple[dict[str, Any], str, dict[str, Any]]] = {}
    for item in conversation:
        user = getattr(item, "type", None) == "user"
        texts: list[str] = []
        images = 0
        for block in blocks_of(getattr(item, "message", None)):
            kind = block.get("type")
            if user and kind == "text" and isinstance(block.get("text"), str):
                if not injected(block["text"]) and not _MARKER.match(block["text"].strip()):
                    texts.append(block["text"])
            elif user and kind == "image":
                images += 1
            elif user and kind == "tool_result" and block.get("tool_use_id") in uses:
                use, name, tool_input = uses[block["tool_use_id"]]
                failed = bool(block.get("is_error"))
                output = result_text(block.get("content"))
                use["summary"] = format_tool_summary(name, tool_input, output, None, cwd, failed)
                use["isError"] = failed
            elif not user and kind == "thinking" and isinstance(block.get("thinking"), str):
                built.assistant("thinking", block["thinking"])
            elif not user and kind == "text" and isinstance(block.get("text"), str):
                built.assistant("text", block["text"])
            elif not user and kind == "tool_use" and isinstance(block.get("id"), str):
                name = str(block.get("name") or "tool")
                raw = block.get("input")
                tool_input = raw if isinstance(raw, dict) else {}
                use = built.tool_use(block["id"], name, describe_tool_use(name, tool_input, cwd))
                uses[block["id"]] = (use, name, tool_input)
        if texts or images:
            built.user("\n\n".join(texts), images)
    return built.done()


# -- the OpenAI backend's messages -----------------------------------------------------


def chat_entries(conversation: Sequence[Mapping[str, Any]], cwd: str) -> list[Entry]:
    """Chat-completions messages (system, user, assistant with `tool_calls`, tool) as
    `dave/history` entries. Tool messages carry no error flag, so tool uses have no
    `summary` or `isError` here."""
    built = _Entries()
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


# -- building the entries --------------------------------------------------------------


class _Entries:
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
