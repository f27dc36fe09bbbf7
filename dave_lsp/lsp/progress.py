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
from dave_lsp.rpc import TextCoalescer
from dave_lsp.session import results

FLUSH_SECONDS = rpc.FLUSH_SECONDS
FLUSH_CHARS = rpc.FLUSH_CHARS

Send = Callable[[dict[str, Any]], None]


# The session layer declares the sink; named here for the LSP front end.
EventSink = results.EventSink


def report_for(event: ev.Event, session_id: str) -> dict[str, Any] | None:
    """The protocol's report value for an event (token and thinking are merged elsewhere)."""
    match event:
        case ev.ToolUse(tool_use_id, tool_name, tool_input, message, parent):
            return _nested(
                {
                    "kind": "report",
                    "type": "toolUse",
                    "toolUseId": tool_use_id,
                    "toolName": tool_name,
                    "input": tool_input,
                    "message": message or tool_name,
                },
                parent,
            )
        case ev.ToolResult(tool_use_id, tool_name, summary, is_error, parent):
            return _nested(
                {
                    "kind": "report",
                    "type": "toolResult",
                    "toolUseId": tool_use_id,
                    "toolName": tool_name,
                    "summary": summary,
                    "isError": is_error,
                },
                parent,
            )
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
            report = {
                "kind": "report",
                "type": "permissionRequest",
                "requestId": request_id,
                "sessionId": session_id,
                "toolUseId": tool_use_id,
                "toolName": tool_name,
                "input": tool_input,
                "message": message,
            }
            if allow_always is not None:
                report["allowAlways"] = {"rule": allow_always.rule, "label": allow_always.label}
            if proposal is not None:
                report["proposal"] = proposal
            report.update(details or {})
            return _nested(report, parent)
        case ev.PermissionResolved(request_id, decision, by, rule, edited):
            resolved: dict[str, Any] = {
                "kind": "report",
                "type": "permissionResolved",
                "requestId": request_id,
                "decision": decision,
                "by": by,
            }
            if rule:
                resolved["rule"] = rule
            if edited:
                resolved["edited"] = True
            return resolved
        case ev.Status(state, message, attempt, max_attempts, retry_in_ms):
            status: dict[str, Any] = {"kind": "report", "type": "status", "state": state}
            if message:
                status["message"] = message
            for key, value in (
                ("attempt", attempt),
                ("maxAttempts", max_attempts),
                ("retryInMs", retry_in_ms),
            ):
                if value is not None:
                    status[key] = value
            return status
    return None


def _nested(report: dict[str, Any], parent: str | None) -> dict[str, Any]:
    if parent:
        report["parentToolUseId"] = parent
    return report


class ProgressSink:
    """Sends one query's reports on its work-done token; a no-op without one."""

    def __init__(self, send: Send | None, session_id: str) -> None:
        self._send = send
        self._session_id = session_id
        self._text = TextCoalescer(
            lambda kind, text: self._post({"kind": "report", "type": kind, "text": text})
        )
        self._closed = False

    @property
    def can_ask(self) -> bool:
        """Whether permission requests can reach the user through this query."""
        return self._send is not None and not self._closed

    def begin(self) -> None:
        self._post({"kind": "begin", "title": "Dave", "cancellable": True})

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
        self._post({"kind": "report", "type": "error", "message": message})

    def end(self) -> None:
        if self._closed:
            return
        self.flush()
        self._post({"kind": "end"})
        self._closed = True

    def flush(self) -> None:
        self._text.flush()

    def _post(self, value: dict[str, Any]) -> None:
        if self._send is not None and not self._closed:
            self._send(value)
