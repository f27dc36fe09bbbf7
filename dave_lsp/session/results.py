"""What the session layer hands the front ends: where a turn's events go (`EventSink`),
a turn's result (`QueryResult`, with its `ToolResultInfo`s and the files it changed),
and a session's summary (`SessionInfo`).

They are the domain's own types, declared here below both front ends; the LSP front end
sends them as they are (lsp/protocol.py names them among its wire types and its
converter writes them in camelCase), the ACP front end picks what its schema needs.
"""

from __future__ import annotations

from typing import Literal, Protocol

import attrs

from dave_lsp import events as ev
from dave_lsp.events import Usage
from dave_lsp.review.changes import FileChange


class EventSink(Protocol):
    """Where a turn's events go: `ProgressSink` for LSP, `acp.updates.TurnUpdates` for ACP."""

    @property
    def can_ask(self) -> bool: ...

    def emit(self, event: ev.Event) -> None: ...


@attrs.frozen
class ForkedFrom:
    """Where a fork (dave/fork) came from: the session and its last turn it holds."""

    session_id: str
    turn: int


@attrs.frozen
class SessionInfo:
    session_id: str
    state: Literal["idle", "working", "needsInput", "evicted"]
    backend: str
    cwd: str
    model: str | None
    permission_mode: str
    created_at: str
    last_active_at: str
    turns: int
    title: str
    backend_session_id: str
    cost_usd: float = 0.0
    forked_from: ForkedFrom | None = attrs.field(default=None, metadata={"omit_if_default": True})


@attrs.frozen
class ToolResultInfo:
    tool_use_id: str
    tool_name: str
    summary: str
    is_error: bool


@attrs.frozen
class QueryResult:
    session_id: str
    text: str
    stop_reason: str
    tool_results: list[ToolResultInfo]
    usage: Usage
    cost_usd: float
    duration_ms: int
    backend_session_id: str
    # The files this turn's file tools changed (on the LSP wire, FileChangeSummary).
    changes: list[FileChange] = attrs.field(factory=list)
