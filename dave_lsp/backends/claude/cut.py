"""Where to cut a Claude Code conversation so that it holds only its first turns
(dave/rewind, dave/fork): the CLI resumes a copy of it (`fork_session`) up to and
including one transcript entry (`resume_session_at`), the original file untouched.

Probed (claude-agent-sdk 0.2.190, docs/architecture.md): each turn's prompt is a `user`
entry of the transcript whose `parentUuid` is the last entry of the turn before (an
assistant message, or an attachment the CLI added after it), so the cut before turn
N + 1 is that prompt's `parentUuid`. `resume_drops_turn` (the dropped prompt's uuid)
makes the CLI check that everything after the cut belongs to that one turn; it refuses
a cut that drops two or more turns, so it is given only when exactly the last turn goes.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import Any

import attrs

from dave_lsp.backends.base import SessionConfig
from dave_lsp.backends.claude import history

log = logging.getLogger(__name__)

# The warm-up's blocked prompt (warmup.py) is not a turn.
_WARM_UP = "dave-lsp warm-up "


@attrs.frozen
class Cut:
    """How the CLI resumes a copy of `conversation` cut after some turns."""

    conversation: str  # resume, with fork_session
    at: str | None  # resume_session_at: None keeps every entry
    drops: str | None  # resume_drops_turn


async def fork_of(
    config: SessionConfig, resume: str | None, notice: str | None
) -> tuple[str | None, Cut | None, str | None]:
    """What a backend opening to resume `resume` connects with: the conversation to
    resume, the cut when `config.resume_turns` asks for one (dave/rewind, dave/fork),
    and the notice for the user. A cut that cannot be made (the transcript is gone)
    starts a new conversation and says so."""
    turns = config.resume_turns
    if resume is None or resume != config.resume or turns is None:
        return resume, None, notice  # no cut asked, or the backend moved on to its copy
    found = await asyncio.to_thread(cut, resume, config.env, turns)
    if found is None:
        lost = f"could not cut the earlier conversation {resume} after turn {turns}"
        return None, None, f"{lost} (its transcript is gone); started a new one"
    return resume, found, notice


def cut(conversation_id: str, env: Mapping[str, str], turns: int) -> Cut | None:
    """The cut that keeps the first `turns` turns of the conversation; None when its
    transcript cannot be read or the turn's prompt has no parent. Reads a file."""
    read = _read(conversation_id, env)
    if read is None or turns < 1:
        return None
    entries, prompts = read
    if turns >= len(prompts):
        return Cut(conversation_id, None, None)  # a copy of the whole conversation
    dropped = prompts[turns]
    parent, direct = _end_of_turn_before(dropped, entries)
    if parent is None:
        return None
    # The CLI's check holds for one dropped turn, cut right after the turn before.
    last = turns == len(prompts) - 1 and direct
    return Cut(conversation_id, parent, str(dropped["uuid"]) if last else None)


def _end_of_turn_before(
    prompt: dict[str, Any], entries: dict[str, dict[str, Any]]
) -> tuple[str | None, bool]:
    """The last message of the turn before `prompt`, and whether that is the prompt's own
    parent. The CLI resumes only at a message of the conversation ("No message found
    with message.uuid" for an attachment, a system entry or a slash command's entries,
    probed), so those are passed over. A conversation compacted since holds no message
    from before its compaction: resuming there fails, and the backend starts a new
    conversation and says so (session.py)."""
    uuid: Any = prompt.get("parentUuid")
    direct = True
    for _ in range(64):  # the entries between two turns are few
        entry = entries.get(uuid) if isinstance(uuid, str) else None
        if entry is None:
            return None, False
        if _message(entry):
            return uuid, direct
        uuid = entry.get("parentUuid")
        direct = False
    return None, False


def _message(entry: dict[str, Any]) -> bool:
    """A message the CLI can resume at: the model's, or the user's that is not meta or a
    slash command's own."""
    if entry.get("type") == "assistant":
        return True
    if entry.get("type") != "user" or entry.get("isMeta"):
        return False
    texts = [b.get("text") for b in history.blocks_of(entry.get("message"))]
    return not any(isinstance(t, str) and t.lstrip().startswith(_COMMAND) for t in texts)


_COMMAND = ("<command-name>", "<local-command-")


def _read(
    conversation_id: str, env: Mapping[str, str]
) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]] | None:
    """The transcript's entries by uuid, and its turns' prompts oldest first (None: no
    transcript). A prompt whose turn only failed at the API (dave-lsp counts no such
    turn: docs/protocol.md) or was interrupted before any tool ran is not a turn."""
    path = history.transcript_path(conversation_id, env)
    if path is None:
        return None
    try:
        content = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        log.warning("could not read the transcript %s: %s", path, exc)
        return None
    entries: dict[str, dict[str, Any]] = {}
    prompts: list[dict[str, Any]] = []
    tools = True  # whether the newest prompt's turn ran a tool
    for line in content.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if not isinstance(entry, dict) or not isinstance(entry.get("uuid"), str):
            continue
        entries[entry["uuid"]] = entry
        if _is_prompt(entry):
            prompts.append(entry)
            tools = False
        elif prompts and not tools and _ended_in_vain(entry):
            prompts.pop()  # the turn dave-lsp did not count
            tools = True
        elif _ran_tool(entry):
            tools = True
    return entries, prompts


def _ended_in_vain(entry: dict[str, Any]) -> bool:
    """An API error as the turn's answer, or the marker of an interrupted turn."""
    if entry.get("type") == "assistant" and entry.get("isApiErrorMessage"):
        return True
    if entry.get("type") != "user" or entry.get("isMeta"):
        return False
    texts = [b.get("text") for b in history.blocks_of(entry.get("message"))]
    return any(isinstance(t, str) and t.startswith("[Request interrupted") for t in texts)


def _ran_tool(entry: dict[str, Any]) -> bool:
    blocks = history.blocks_of(entry.get("message")) if entry.get("type") == "assistant" else []
    return any(block.get("type") == "tool_use" for block in blocks)


def _is_prompt(entry: dict[str, Any]) -> bool:
    """A turn's prompt: a user entry with text the user typed (or a slash command) or an
    image; not a tool's result, a reminder, a marker, a compaction's summary or the
    warm-up."""
    if entry.get("type") != "user" or entry.get("isSidechain"):
        return False
    if entry.get("isMeta") or entry.get("isCompactSummary"):
        return False
    blocks = history.blocks_of(entry.get("message"))
    if any(block.get("type") == "tool_result" for block in blocks):
        return False
    for block in blocks:
        if block.get("type") == "image":
            return True
        text = block.get("text")
        if block.get("type") == "text" and isinstance(text, str):
            if text.lstrip().startswith("<command-name>"):
                return True  # a slash command is a turn too
            if not history.injected(text) and not history.is_marker(text):
                return not text.startswith(_WARM_UP)
    return False
