"""The Claude Agent SDK's messages as dave-lsp's events (events.py), and the running
turn's state that translating them keeps.

A turn reads the client's inbox; everything in it but a permission request and the
turn's end becomes events here: text and thinking deltas, tool uses (a subagent's
reported under its Agent tool use), tool results (with the `permissionResolved` of a
tool the CLI ran without asking), compacting and retry notices, and the context's size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import attrs
from claude_agent_sdk import (
    AssistantMessage,
    ResultMessage,
    SystemMessage,
    ToolResultBlock,
    ToolUseBlock,
    UserMessage,
)
from claude_agent_sdk.types import StreamEvent

from dave_lsp import events as ev
from dave_lsp.backends.common import one_line
from dave_lsp.tools.summaries import describe_tool_use, format_tool_summary, result_text

# A tool's name as the CLI gives it -> its name for the session layer.
Rename = Callable[[str], str]


@attrs.define
class Turn:
    """The running turn's state, shared by the session's `query`, its reader and
    `interrupt`."""

    started: float
    # The turn's fast path for text deltas (session.py's docstring), while it may take them.
    direct: Callable[[ev.Event], None] | None = None
    last_direct: float = 0.0  # when the reader last handed an event to `direct`
    interrupted: bool = False  # interrupt() was called: the turn ends as TurnCancelled
    stop_reason: str | None = None  # a deny with interrupt stopped the turn, and why
    tools: dict[str, ToolUseBlock] = attrs.field(factory=dict)  # tool uses not yet finished
    asked: set[str] = attrs.field(factory=set)  # tool uses the CLI asked permission for
    # The Agent tool use each subagent's tool use belongs to.
    parents: dict[str, str] = attrs.field(factory=dict)
    # The conversation's size as of the latest model request of the main thread.
    context_tokens: int | None = None


def events(item: Any, turn: Turn, rename: Rename, cwd: str) -> Iterator[ev.Event]:
    """The events of one message of the turn (none for what the protocol does not show)."""
    if isinstance(item, StreamEvent):
        if item.parent_tool_use_id is None:
            event = delta_event(item.event)
            if event is not None:
                yield event
    elif isinstance(item, AssistantMessage):
        # A subagent's messages carry the Agent tool use's id: its tool uses are
        # reported under it; its text is not the answer's.
        parent = item.parent_tool_use_id
        if parent is None and item.usage:
            turn.context_tokens = context_size(item.usage)
        for block in item.content:
            if isinstance(block, ToolUseBlock):
                turn.tools[block.id] = block
                if parent is not None:
                    turn.parents[block.id] = parent
                tool_input = dict(block.input)
                name = rename(block.name)
                yield ev.ToolUse(
                    block.id, name, tool_input, describe_tool_use(name, tool_input, cwd), parent
                )
    elif isinstance(item, SystemMessage):
        if item.subtype == "status" and item.data.get("status") == "compacting":
            yield ev.Status("compacting", "Compacting the conversation…")
        elif item.subtype == "api_retry":
            yield retrying(item.data)
    elif isinstance(item, UserMessage):
        if isinstance(item.content, str):
            return
        for block in item.content:
            if isinstance(block, ToolResultBlock):
                yield from tool_result(block, item, turn, rename, cwd)


def tool_result(
    block: ToolResultBlock, message: UserMessage, turn: Turn, rename: Rename, cwd: str
) -> list[ev.Event]:
    tool = turn.tools.pop(block.tool_use_id, None)
    parent = turn.parents.get(block.tool_use_id)
    name = rename(tool.name) if tool else ""
    tool_input = dict(tool.input) if tool else {}
    is_error = bool(block.is_error)
    out: list[ev.Event] = []
    if block.tool_use_id not in turn.asked and not is_error:
        # The CLI ran it without asking: the permission mode (or a read-only tool's
        # default) allowed it. Say so, as the protocol asks.
        out.append(ev.PermissionResolved(f"auto-{block.tool_use_id}", "allow", "mode"))
    summary = format_tool_summary(
        name, tool_input, result_text(block.content), message.tool_use_result, cwd, is_error
    )
    out.append(ev.ToolResult(block.tool_use_id, name, summary, is_error, parent))
    return out


def delta_event(event: dict[str, Any]) -> ev.Event | None:
    if event.get("type") != "content_block_delta":
        return None
    delta = event.get("delta") or {}
    if delta.get("type") == "text_delta":
        return ev.Token(str(delta.get("text", "")))
    if delta.get("type") == "thinking_delta":
        return ev.Thinking(str(delta.get("thinking", "")))
    return None


def retrying(data: dict[str, Any]) -> ev.Status:
    """The CLI's `api_retry` notice as a status: it retries a failed model request."""
    attempt, most = data.get("attempt"), data.get("max_retries")
    delay = data.get("retry_delay_ms")
    status = data.get("error_status")
    why = f"API Error {status}" if status else str(data.get("error") or "API error")
    seconds = f"{delay / 1000:.0f} s" if isinstance(delay, int | float) else "a moment"
    of = f" of {most}" if isinstance(most, int) else ""
    return ev.Status(
        "retrying",
        f"Retrying in {seconds} (attempt {attempt}{of}): {why}",
        attempt if isinstance(attempt, int) else None,
        most if isinstance(most, int) else None,
        int(delay) if isinstance(delay, int | float) else None,
    )


def context_size(usage: dict[str, Any]) -> int:
    """A model request's context: its input (cached or not) and its output."""
    return sum(
        int(usage.get(key) or 0)
        for key in (
            "input_tokens",
            "cache_read_input_tokens",
            "cache_creation_input_tokens",
            "output_tokens",
        )
    )


def usage(result: ResultMessage, turn: Turn, window: int | None) -> ev.Usage:
    """A finished turn's usage: the result's tokens, the context as of its last request."""
    totals = result.usage or {}
    return ev.Usage(
        input_tokens=int(totals.get("input_tokens") or 0),
        output_tokens=int(totals.get("output_tokens") or 0),
        context_tokens=turn.context_tokens,
        context_window=window,
    )


def failure(result: ResultMessage) -> ev.BackendError:
    """A result with `is_error` as the error the user reads, saying what to do."""
    detail = result.result or "; ".join(result.errors or []) or result.subtype
    text = one_line(f"Claude Code: {detail}")
    lowered = text.lower()
    if result.api_error_status == 401 or "api key" in lowered or "/login" in lowered:
        # The client words where to set it (its own settings), from `needsEnv`.
        text += " (set ANTHROPIC_API_KEY in the backend's environment)"
        return ev.BackendError(text, needs_env="ANTHROPIC_API_KEY")
    if result.api_error_status == 429:
        text += " (rate limited: wait and send again)"
    return ev.BackendError(text)


def commands(info: dict[str, Any] | None) -> list[dict[str, str]]:
    """The CLI's server info's slash commands as `{name, description, argumentHint}`,
    by name."""
    listed = [
        {
            "name": str(c.get("name") or ""),
            "description": str(c.get("description") or ""),
            "argumentHint": str(c.get("argumentHint") or ""),
        }
        for c in (info or {}).get("commands") or []
        if isinstance(c, dict) and c.get("name")
    ]
    return sorted(listed, key=lambda c: c["name"])
