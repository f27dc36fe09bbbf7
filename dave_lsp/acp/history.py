"""A Claude Code conversation, read back from its transcript for `session/load`.

The CLI keeps each conversation at `<config>/projects/<cwd slug>/<id>.jsonl`, where
`<config>` is `CLAUDE_CONFIG_DIR` or `~/.claude` of the environment the CLI ran in,
which is the session's `env` over the server's (tests and some setups give the CLI a
HOME of its own). claude_agent_sdk's `get_session_messages` reads only the server's
own config dir, so the file is found here and parsed with the SDK's parser (the same
chain building and filtering `get_session_messages` does).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from dave_lsp.acp import schema

log = logging.getLogger(__name__)


def config_dir(env: Mapping[str, str]) -> Path:
    merged = {**os.environ, **env}
    if merged.get("CLAUDE_CONFIG_DIR"):
        return Path(merged["CLAUDE_CONFIG_DIR"]).expanduser()
    home = merged.get("HOME") or str(Path.home())
    return Path(home) / ".claude"


def transcript_path(conversation_id: str, env: Mapping[str, str]) -> Path | None:
    if not conversation_id or "/" in conversation_id or conversation_id.startswith("."):
        return None
    projects = config_dir(env) / "projects"
    try:
        return next(projects.glob(f"*/{conversation_id}.jsonl"), None)
    except OSError:
        return None


def messages(conversation_id: str, env: Mapping[str, str]) -> list[Any]:
    """The conversation's user and assistant messages, oldest first ([]: none found)."""
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


def replay(conversation: list[Any], cwd: str) -> Iterator[dict[str, Any]]:
    """The conversation as `session/update` bodies: user and agent text, thinking, and
    each tool use with its result."""
    names: dict[str, str] = {}
    for item in conversation:
        message = item.message if isinstance(item.message, dict) else {}
        content = message.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if not isinstance(blocks, list):
            continue
        user = item.type == "user"
        for block in blocks:
            if not isinstance(block, dict):
                continue
            kind = block.get("type")
            if kind == "text" and isinstance(block.get("text"), str):
                text = block["text"]
                if user and _injected(text):
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


def _injected(text: str) -> bool:
    """Text the CLI put in the user's turn itself (reminders, command wrappers)."""
    stripped = text.lstrip()
    return stripped.startswith(("<system-reminder>", "<command-", "<local-command-", "Caveat:"))


def _result_text(content: Any) -> str:
    if isinstance(content, str):
        return content[:2000]
    if isinstance(content, list):
        parts = [
            b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text"
        ]
        return "\n".join(p for p in parts if isinstance(p, str))[:2000]
    return ""
