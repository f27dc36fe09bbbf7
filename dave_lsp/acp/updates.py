"""One ACP prompt turn: its events become `session/update` notifications, and its
permission requests become `session/request_permission` requests to the client.

`TurnUpdates` is the turn's sink (the `progress.EventSink` the session layer writes
to, as LSP's `ProgressSink` is). Text is coalesced as in LSP mode: the first chunk of
a turn goes out at once, later ones are merged for at most 16 ms or 4 KB and flushed
before any other update, so order and content stay exact. A permission request is
answered through the same `PermissionBroker` as `dave/permission`, so the policy,
the allow-always rules and the timeouts are LSP mode's.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from dave_lsp import events as ev
from dave_lsp.acp import schema
from dave_lsp.acp.transport import Connection, RpcError
from dave_lsp.permissions import PermissionBroker, Reply, UnknownRequest
from dave_lsp.progress import TextCoalescer
from dave_lsp.protocol import ParamsError

log = logging.getLogger(__name__)

UPDATE = "session/update"
REQUEST_PERMISSION = "session/request_permission"
_KIND = {"token": "agent_message_chunk", "thinking": "agent_thought_chunk"}


class TurnUpdates:
    """Sends one prompt turn's updates; asks the client for its permissions."""

    def __init__(
        self, conn: Connection, session_id: str, cwd: str, broker: PermissionBroker
    ) -> None:
        self._conn = conn
        self._session_id = session_id
        self._cwd = cwd
        self._broker = broker
        self._text = TextCoalescer(lambda kind, text: self._send(schema.chunk(_KIND[kind], text)))
        self._closed = False
        self._asking: set[asyncio.Task[None]] = set()
        self._titles: dict[str, str] = {}
        self._tool_of: dict[str, str] = {}  # permission request id -> tool use id

    @property
    def can_ask(self) -> bool:
        return not self._closed and not self._conn.gone

    def _send(self, body: dict[str, Any]) -> None:
        if not self._closed:
            self._conn.notify(UPDATE, schema.update(self._session_id, body))

    def emit(self, event: ev.Event) -> None:
        if self._closed:
            return
        if type(event) is ev.Token:  # the common case first
            self._text.add("token", event.text)
            return
        if isinstance(event, ev.Thinking):
            self._text.add("thinking", event.text)
            return
        self.flush()
        match event:
            case ev.ToolUse(tool_use_id, tool_name, tool_input, message, _):
                self._titles[tool_use_id] = message or tool_name
                self._send(schema.tool_call(tool_use_id, message, tool_name, tool_input, self._cwd))
            case ev.ToolResult(tool_use_id, _, summary, is_error, _):
                self._send(
                    schema.tool_call_update(
                        tool_use_id,
                        status="failed" if is_error else "completed",
                        content=[schema.text_content(summary)] if summary else [],
                    )
                )
            case ev.PermissionRequested() as request:
                self._tool_of[request.request_id] = request.tool_use_id
                task = asyncio.create_task(self._ask(request), name="acp permission")
                self._asking.add(task)
                task.add_done_callback(self._asking.discard)
            case ev.PermissionResolved(request_id, decision, _, _, _) if decision == "allow":
                # Requests nobody was asked about are named for their tool use.
                auto = request_id[:5] in ("auto-", "rule-")
                tool_use_id = request_id[5:] if auto else self._tool_of.get(request_id, "")
                if tool_use_id:
                    self._send(schema.tool_call_update(tool_use_id, status="in_progress"))
            case _:
                pass  # status changes and Done: the prompt's response says how it ended

    # -- text ------------------------------------------------------------------------

    def flush(self) -> None:
        self._text.flush()

    def close(self) -> None:
        """The turn is over: send what is buffered; nothing after this."""
        self.flush()
        self._closed = True

    # -- permissions -----------------------------------------------------------------

    async def _ask(self, request: ev.PermissionRequested) -> None:
        tool_call = schema.tool_call(
            request.tool_use_id,
            self._titles.get(request.tool_use_id) or request.message,
            request.tool_name,
            request.input,
            self._cwd,
        )
        del tool_call["sessionUpdate"]
        diff = schema.diff_content(request.proposal)
        if diff:
            tool_call["content"] = diff
            # The diff on the tool call itself too, for clients that show the card.
            self._send(schema.tool_call_update(request.tool_use_id, content=diff))
        options = _options(request)
        params = {"sessionId": self._session_id, "toolCall": tool_call, "options": options}
        try:
            result = await self._conn.request(REQUEST_PERMISSION, params)
            decision, reply = _decision(request, result)
        except RpcError as exc:
            decision, reply = "deny", Reply(f"The editor could not ask the user: {exc}")
        except ParamsError as exc:
            log.warning("%s", exc)
            decision, reply = "deny", Reply("The editor's answer was not understood.")
        try:
            self._broker.answer(request.request_id, decision, reply)
        except UnknownRequest:
            pass  # cancelled or timed out meanwhile: the policy has its answer


def _options(request: ev.PermissionRequested) -> list[dict[str, str]]:
    details = request.details or {}
    if request.tool_name == "ExitPlanMode":
        return [
            {"optionId": "plan:acceptEdits", "name": "Yes, and accept edits", "kind": "allow_once"},
            {"optionId": "plan:default", "name": "Yes, and ask before edits", "kind": "allow_once"},
            {"optionId": schema.REJECT, "name": "No, keep planning", "kind": "reject_once"},
        ]
    if request.tool_name == "AskUserQuestion":
        options = [
            {"optionId": f"answer:{label}", "name": label, "kind": "allow_once"}
            for label in _first_question(details)[1]
        ]
        return [*options, {"optionId": schema.REJECT, "name": "Decline", "kind": "reject_once"}]
    label = request.allow_always.label if request.allow_always is not None else None
    return schema.permission_options(label)


def _first_question(details: dict[str, Any]) -> tuple[str, list[str]]:
    """AskUserQuestion's first question and its option labels (ACP asks one choice)."""
    questions = details.get("questions") or []
    first = questions[0] if questions and isinstance(questions[0], dict) else {}
    labels = [
        str(o.get("label"))
        for o in first.get("options") or []
        if isinstance(o, dict) and o.get("label")
    ]
    return str(first.get("question") or ""), labels


def _decision(request: ev.PermissionRequested, result: Any) -> tuple[str, Reply]:
    """The client's RequestPermissionResponse as a broker decision and reply."""
    answer = schema.parse(REQUEST_PERMISSION, result, schema.acp.RequestPermissionResponse)
    outcome = answer.outcome
    if not isinstance(outcome, schema.acp.AllowedOutcome):
        return "deny", Reply("The user cancelled the request.")
    option = outcome.option_id
    if option in (schema.ALLOW_ONCE, schema.ALLOW_ALWAYS):
        return option, Reply()
    if option.startswith("plan:"):
        return "allow", Reply(permission_mode=option.removeprefix("plan:"))
    if option.startswith("answer:"):
        question, _ = _first_question(request.details or {})
        return "allow", Reply(answers={question: option.removeprefix("answer:")})
    return "deny", Reply("The user rejected this tool use.")
