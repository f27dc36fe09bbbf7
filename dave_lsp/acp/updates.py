"""One ACP prompt turn: its events become `session/update` notifications, and its
permission requests become `session/request_permission` requests to the client.

`TurnUpdates` is the turn's sink (the `progress.EventSink` the session layer writes
to, as LSP's `ProgressSink` is). Text is coalesced as in LSP mode: the first chunk of
a turn goes out at once, later ones are merged for at most 16 ms or 4 KB and flushed
before any other update, so order and content stay exact. A permission request is
answered through the same `PermissionBroker` as `dave/permission`, so the policy,
the allow-always rules and the timeouts are LSP mode's.

A file tool's `diff` content goes with its permission request; a Write or Edit that
ran unasked (acceptEdits, a rule, bypass) gets it on its `completed` update instead,
from the text before (the turn's change tracking, or the client file tools' record of
the write) and after. Any other asked tool's whole input goes with its request as
text (a Bash command as is, else its JSON; ExitPlanMode its plan), since the title is
cut at 120 characters. AskUserQuestion asks one `session/request_permission` per
question, in order, and answers them all at once (one `elicitation/create` form for
a client that offers forms: questions.py); an approved plan sends
`current_mode_update` (and `mode_changed`'s `config_option_update`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from dave_lsp import events as ev
from dave_lsp import paths
from dave_lsp.acp import outgoing as out
from dave_lsp.acp import questions, schema
from dave_lsp.acp.transport import Connection, RpcError
from dave_lsp.permissions.policy import PermissionBroker, Reply, UnknownRequest
from dave_lsp.review.diff import MAX_SIDE_BYTES
from dave_lsp.review.files import FileText, read_text
from dave_lsp.review.proposals import Proposal
from dave_lsp.rpc import METHOD_NOT_FOUND, ParamsError, TextCoalescer
from dave_lsp.session.store import SessionRecord
from dave_lsp.tools.catalog import FILE_EDITS, file_path

if TYPE_CHECKING:
    from dave_lsp.acp.terminals import ClientTerminals

log = logging.getLogger(__name__)

UPDATE = "session/update"
REQUEST_PERMISSION = "session/request_permission"
_KIND: dict[str, out.ChunkKind] = {
    "token": "agent_message_chunk",
    "thinking": "agent_thought_chunk",
}

# (path) -> the text before and after the latest write of that file by the session's
# client file tools (acp/files.py), or None.
Written = Callable[[str], tuple[str | None, str] | None]
# (path) -> what the file held before the running turn's tools changed it (review/review.py).
BeforeTurn = Callable[[str], FileText | None]


class TurnUpdates:
    """Sends one prompt turn's updates; asks the client for its permissions."""

    def __init__(
        self,
        conn: Connection,
        session_id: str,
        cwd: str,
        broker: PermissionBroker,
        *,
        before_turn: BeforeTurn | None = None,
        written: Written | None = None,
    ) -> None:
        self._before_turn = before_turn
        self._written = written
        self._conn = conn
        self._session_id = session_id
        self._cwd = cwd
        self._broker = broker
        self._text = TextCoalescer(self._send_text)
        self._message: tuple[str, str] | None = None  # the (kind, messageId) being sent
        self._closed = False
        self._asking: set[asyncio.Task[None]] = set()
        self._titles: dict[str, str] = {}
        self._tool_of: dict[str, str] = {}  # permission request id -> tool use id
        self._inputs: dict[str, tuple[str, dict[str, Any]]] = {}  # tool use id -> its tool
        self._diffed: set[str] = set()  # tool uses whose diff was sent
        self._after: dict[str, str] = {}  # path -> its text after this turn's last edit

    @property
    def can_ask(self) -> bool:
        return not self._closed and not self._conn.gone

    def _send(self, body: out.SessionUpdate) -> None:
        if not self._closed:
            self._conn.notify(UPDATE, schema.update(self._session_id, body))

    def _send_text(self, kind: str, text: str) -> None:
        """A text chunk, with the `messageId` of the message it belongs to: one per run
        of text or of thinking, a new one after a tool use or a switch between them."""
        if self._message is None or self._message[0] != kind:
            self._message = (kind, str(uuid.uuid4()))
        self._send(schema.chunk(_KIND[kind], text, self._message[1]))

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
                self._message = None  # the model's message ends at its tool use
                self._titles[tool_use_id] = message or tool_name
                self._inputs[tool_use_id] = (tool_name, tool_input)
                if self.terminals is not None:  # a Bash's terminal goes on its tool call
                    self.terminals.tool_use(tool_use_id, tool_name, tool_input)
                self._send(schema.tool_call(tool_use_id, message, tool_name, tool_input, self._cwd))
            case ev.ToolResult(tool_use_id, _, summary, is_error, _):
                content: list[out.ToolCallContent] = (
                    [] if is_error else self._unasked_diff(tool_use_id)
                )
                if self.terminals is not None:  # kept: the client shows its output
                    content[:0] = self.terminals.content(tool_use_id)
                if summary:
                    content.append(schema.text_content(summary))
                self._send(
                    schema.tool_call_update(
                        tool_use_id, status="failed" if is_error else "completed", content=content
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

    def _unasked_diff(self, tool_use_id: str) -> list[out.ToolCallContent]:
        """The `diff` of a Write or Edit that ran without a permission request showing
        one; [] for other tools or when the texts are unknown (binary, too large)."""
        tool_name, tool_input = self._inputs.get(tool_use_id, ("", {}))
        raw = file_path(tool_input)
        if tool_name not in FILE_EDITS or not raw:
            return []
        path = paths.absolute(raw, self._cwd)
        # Worked out for an asked one too: the next edit's diff starts from its text.
        change = self._written(path) if self._written is not None else None
        if change is None:
            change = self._disk_change(path)
        if change is None:
            self._after.pop(path, None)
            return []
        before, after = change
        self._after[path] = after
        if tool_use_id in self._diffed:
            return []
        return schema.diff_content(Proposal(path, before is not None, before, after, ""))

    def _disk_change(self, path: str) -> tuple[str | None, str] | None:
        """The file's text before this tool (after the turn's earlier edit of it, else
        before the turn) and now. Read on the loop: a text file of at most 256 KiB, once
        per unasked edit, costs less than a thread hop."""
        before: str | None
        if path in self._after:
            before = self._after[path]
        else:
            start = self._before_turn(path) if self._before_turn is not None else None
            if start is None or (start.exists and start.text is None):
                return None
            before = start.text if start.exists else None
        now = read_text(path, MAX_SIDE_BYTES) if os.path.isfile(path) else None
        if now is None or now.text is None:
            return None
        return before, now.text

    def usage(self, usage: ev.Usage, cost_usd: float) -> None:
        """`usage_update` at the turn's end: the context used of the model's window and
        the session's cost so far (sent once the backend knows the window)."""
        if usage.context_tokens is None or not usage.context_window:
            return
        self.flush()
        cost = out.Cost(round(cost_usd, 6), "USD")
        self._send(out.UsageUpdate(usage.context_tokens, usage.context_window, cost))

    # -- text ------------------------------------------------------------------------

    def flush(self) -> None:
        self._text.flush()

    def close(self) -> None:
        """The turn is over: send what is buffered; nothing after this."""
        self.flush()
        self._closed = True

    # -- permissions -----------------------------------------------------------------

    async def _ask(self, request: ev.PermissionRequested) -> None:
        tool_call = self._asked(request)
        try:
            if request.tool_name == "AskUserQuestion":
                decision, reply = await self._questions(request, tool_call)
            else:
                params = out.RequestPermissionRequest(
                    self._session_id, tool_call, _options(request)
                )
                result = await self._conn.request(REQUEST_PERMISSION, params)
                plan = request.tool_name == "ExitPlanMode"
                decision, reply = (_plan_decision if plan else _decision)(result)
        except RpcError as exc:
            decision, reply = "deny", Reply(f"The editor could not ask the user: {exc}")
        except ParamsError as exc:
            log.warning("%s", exc)
            decision, reply = "deny", Reply("The editor's answer was not understood.")
        try:
            self._broker.answer(request.request_id, decision, reply)
        except UnknownRequest:
            return  # cancelled or timed out meanwhile: the policy has its answer
        if request.tool_name == "ExitPlanMode" and decision == "allow":
            # The CLI leaves plan mode on an approval (for `default` without a mode).
            mode = reply.permission_mode or "default"
            self._send(out.CurrentModeUpdate(mode))
            if self.mode_changed is not None:
                self.mode_changed(mode)  # config_option_update (config_options.py)

    def _asked(self, request: ev.PermissionRequested) -> out.PermissionToolCall:
        """The tool call a permission request asks about, with what it would do in
        full: a file tool's diff (sent on the tool call too), a plan, or the input."""
        title = self._titles.get(request.tool_use_id) or request.message
        tool_call = schema.asked_tool_call(
            request.tool_use_id, title, request.tool_name, request.input, self._cwd
        )
        diff = schema.diff_content(request.proposal)
        if diff:
            self._diffed.add(request.tool_use_id)
            # The diff on the tool call itself too, for clients that show the card.
            self._send(schema.tool_call_update(request.tool_use_id, content=diff))
            return attrs.evolve(tool_call, content=diff)
        if request.tool_name == "ExitPlanMode":
            plan = (request.details or {}).get("plan")
            if isinstance(plan, str) and plan.strip():
                # Markdown, shown as such.
                return attrs.evolve(tool_call, content=[schema.text_content(plan)])
            return tool_call
        if request.tool_name == "AskUserQuestion":  # its questions are the titles
            return tool_call
        # Never cut: the title is one short line, the content the whole input.
        return attrs.evolve(
            tool_call,
            title=schema.asked_title(tool_call.title, request.tool_name, request.input),
            content=schema.asked_in_full(request.tool_name, request.input),
        )

    # The client renders elicitation forms: the questions are one (acp/questions.py).
    forms = False
    # The session's Bash runs in client terminals (acp/terminals.py).
    terminals: ClientTerminals | None = None
    # (mode) -> None: told of a mode an approved plan left plan mode for.
    mode_changed: Callable[[str], None] | None = None

    async def _questions(
        self, request: ev.PermissionRequested, tool_call: out.PermissionToolCall
    ) -> tuple[str, Reply]:
        """AskUserQuestion: one form when the client offers them, else (or when it has
        no `elicitation/create` after all) one permission request per question, in
        order, as a permission request asks one choice; a reject of any declines all."""
        if self.forms:
            try:
                return await questions.ask(
                    self._conn, self._session_id, request.tool_use_id, request.details or {}
                )
            except RpcError as exc:
                if exc.code != METHOD_NOT_FOUND:
                    raise
        answers: dict[str, str | list[str]] = {}
        for question, labels in _questions(request.details or {}):
            options = [
                out.PermissionOption(f"answer:{label}", label, schema.ALLOW_ONCE)
                for label in labels
            ]
            options.append(schema.option(schema.REJECT, "Decline"))
            asked = attrs.evolve(tool_call, title=question or tool_call.title)
            params = out.RequestPermissionRequest(self._session_id, asked, options)
            decision, reply = _decision(await self._conn.request(REQUEST_PERMISSION, params))
            if decision != "allow" or reply.answers is None:
                return decision, reply
            answers[question] = reply.answers[""]
        return "allow", Reply(answers=answers)


class SessionTitles:
    """`session_info_update {title, updatedAt}` when a session's title is new to this
    client: after its first prompt (the title LSP mode gives: that prompt's first
    line), and whenever it changes."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._sent: dict[str, str] = {}  # the title each session's client was sent

    def send(self, session_id: str, record: SessionRecord | None) -> None:
        if record is None or not record.title or self._sent.get(session_id) == record.title:
            return
        self._sent[session_id] = record.title
        body = schema.session_info(record.title, record.last_active_at)
        self._conn.notify(UPDATE, schema.update(session_id, body))


def _options(request: ev.PermissionRequested) -> list[out.PermissionOption]:
    if request.tool_name == "ExitPlanMode":
        return schema.plan_options()
    label = request.allow_always.label if request.allow_always is not None else None
    return schema.permission_options(label)


def _questions(details: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """AskUserQuestion's questions, each with its option labels."""
    found = []
    for question in details.get("questions") or []:
        if not isinstance(question, dict):
            continue
        labels = [
            str(o.get("label"))
            for o in question.get("options") or []
            if isinstance(o, dict) and o.get("label")
        ]
        found.append((str(question.get("question") or ""), labels))
    return found


def _decision(result: Any) -> tuple[str, Reply]:
    """The client's RequestPermissionResponse as a broker decision and reply."""
    answer = schema.parse(REQUEST_PERMISSION, result, schema.acp.RequestPermissionResponse)
    outcome = answer.outcome
    if not isinstance(outcome, schema.acp.AllowedOutcome):
        return "deny", Reply("The user cancelled the request.")
    option = outcome.option_id
    if option in schema.DECISIONS:
        return schema.DECISIONS[option], Reply()
    if option.startswith("answer:"):
        # The question is the caller's (one request per question).
        return "allow", Reply(answers={"": option.removeprefix("answer:")})
    return "deny", Reply("The user rejected this tool use.")


def _plan_decision(result: Any) -> tuple[str, Reply]:
    """The answer to ExitPlanMode's options (schema.plan_options): the mode it leaves
    plan mode for."""
    answer = schema.parse(REQUEST_PERMISSION, result, schema.acp.RequestPermissionResponse)
    outcome = answer.outcome
    if not isinstance(outcome, schema.acp.AllowedOutcome):
        return "deny", Reply("The user cancelled the request.")
    mode = schema.PLAN_MODES.get(outcome.option_id)
    if mode is None:
        return "deny", Reply("The user rejected this tool use.")
    return "allow", Reply(permission_mode=mode)
