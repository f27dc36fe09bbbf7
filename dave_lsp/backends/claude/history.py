"""Claude Code's record of a conversation: its transcript files, read back as `dave/history`
entries (backends/history.py) and, through acp/history.py, for ACP's `session/load`.

The Claude Code CLI keeps each conversation at `<config>/projects/<cwd slug>/<id>.jsonl`,
where `<config>` is `CLAUDE_CONFIG_DIR` or `~/.claude` of the environment the CLI ran in,
which is the session's `env` over the server's (tests and some setups give the CLI a
HOME of its own). claude_agent_sdk's `get_session_messages` reads only the server's own
config dir, so the file is found here and parsed with the SDK's parser (the same chain
building and filtering `get_session_messages` does).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from dave_lsp.backends.history import Entries, Entry, History, HistoryQuery, Message
from dave_lsp.paths import claude_config_dir as config_dir
from dave_lsp.tools.summaries import describe_tool_use, format_tool_summary, result_text

log = logging.getLogger(__name__)

_CONVERSATION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
# Markers the CLI writes as the user's text after an interrupted turn or for a pasted
# image: not something the user typed.
_MARKER = re.compile(r"^\[(?:Request interrupted by user[^\]]*|Image: source: [^\]]*)\]$")


def read(query: HistoryQuery) -> History:
    """Claude Code's transcript of the conversation as entries (`query.chat` is never
    given: the CLI keeps the conversation, not the session). Reads files."""
    backend, conversation_id, env = query.backend, query.conversation_id, query.env
    if not conversation_id:
        return History(backend, [])  # no turn has ended yet
    if transcript_path(conversation_id, env) is None:
        if not query.turns:
            return History(backend, [])
        where = config_dir(env) / "projects"
        return History(
            backend,
            [],
            f"Claude Code's transcript of conversation {conversation_id} is not under"
            f" {where} (it was deleted, or the CLI ran with another HOME or"
            " CLAUDE_CONFIG_DIR); there is no history to show",
        )
    return History(backend, entries(messages(conversation_id, env), query.cwd))


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


def is_marker(text: str) -> bool:
    """A marker the CLI wrote as the user's text (an interrupted turn, a pasted image)."""
    return bool(_MARKER.match(text.strip()))


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
    built = Entries()
    uses: dict[str, tuple[dict[str, Any], str, dict[str, Any]]] = {}
    for item in conversation:
        user = getattr(item, "type", None) == "user"
        texts: list[str] = []
        images = 0
        for block in blocks_of(getattr(item, "message", None)):
            kind = block.get("type")
            if user and kind == "text" and isinstance(block.get("text"), str):
                if not injected(block["text"]) and not is_marker(block["text"]):
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


def kept(conversation_id: str, env: Mapping[str, str]) -> bool:
    """Whether the conversation's transcript is there (the CLI or another agent ran it)."""
    return transcript_path(conversation_id, env) is not None


def conversation(conversation_id: str, env: Mapping[str, str]) -> list[Message]:
    """`messages()` as the backends' `Message`s, without the text the CLI put in the
    user's turn itself (`injected`). Reads files."""
    found: list[Message] = []
    for item in messages(conversation_id, env):
        user = item.type == "user"
        found.append(
            Message(
                "user" if user else "assistant",
                [
                    block
                    for block in blocks_of(item.message)
                    if not (user and _is_text(block) and injected(block["text"]))
                ],
            )
        )
    return found


def _is_text(block: dict[str, Any]) -> bool:
    return block.get("type") == "text" and isinstance(block.get("text"), str)
