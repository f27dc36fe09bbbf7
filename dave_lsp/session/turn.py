"""One turn on its way through a session: `QueryJob` collects what the turn produced
(text, tool results) as its events are reported, and gives its outcome, a result or
a failure, in the protocol's shapes.

`TurnFailure` is the `data` of a failed or cancelled query's error, the one type both
the session layer and lsp/server.py use for it.
"""

from __future__ import annotations

import asyncio
from typing import Literal

import attrs

from dave_lsp import events as ev
from dave_lsp.backends.base import Attachment, ChatMessage
from dave_lsp.review.changes import FileChange
from dave_lsp.session.results import EventSink, QueryResult, ToolResultInfo

JobState = Literal["queued", "running", "done"]


@attrs.frozen
class TurnFailure:
    """What a turn produced before it failed or was cancelled (the error's `data`)."""

    session_id: str
    partial_text: str = ""
    tool_results: list[ToolResultInfo] = attrs.field(factory=list)
    changes: list[FileChange] = attrs.field(factory=list)


@attrs.define(eq=False)
class QueryJob:
    """One `dave/query` on its way through a session."""

    session_id: str
    prompt: str
    transcript: list[ChatMessage]
    sink: EventSink
    future: asyncio.Future[QueryResult]
    finished: asyncio.Future[None]
    state: JobState = "queued"
    cancel_requested: bool = False
    # Whether the model got as far as answering (any event but a status change).
    produced: bool = False
    text: list[str] = attrs.field(factory=list)
    tool_results: list[ToolResultInfo] = attrs.field(factory=list)
    # The files the turn's file tools changed (set as the turn ends).
    changes: list[FileChange] = attrs.field(factory=list)
    # What the user typed, when `prompt` also carries the editor's context.
    typed: str | None = None
    attachments: list[Attachment] = attrs.field(factory=list)

    @classmethod
    def create(
        cls, session_id: str, prompt: str, transcript: list[ChatMessage], sink: EventSink
    ) -> QueryJob:
        loop = asyncio.get_running_loop()
        return cls(session_id, prompt, transcript, sink, loop.create_future(), loop.create_future())

    def take(self, event: ev.Event) -> None:
        """Record one event of the turn and report it to the editor."""
        if type(event) is ev.Token:  # the common case first
            self.produced = True
            self.text.append(event.text)
        elif isinstance(event, ev.ToolResult):
            self.produced = True
            self.tool_results.append(
                ToolResultInfo(event.tool_use_id, event.tool_name, event.summary, event.is_error)
            )
        elif not isinstance(event, ev.Status):
            self.produced = True
        self.sink.emit(event)

    def succeed(self, done: ev.Done) -> QueryResult:
        result = QueryResult(
            session_id=self.session_id,
            text="".join(self.text),
            stop_reason=done.stop_reason,
            tool_results=list(self.tool_results),
            usage=done.usage,
            cost_usd=done.cost_usd,
            duration_ms=done.duration_ms,
            backend_session_id=done.backend_session_id,
            changes=list(self.changes),
        )
        if not self.future.done():
            self.future.set_result(result)
        return result

    def fail(self, exc: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(exc)
            # Mark it retrieved: a job cancelled while queued may have nobody awaiting it.
            self.future.exception()

    def close(self) -> None:
        self.state = "done"
        if not self.finished.done():
            self.finished.set_result(None)

    def failure(self) -> TurnFailure:
        return TurnFailure(
            self.session_id, "".join(self.text), list(self.tool_results), list(self.changes)
        )
