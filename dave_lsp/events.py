"""The events a backend session yields while it runs one turn.

Backends speak only these types; lsp/server.py turns them into `$/progress` reports and
the query's result. Keeping them backend-neutral is what lets the OpenAI backend plug
in without the server knowing which backend runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from dave_lsp.permissions.rules import Rule

if TYPE_CHECKING:  # the type only: events.py sits below review/
    from dave_lsp.review.proposals import Proposal


@attrs.frozen
class Token:
    """A piece of assistant text, in order."""

    text: str


@attrs.frozen
class Thinking:
    """A piece of the model's thinking, in order."""

    text: str


@attrs.frozen
class ToolUse:
    """The model asked to run a tool."""

    tool_use_id: str
    tool_name: str
    input: dict[str, Any]
    # The human description of the use (`Write notes.txt`), so no client re-derives it.
    message: str = ""
    # The Agent tool use whose subagent made this one, if any.
    parent_tool_use_id: str | None = None


@attrs.frozen
class ToolResult:
    """A tool finished; `summary` follows the protocol's summary rules."""

    tool_use_id: str
    tool_name: str
    summary: str
    is_error: bool
    parent_tool_use_id: str | None = None


@attrs.frozen
class PermissionRequested:
    """The backend waits on the user's answer to `request_id`."""

    request_id: str
    tool_use_id: str
    tool_name: str
    input: dict[str, Any]
    message: str
    # What "allow always" would add for this request.
    allow_always: Rule | None = None
    # A file tool's proposed change, when there is one.
    proposal: Proposal | None = None
    # The model's questions (AskUserQuestion) or plan (ExitPlanMode), for the report.
    details: dict[str, Any] | None = None
    parent_tool_use_id: str | None = None


@attrs.frozen
class PermissionResolved:
    """How a permission request ended; `by` is user, rule, mode or cancel. `rule` is the
    rule that allowed it (by rule) or that the user's allow-always added."""

    request_id: str
    decision: str
    by: str
    rule: str | None = None
    # The user accepted an edited version of the proposal.
    edited: bool = False


@attrs.frozen
class Status:
    """A change of state for the status bar: connecting, working, compacting, or
    retrying (the backend retries a failed model request: which attempt, of how many,
    and in how long)."""

    state: str
    message: str | None = None
    attempt: int | None = None
    max_attempts: int | None = None
    retry_in_ms: int | None = None


@attrs.frozen
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    # The conversation's size as of the turn, and the model's window, when known.
    context_tokens: int | None = None
    context_window: int | None = None


@attrs.frozen
class Done:
    """The turn ended normally. Always the last event of a successful turn."""

    text: str
    stop_reason: str
    usage: Usage
    cost_usd: float
    duration_ms: int
    backend_session_id: str


Event = (
    Token
    | Thinking
    | ToolUse
    | ToolResult
    | PermissionRequested
    | PermissionResolved
    | Status
    | Done
)


class BackendError(Exception):
    """A turn failed; the message is one line a person can act on. `needs_env` names
    the environment variable that would fix it, for clients to word the fix in their
    own settings."""

    def __init__(self, message: str, *, needs_env: str | None = None) -> None:
        super().__init__(message)
        self.needs_env = needs_env


class TurnCancelled(Exception):
    """The turn was interrupted on the user's request (or its session was deleted)."""

    def __init__(self, message: str = "query cancelled; the session keeps its history") -> None:
        super().__init__(message)
