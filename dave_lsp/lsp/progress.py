"""A query's `$/progress` stream: events become reports, tokens coalesced.

The first token of a turn goes out at once (time to first token is what a user
feels); later tokens are merged (rpc.TextCoalescer, which ACP shares), and always
flushed before any other report, so order and content stay exact.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dave_lsp import events as ev
from dave_lsp import rpc
from dave_lsp.lsp import outgoing as out
from dave_lsp.lsp.protocol import converter
from dave_lsp.rpc import TextCoalescer
from dave_lsp.session import results

FLUSH_SECONDS = rpc.FLUSH_SECONDS
FLUSH_CHARS = rpc.FLUSH_CHARS

Send = Callable[[dict[str, Any]], None]


# The session layer declares the sink; named here for the LSP front end.
EventSink = results.EventSink


def report_for(event: ev.Event, session_id: str) -> out.Report | None:
    """The protocol's report for an event (token and thinking are merged elsewhere)."""
    match event:
        case ev.ToolUse(tool_use_id, tool_name, tool_input, message, parent):
            return out.ToolUseReport(
                tool_use_id, tool_name, tool_input, message or tool_name, parent or None
            )
        case ev.ToolResult(tool_use_id, tool_name, summary, is_error, parent):
            return out.ToolResultReport(tool_use_id, tool_name, summary, is_error, parent or None)
        case ev.PermissionRequested(
            request_id,
            tool_use_id,
            tool_name,
            tool_input,
            message,
            allow_always,
            proposal,
            details,
            parent,
        ):
            details = details or {}
            return out.PermissionRequestReport(
                request_id,
                session_id,
                tool_use_id,
                tool_name,
                tool_input,
                message,
                allow_always=(
                    out.AllowAlways(allow_always.rule, allow_always.label)
                    if allow_always is not None
                    else None
                ),
                proposal=out.proposal_info(proposal) if proposal is not None else None,
                questions=details.get("questions"),
                plan=details.get("plan"),
                parent_tool_use_id=parent or None,
            )
        case ev.PermissionResolved(request_id, decision, by, rule, edited):
            return out.PermissionResolvedReport(request_id, decision, by, rule or None, edited)
        case ev.Status(state, message, attempt, max_attempts, retry_in_ms):
            return out.StatusReport(state, message or None, attempt, max_attempts, retry_in_ms)
    return None


class ProgressSink:
    """Sends one query's reports on its work-done token; a no-op without one."""

    def __init__(self, send: Send | None, session_id: str) -> None:
        self._send = send
        self._session_id = session_id
        self._text = TextCoalescer(lambda kind, text: self._post(out.TextReport(kind, text)))
        self._closed = False

    @property
    def can_ask(self) -> bool:
        """Whether permission requests can reach the user through this query."""
        return self._send is not None and not self._closed

    def begin(self) -> None:
        self._post(out.Begin())

    def emit(self, event: ev.Event) -> None:
        if self._closed:
            return
        if isinstance(event, ev.Token | ev.Thinking):
            self._text.add("token" if isinstance(event, ev.Token) else "thinking", event.text)
            return
        report = report_for(event, self._session_id)
        if report is not None:
            self.flush()
            self._post(report)

    def error(self, message: str) -> None:
        self.flush()
        self._post(out.ErrorReport(message))

    def end(self) -> None:
        if self._closed:
            return
        self.flush()
        self._post(out.End())
        self._closed = True

    def flush(self) -> None:
        self._text.flush()

    def _post(self, report: out.Report) -> None:
        if self._send is not None and not self._closed:
            self._send(converter.unstructure(report))
