"""Permissions: the broker of pending requests and the policy that decides each one.

The broker keys pending requests by `requestId`: the policy registers one and awaits
its future; `dave/permission` resolves it. Cancel, delete and exit resolve every
pending request of a session as a deny with interrupt, so a waiting model never hangs.

The policy decides a tool use in this order:

1. the session's own editor tools (known by the object the session holds, never by a
   name a client or an MCP server could also use) only read: allowed;
2. the user's Claude Code permission rules (permissions/settings_rules.py): a deny rule denies it
   (the model is told which rule), an ask rule asks, an allow rule allows it, reported
   `by: "settings"`;
3. in plan mode a tool with an effect is asked, whatever rule would allow it;
4. a rule of the session that covers it allows it (permissions/rules.py);
5. a query the editor cannot answer (no progress token) denies it;
6. otherwise the user is asked, with the rule "allow always" would add, for at most
   `permissionTimeoutSeconds`.

It knows nothing of sessions: the actor hands it the session's rules, its config (folder,
env, mode, tool servers) and the query's sink.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Container, Mapping, Sequence
from typing import Any, Protocol

import attrs

from dave_lsp import events as ev
from dave_lsp.backends.base import PermissionAnswer
from dave_lsp.permissions import rules as allow_rules
from dave_lsp.permissions import settings_rules
from dave_lsp.permissions.rules import Rule, Suggestion
from dave_lsp.review.files import link_note
from dave_lsp.review.proposals import Proposal, proposal_for
from dave_lsp.review.review import AcceptedEdit
from dave_lsp.session.store import now_iso
from dave_lsp.tools.catalog import CLIENT_FILES_SERVER, FILE_EDITS
from dave_lsp.tools.editor import SERVER_NAME as EDITOR_SERVER
from dave_lsp.tools.editor import FileTools, ToolServer
from dave_lsp.tools.summaries import describe_tool_use

log = logging.getLogger(__name__)


@attrs.frozen
class Reply:
    """What the user said besides the decision (`dave/permission`'s other fields)."""

    reason: str = ""
    updated_input: dict[str, Any] | None = None
    edited_content: str | None = None  # the user's version of the proposal
    answers: dict[str, str | list[str]] | None = None  # AskUserQuestion's answers
    permission_mode: str | None = None  # the mode after an approved plan


@attrs.frozen
class Outcome:
    """How a pending request ended."""

    answer: PermissionAnswer
    by: str  # user | cancel
    always: bool = False  # the user chose "allow always"
    reply: Reply = Reply()


class UnknownRequest(LookupError):
    """`dave/permission` named a request that is not pending."""


@attrs.define
class PendingPermission:
    request_id: str
    session_id: str
    tool_name: str
    future: asyncio.Future[Outcome]


class PermissionBroker:
    """Every pending permission request of the server."""

    def __init__(self) -> None:
        self._pending: dict[str, PendingPermission] = {}
        self._answered: set[str] = set()

    def register(self, session_id: str, tool_name: str) -> PendingPermission:
        request = PendingPermission(
            request_id=str(uuid.uuid4()),
            session_id=session_id,
            tool_name=tool_name,
            future=asyncio.get_running_loop().create_future(),
        )
        self._pending[request.request_id] = request
        return request

    def forget(self, request_id: str) -> None:
        self._pending.pop(request_id, None)

    def answer(self, request_id: str, decision: str, reply: Reply = Reply()) -> PendingPermission:
        """Resolve a request from the user's answer; raise UnknownRequest if not pending."""
        request = self._pending.pop(request_id, None)
        if request is None or request.future.done():
            if request_id in self._answered:
                raise UnknownRequest(f"permission request {request_id} was already answered")
            raise UnknownRequest(
                f"no pending permission request {request_id}; it may have been cancelled"
            )
        self._answered.add(request_id)
        allow = decision in ("allow", "allowAlways")
        answer = PermissionAnswer(
            allow=allow,
            reason=reply.reason if not allow else "",
            updated_input=reply.updated_input if allow else None,
        )
        request.future.set_result(Outcome(answer, "user", decision == "allowAlways", reply))
        return request

    def deny_session(self, session_id: str, reason: str) -> int:
        """Deny every pending request of a session, with interrupt; returns how many."""
        denied = 0
        for request in [r for r in self._pending.values() if r.session_id == session_id]:
            self._pending.pop(request.request_id, None)
            if not request.future.done():
                request.future.set_result(
                    Outcome(PermissionAnswer(allow=False, reason=reason, interrupt=True), "cancel")
                )
                denied += 1
        return denied

    def pending_for(self, session_id: str) -> int:
        return sum(1 for r in self._pending.values() if r.session_id == session_id)


class Sink(Protocol):
    """Where a query's permission events go (progress.ProgressSink)."""

    @property
    def can_ask(self) -> bool: ...

    def emit(self, event: ev.Event) -> None: ...


@attrs.frozen
class ToolRequest:
    """A backend's request to run one tool."""

    tool_use_id: str
    tool_name: str
    tool_input: dict[str, Any]
    suggestions: Sequence[Suggestion] = ()
    # The Agent tool use whose subagent asks, if any.
    parent_tool_use_id: str | None = None


@attrs.frozen
class Decision:
    """The policy's answer; the rule to add to the session when the user chose "allow
    always"; and the user's version of the proposal when they edited it."""

    answer: PermissionAnswer
    new_rule: Rule | None = None
    edit: AcceptedEdit | None = None


NO_PROGRESS_REASON = (
    "The editor cannot answer permission requests (the query had no progress token); "
    "it must allow this tool through its permission mode."
)


class PermissionPolicy:
    """Decides tool uses for every session of the server."""

    def __init__(self, broker: PermissionBroker, timeout_seconds: float | None) -> None:
        self.broker = broker
        self.timeout_seconds = timeout_seconds

    async def decide(
        self,
        session_id: str,
        cwd: str,
        rules: Sequence[Rule],
        request: ToolRequest,
        sink: Sink,
        files: FileTools | None = None,
        *,
        mode: str = "default",
        env: Mapping[str, str] | None = None,
        editor: ToolServer | None = None,
        trusted: bool = False,
    ) -> Decision:
        """`files`: the session's file tools, when its files are not the disk's (an ACP
        client's buffers): a proposal for a tool they stand in for is then worked out
        from their text. `mode`: the session's permission mode; `env`: its environment
        (where the user's settings are); `editor`: its own editor tools, the only
        tools allowed for being read-only; `trusted`: the folder's own settings rules
        apply too."""
        name, tool_input = request.tool_name, request.tool_input
        parent = request.parent_tool_use_id
        if name in owned_tools(editor):
            # The editor's tools only read: never asked, in any mode.
            sink.emit(ev.PermissionResolved(f"auto-{request.tool_use_id}", "allow", "mode"))
            return Decision(PermissionAnswer(allow=True))
        asking_user = name in _ASKS_THE_USER
        setting = (
            None
            if asking_user
            else await asyncio.to_thread(
                settings_rules.match, name, tool_input, cwd, env or {}, trusted
            )
        )
        if setting is not None and setting.behavior == "deny":
            sink.emit(
                ev.PermissionResolved(
                    f"rule-{request.tool_use_id}", "deny", "settings", setting.rule
                )
            )
            return Decision(PermissionAnswer(allow=False, reason=settings_rules.denial(setting)))
        # Plan mode: no standing rule lets a tool with an effect run (the CLI writes its
        # plan file without asking; nothing else with an effect runs unasked).
        planning = mode == "plan" and name not in NO_EFFECT
        if setting is not None and setting.behavior == "allow" and not planning:
            sink.emit(
                ev.PermissionResolved(
                    f"rule-{request.tool_use_id}", "allow", "settings", setting.rule
                )
            )
            return Decision(PermissionAnswer(allow=True))
        rule = (
            None
            if asking_user or planning or setting is not None
            else next((r for r in rules if allow_rules.covers(r.rule, name, tool_input, cwd)), None)
        )
        if rule is not None:
            sink.emit(
                ev.PermissionResolved(f"rule-{request.tool_use_id}", "allow", "rule", rule.rule)
            )
            return Decision(PermissionAnswer(allow=True))
        if not sink.can_ask:
            return Decision(PermissionAnswer(allow=False, reason=NO_PROGRESS_REASON))
        # Questions and plans are for the user to answer, never for a standing rule.
        proposal = (
            None if asking_user else allow_rules.propose(name, tool_input, request.suggestions, cwd)
        )
        change = None
        if name in FILE_EDITS and files is not None and name in files.replaces:
            change = await files.proposal(name, tool_input, cwd)
        elif name in FILE_EDITS:
            # Reads the file (up to 10 MiB) and diffs it: off the loop.
            change = await asyncio.to_thread(proposal_for, name, tool_input, cwd)
        pending = self.broker.register(session_id, name)
        sink.emit(
            ev.PermissionRequested(
                pending.request_id,
                request.tool_use_id,
                name,
                tool_input,
                _question(name, tool_input, cwd),
                proposal,
                change,
                await _details(name, tool_input),
                parent,
            )
        )
        try:
            outcome = await self._wait(pending)
        except asyncio.CancelledError:
            # The backend gave up on the answer (its process died): close the prompt.
            sink.emit(ev.PermissionResolved(pending.request_id, "deny", "cancel"))
            raise
        answer = _for_tool(name, tool_input, outcome)
        added = None
        if outcome.always and answer.allow and proposal is not None:
            added = attrs.evolve(proposal, created_at=now_iso())
        edit = _accepted_edit(change, outcome.reply.edited_content, name)
        sink.emit(
            ev.PermissionResolved(
                pending.request_id,
                "allow" if answer.allow else "deny",
                outcome.by,
                added.rule if added else None,
                edit is not None,
            )
        )
        return Decision(answer, added, edit)

    async def _wait(self, pending: PendingPermission) -> Outcome:
        timeout = self.timeout_seconds
        try:
            return await asyncio.wait_for(asyncio.shield(pending.future), timeout)
        except TimeoutError:
            reason = (
                f"No answer to the permission request for {pending.tool_name} within "
                f"{timeout:g} s (permissionTimeoutSeconds); the tool was denied."
            )
            return Outcome(PermissionAnswer(allow=False, interrupt=True, reason=reason), "cancel")
        finally:
            self.broker.forget(pending.request_id)


def _accepted_edit(
    change: Proposal | None, edited_content: str | None, tool_name: str
) -> AcceptedEdit | None:
    """The user's version to land after the tool, when they edited the proposal."""
    if edited_content is None:
        return None
    if change is None or change.proposed is None:
        log.warning(
            "editedContent for %s ignored: the request had no full proposal to edit", tool_name
        )
        return None
    if edited_content == change.proposed:
        return None  # accepted as proposed
    return AcceptedEdit(change.path, change.proposed, edited_content)


def owned_tools(editor: ToolServer | None) -> frozenset[str]:
    """The model-facing names of the session's own editor tools (`mcp__editor__hover`):
    built from the object the session holds, so a client's or a folder's MCP server
    that calls itself `editor` gets none of their trust (its tools are asked)."""
    if editor is None:
        return frozenset()
    return frozenset(f"mcp__{editor.server_name}__{spec.name}" for spec in editor.specs())


# MCP server names the server's own tool servers use, and `ide`, which the CLI keeps for
# its own IDE integration: a client's MCP server never gets one of these.
OWNED_SERVER_NAMES = frozenset({EDITOR_SERVER, CLIENT_FILES_SERVER, "ide"})


def client_server_name(name: str, taken: Container[str]) -> str:
    """The name a client's MCP server runs under: its own, unless the server owns that
    name (`editor` becomes `editor-client`) or another server of the client has it."""
    if name not in OWNED_SERVER_NAMES and name not in taken:
        return name
    renamed, number = f"{name}-client", 1
    while renamed in OWNED_SERVER_NAMES or renamed in taken:
        number += 1
        renamed = f"{name}-client-{number}"
    return renamed


# Tools with no effect outside the conversation: plan mode lets standing rules allow
# these only.
NO_EFFECT = frozenset(
    {
        "Read", "Grep", "Glob", "LS", "NotebookRead", "WebFetch", "WebSearch", "TodoWrite",
        "Task", "Agent", "ToolSearch", "BashOutput", "ListMcpResourcesTool",
        "ReadMcpResourceTool",
    }
)  # fmt: skip
# Tools whose "permission" is the user's answer: questions, and leaving plan mode.
_ASKS_THE_USER = frozenset({"AskUserQuestion", "ExitPlanMode"})
DECLINED_QUESTIONS = "The user declined to answer the questions."
MAX_PLAN_BYTES = 256 * 1024


def _question(name: str, tool_input: dict[str, Any], cwd: str) -> str:
    if name == "AskUserQuestion":
        return "The model asks you a question."
    if name == "ExitPlanMode":
        return "Approve the plan and start?"
    # A link names its target too: the write lands there.
    return f"Allow {describe_tool_use(name, tool_input, cwd)}{link_note(tool_input, cwd)}?"


async def _details(name: str, tool_input: dict[str, Any]) -> dict[str, Any] | None:
    """The report's extra fields: AskUserQuestion's `questions`, ExitPlanMode's `plan`."""
    if name == "AskUserQuestion":
        questions = tool_input.get("questions")
        return {"questions": questions if isinstance(questions, list) else []}
    if name == "ExitPlanMode":
        return {"plan": await asyncio.to_thread(_plan_text, tool_input)}
    return None


def _plan_text(tool_input: dict[str, Any]) -> str:
    """The plan: the input's `plan`, else the plan file the CLI names (`planFilePath`):
    the CLI fills the input from that file, and leaves it empty when there is none."""
    plan = tool_input.get("plan")
    if isinstance(plan, str) and plan.strip():
        return plan
    path = tool_input.get("planFilePath")
    if isinstance(path, str) and path:
        try:
            with open(path, encoding="utf-8", errors="replace") as file:
                return file.read(MAX_PLAN_BYTES)
        except OSError as exc:
            log.warning("could not read the plan file %s: %s", path, exc)
    return ""


def _for_tool(name: str, tool_input: dict[str, Any], outcome: Outcome) -> PermissionAnswer:
    """The backend's answer: for a question, the user's answers in the tool's input;
    for a plan, the mode to switch to."""
    answer, reply = outcome.answer, outcome.reply
    if name == "AskUserQuestion":
        if not answer.allow:
            return attrs.evolve(answer, reason=answer.reason or DECLINED_QUESTIONS)
        answers = {
            question: ", ".join(value) if isinstance(value, list) else value
            for question, value in (reply.answers or {}).items()
        }
        return attrs.evolve(answer, updated_input={**tool_input, "answers": answers})
    if name == "ExitPlanMode" and answer.allow:
        return attrs.evolve(answer, set_mode=reply.permission_mode)
    return answer
