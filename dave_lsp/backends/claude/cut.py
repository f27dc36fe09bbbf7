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
    prompts = _prompts(conversation_id, env)
    if prompts is None or turns < 1:
        return None
    if turns >= len(prompts):
        return Cut(conversation_id, None, None)  # a copy of the whole conversation
    dropped = prompts[turns]
    parent = dropped.get("parentUuid")
    if not isinstance(parent, str) or not parent:
        return None
    last = turns == len(prompts) - 1
    return Cut(conversation_id, parent, str(dropped["uuid"]) if last else None)


def _prompts(conversation_id: str, env: Mapping[str, str]) -> list[dict[str, Any]] | None:
    """The transcript's prompt entries, oldest first (None: no transcript)."""
    path = history.transcript_path(conversation_id, env)
    if path is None:
        return None
    try:
        content = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        log.warning("could not read the transcript %s: %s", path, exc)
        return None
    prompts = []
    for line in content.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and _is_prompt(entry):
            prompts.append(entry)
    return prompts


def _is_prompt(entry: dict[str, Any]) -> bool:
    """A user's prompt: a user entry with text the user typed or an image, not a tool's
    result, a reminder, a marker or the warm-up."""
    if entry.get("type") != "user" or entry.get("isMeta") or entry.get("isSidechain"):
        return False
    if not isinstance(entry.get("uuid"), str):
        return False
    blocks = history.blocks_of(entry.get("message"))
    if any(block.get("type") == "tool_result" for block in blocks):
        return False
    for block in blocks:
        if block.get("type") == "image":
            return True
        text = block.get("text")
        if block.get("type") == "text" and isinstance(text, str):
            if not history.injected(text) and not history.is_marker(text):
                return not text.startswith(_WARM_UP)
    return False
