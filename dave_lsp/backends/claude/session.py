"""The Claude backend: one persistent `ClaudeSDKClient` (one Claude Code CLI process)
per session, connected once and reused for every query.

One reader task drains the client into an inbox for as long as it is connected (the
SDK's buffer is bounded, and a permission callback waiting while nobody reads could
deadlock). Permission callbacks are queued into the same inbox, so the session sees a
tool's `toolUse` before its permission request, in the order the CLI sent them.

Text deltas are most of what a turn carries. While a turn runs and the inbox is empty,
the reader hands them straight to the turn's `direct` callback instead: no queue hop
and no generator step per token. Anything else, and any delta that arrives while the
inbox holds items, goes through the inbox, so the order is the CLI's.

A client connected ahead of need (a prewarm spare, or `dave/newSession`) is warmed up:
the CLI's first turn of a conversation costs about three follow-ups, most of it work
the CLI does once per process. The warm-up sends a prompt that the session's own
`UserPromptSubmit` hook blocks, so that work is done before the user asks, while
nothing reaches the model and nothing enters the conversation (docs/architecture.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import attrs
from claude_agent_sdk import (
    AssistantMessage,
    ClaudeAgentOptions,
    ClaudeSDKClient,
    CLIConnectionError,
    CLINotFoundError,
    HookContext,
    HookInput,
    HookJSONOutput,
    HookMatcher,
    PermissionResultAllow,
    PermissionResultDeny,
    PermissionUpdate,
    ResultMessage,
    SdkMcpTool,
    SystemMessage,
    ToolPermissionContext,
    ToolResultBlock,
    ToolUseBlock,
    UserMessage,
    create_sdk_mcp_server,
)
from claude_agent_sdk.types import HookEvent, McpServerConfig, StreamEvent

from dave_lsp import events as ev
from dave_lsp import trust
from dave_lsp.backends.base import (
    Attachment,
    ChatMessage,
    PermissionAnswer,
    PermissionAsker,
    SessionConfig,
    ToolObserver,
)
from dave_lsp.backends.claude import history
from dave_lsp.backends.claude.transcript import first_message
from dave_lsp.backends.common import Ended, finished, one_line, pump
from dave_lsp.backends.registry import ClaudeOptions, options_of
from dave_lsp.permissions import settings_rules
from dave_lsp.permissions.rules import Suggestion
from dave_lsp.pids import LIVE_PIDS, kill_pid, pid_alive
from dave_lsp.tools.editor import EditorToolError, ToolServer
from dave_lsp.tools.summaries import describe_tool_use, format_tool_summary, result_text

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 60.0
CLOSE_TIMEOUT = 4.0
WARM_UP_TIMEOUT = 10.0
# How long a turn's end waits for the context window still being asked for.
WINDOW_WAIT = 0.5
# The context window of each model (by the session's `model`, "" for the default),
# and the one request per model that learns it.
_WINDOWS: dict[str, int] = {}
_WINDOW_TASKS: dict[str, asyncio.Task[None]] = {}
# The tools whose files the session snapshots before they run (review/review.py).
FILE_TOOL_MATCHER = "Write|Edit|MultiEdit|NotebookEdit"
WARM_UP_REASON = "dave-lsp warmed this session up in advance; the prompt was not sent"
# Set when a CLI let the warm-up prompt through to the model (its hooks did not run):
# warming up is then off for the rest of the server's life.
_warm_up_unsafe = False


@attrs.define
class _Ask:
    """A permission callback waiting for the turn's reader to handle it."""

    tool_use_id: str
    tool_name: str
    tool_input: dict[str, Any]
    suggestions: list[Suggestion]
    reply: asyncio.Future[PermissionAnswer]


@attrs.define
class _Turn:
    """The running turn's state, shared by `query`, the reader and `interrupt`."""

    started: float
    # The turn's fast path for text deltas (see the module docstring), while it may take them.
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


class ClaudeSession:
    """A `BackendSession` backed by a persistent Claude Code CLI process."""

    def __init__(
        self, config: SessionConfig, ask: PermissionAsker, observer: ToolObserver | None = None
    ) -> None:
        self._config = config
        self._ask = ask
        self._observer = observer
        self._client: ClaudeSDKClient | None = None
        self._reader: asyncio.Task[None] | None = None
        self._inbox: asyncio.Queue[Any] = asyncio.Queue()
        self._settings = options_of(config, ClaudeOptions)
        files = config.files
        self._renamed = (
            {f"mcp__{files.server_name}__{n}": n for n in files.replaces} if files else {}
        )
        self._backend_session_id = config.resume or ""
        self._has_conversation = False
        self._dead = False
        self._turn: _Turn | None = None
        self._cost_so_far = 0.0

        self._stderr: deque[str] = deque(maxlen=20)
        self._warm_up_prompt = f"dave-lsp warm-up {uuid.uuid4()}"
        self._warm_up_conversation = ""  # the conversation file the warm-up started
        self.pid: int | None = None

    @property
    def alive(self) -> bool:
        # The reader ends when the CLI's output does: the process is gone even if no
        # query has looked yet.
        reader_done = self._reader is not None and self._reader.done() and self._turn is None
        process_gone = self.pid is not None and not pid_alive(self.pid)
        return self._client is not None and not self._dead and not reader_done and not process_gone

    @property
    def backend_session_id(self) -> str:
        return self._backend_session_id

    def _options(self, resume: str | None, warm_up: bool) -> ClaudeAgentOptions:
        config = self._config
        hooks: dict[HookEvent, list[HookMatcher]] = {}
        if warm_up:
            hooks["UserPromptSubmit"] = [HookMatcher(hooks=[self._block_warm_up])]
        if self._observer is not None:
            # The CLI runs these around file tools in every permission mode (probed:
            # docs/architecture.md); the matcher keeps other tools free of the round trip.
            hooks["PreToolUse"] = [HookMatcher(matcher=FILE_TOOL_MATCHER, hooks=[self._before])]
            hooks["PostToolUse"] = [HookMatcher(matcher=FILE_TOOL_MATCHER, hooks=[self._after])]
        return ClaudeAgentOptions(
            system_prompt={"type": "preset", "preset": "claude_code"},
            include_partial_messages=True,
            permission_mode=config.permission_mode,  # type: ignore[arg-type]
            cwd=config.cwd,
            model=config.model,
            cli_path=self._settings.cli_path,
            env=self._cli_env(),
            can_use_tool=self._can_use_tool,
            stderr=self._stderr.append,
            resume=resume,
            hooks=hooks or None,
            mcp_servers={
                **config.mcp_servers,
                **_tool_server(config.editor, config.cwd),
                **_tool_server(config.files, config.cwd, self._settings_deny),
            },
            # The client's file tools stand in for these (probed: docs/architecture.md).
            disallowed_tools=list(config.files.replaces) if config.files is not None else [],
            # An untrusted folder's project settings (hooks, .mcp.json servers, env,
            # CLAUDE.md) are not loaded; the user's own ~/.claude ones are (probed:
            # docs/architecture.md). None is the CLI's default: every source.
            setting_sources=None if config.trusted else ["user"],
        )

    def _settings_deny(self, name: str, tool_input: dict[str, Any]) -> str | None:
        """Why the user's settings deny this client file tool use (permissions/settings_rules.py),
        or None."""
        config = self._config
        found = settings_rules.match(name, tool_input, config.cwd, config.env, config.trusted)
        return settings_rules.denial(found) if found and found.behavior == "deny" else None

    def _session_name(self, name: str) -> str:
        """The tool's name for the session layer: a client file tool is the built-in it
        stands in for (`mcp__acp__Write` is `Write`), so rules, proposals and summaries
        apply as they are."""
        return self._renamed.get(name, name)

    def _cli_env(self) -> dict[str, str]:
        env = dict(self._config.env)
        limit = self._config.request_timeout_seconds
        if limit and "API_TIMEOUT_MS" not in env:
            env["API_TIMEOUT_MS"] = str(int(limit * 1000))
        return env

    def _preflight(self) -> None:
        config = self._config
        if (
            config.permission_mode == "bypassPermissions"
            and hasattr(os, "geteuid")
            and os.geteuid() == 0
            and config.env.get("IS_SANDBOX", os.environ.get("IS_SANDBOX")) != "1"
        ):
            raise ev.BackendError(
                "Claude Code refuses permissionMode bypassPermissions when run as root; "
                "set IS_SANDBOX=1 in initializationOptions.env if this machine is a sandbox, "
                "or use another permission mode"
            )
        if not os.path.isdir(config.cwd):
            raise ev.BackendError(
                f"the session's cwd {config.cwd} is not a directory; pass an existing folder "
                "as cwd in dave/query or initializationOptions"
            )

    async def open(self, warm_up: bool = False) -> str | None:
        self._preflight()
        resume = self._backend_session_id if self._backend_session_id else None
        notice = None
        if not self._config.trusted and resume is None:
            # A new conversation in an untrusted folder: say once what was left out.
            notice = await asyncio.to_thread(_untrusted_notice, self._config.cwd)
        if warm_up and resume is None and not _warm_up_unsafe:
            await self._connect(None, warm_up=True)
            if await self._warm_up():
                return notice
            await self.close()  # the prompt reached the model: start a clean conversation
        try:
            await self._connect(resume)
        except ev.BackendError as exc:
            if resume is None:
                raise
            # The stored conversation could not be resumed (its file is gone, say):
            # start a new one; the first query then sends the editor's transcript.
            log.warning("could not resume conversation %s: %s", resume, exc)
            notice = (
                f"could not resume the earlier conversation {resume}; "
                "started a new one with the editor's transcript"
            )
            self._backend_session_id = ""
            await self._connect(None)
        self._has_conversation = resume is not None and self._backend_session_id == resume
        return notice

    async def configure(self, *, permission_mode: str | None, model: str | None) -> None:
        if permission_mode is not None:
            self._config = attrs.evolve(self._config, permission_mode=permission_mode)
        if model is not None:
            self._config = attrs.evolve(self._config, model=model)
        client = self._client
        if client is None or self._dead:
            return  # applied when the client next connects
        try:
            if permission_mode is not None:
                await client.set_permission_mode(permission_mode)  # type: ignore[arg-type]
            if model is not None:
                await client.set_model(model)
        except Exception as exc:
            raise ev.BackendError(f"Claude Code refused the change: {one_line(str(exc))}") from None

    async def _block_warm_up(
        self, hook_input: HookInput, _tool_use_id: str | None, _context: HookContext
    ) -> HookJSONOutput:
        if hook_input.get("prompt") == self._warm_up_prompt:
            return {"decision": "block", "reason": WARM_UP_REASON}
        return {}

    async def _before(
        self, hook_input: HookInput, tool_use_id: str | None, _context: HookContext
    ) -> HookJSONOutput:
        if self._observer is not None:
            tool_input = hook_input.get("tool_input")
            await self._observer.before_tool(
                tool_use_id or "",
                str(hook_input.get("tool_name") or ""),
                dict(tool_input) if isinstance(tool_input, dict) else {},
            )
        return {}

    async def _after(
        self, hook_input: HookInput, tool_use_id: str | None, _context: HookContext
    ) -> HookJSONOutput:
        if self._observer is None:
            return {}
        context = await self._observer.after_tool(
            tool_use_id or "", str(hook_input.get("tool_name") or "")
        )
        if not context:
            return {}
        return {
            "hookSpecificOutput": {"hookEventName": "PostToolUse", "additionalContext": context}
        }

    async def _warm_up(self) -> bool:
        """Run the blocked warm-up prompt; False if it reached the model after all."""
        global _warm_up_unsafe
        client = self._client
        assert client is not None
        leaked = False
        try:
            await client.query(self._warm_up_prompt)
            async with asyncio.timeout(WARM_UP_TIMEOUT):
                while True:
                    item = await self._inbox.get()
                    if isinstance(item, Ended):
                        self._dead = True
                        return True  # the next query reports the dead process
                    if isinstance(item, StreamEvent | AssistantMessage):
                        leaked = True
                    elif isinstance(item, ResultMessage):
                        self._warm_up_conversation = item.session_id or ""
                        break
        except TimeoutError:
            log.warning("the warm-up got no answer within %.0f s", WARM_UP_TIMEOUT)
            return False
        except Exception as exc:
            log.warning("the warm-up failed: %s", one_line(str(exc)))
            return False
        if leaked:
            _warm_up_unsafe = True
            log.warning(
                "this Claude Code CLI did not run the warm-up hook; warm-up is off from now on"
            )
        return not leaked

    async def _connect(self, resume: str | None, warm_up: bool = False) -> None:
        self._stderr.clear()
        client = ClaudeSDKClient(self._options(resume, warm_up))
        try:
            await asyncio.wait_for(client.connect(), CONNECT_TIMEOUT)
        except CLINotFoundError:
            raise ev.BackendError(self._not_found()) from None
        except TimeoutError:
            await self._disconnect(client)
            raise ev.BackendError(
                f"Claude Code did not start within {CONNECT_TIMEOUT:.0f} s; "
                "check claude.cliPath and the server's log"
            ) from None
        except Exception as exc:
            detail = one_line(" ".join(self._stderr) or str(exc))
            raise ev.BackendError(f"Claude Code failed to start: {detail}") from None
        self._client = client
        self._dead = False
        self._inbox = asyncio.Queue()
        self.pid = _client_pid(client)
        if self.pid is not None:
            LIVE_PIDS.add(self.pid)
        self._reader = asyncio.create_task(
            pump(client.receive_messages(), self._inbox.put_nowait, self._divert),
            name="claude reader",
        )

    def _not_found(self) -> str:
        path = self._settings.cli_path
        where = f"at {path}" if path else "(the bundled binary is missing)"
        return (
            f"Claude Code CLI not found {where}; set initializationOptions.claude.cliPath "
            "to the `claude` executable, or leave it unset to use the one bundled with "
            "claude-agent-sdk"
        )

    def _divert(self, message: Any) -> bool:
        """The reader's fast path: hand a text delta straight to the running turn when
        nothing waits before it in the inbox (see the module's docstring)."""
        turn = self._turn
        if (
            turn is None
            or turn.direct is None
            or type(message) is not StreamEvent
            or message.parent_tool_use_id is not None
            or not self._inbox.empty()
        ):
            return False
        # Stream events that carry no text are dropped here as the turn would drop them.
        event = _delta_event(message.event)
        if event is not None:
            turn.last_direct = time.monotonic()
            turn.direct(event)
        return True

    async def _can_use_tool(
        self, tool_name: str, tool_input: dict[str, Any], context: ToolPermissionContext
    ) -> PermissionResultAllow | PermissionResultDeny:
        files = self._config.files
        if tool_name in self._renamed and files is not None:
            tool_name = self._renamed[tool_name]
            config = self._config
            if files.runs_unasked(
                tool_name, tool_input, config.permission_mode, config.cwd
            ) and not await asyncio.to_thread(
                settings_rules.speaks, tool_name, tool_input, config.cwd, config.env, config.trusted
            ):
                # The CLI asks for every MCP tool; the built-in would have run unasked.
                return PermissionResultAllow(updated_input=tool_input)
        reply: asyncio.Future[PermissionAnswer] = asyncio.get_running_loop().create_future()
        self._inbox.put_nowait(
            _Ask(
                context.tool_use_id or "",
                tool_name,
                tool_input,
                [_suggestion(update) for update in context.suggestions],
                reply,
            )
        )
        answer = await reply
        if answer.allow:
            updates = None
            if tool_name == "ExitPlanMode":
                # The CLI leaves plan mode (for `default` without a mode).
                mode_after = answer.set_mode or "default"
                self._config = attrs.evolve(self._config, permission_mode=mode_after)
            if answer.set_mode is not None:
                mode: Any = answer.set_mode
                updates = [PermissionUpdate(type="setMode", mode=mode, destination="session")]
            return PermissionResultAllow(
                updated_input=answer.updated_input or tool_input, updated_permissions=updates
            )
        return PermissionResultDeny(
            message=answer.reason or "The user denied this tool use.",
            interrupt=answer.interrupt,
        )

    def _drain_stale(self) -> None:
        """Drop what an earlier turn left behind, noting whether the process ended."""
        while not self._inbox.empty():
            item = self._inbox.get_nowait()
            if isinstance(item, Ended):
                self._dead = True
            elif isinstance(item, _Ask) and not item.reply.done():
                item.reply.set_result(PermissionAnswer(allow=False, interrupt=True))

    async def query(
        self,
        prompt: str,
        transcript: Sequence[ChatMessage],
        direct: Callable[[ev.Event], None] | None = None,
        attachments: Sequence[Attachment] = (),
    ) -> AsyncIterator[ev.Event]:
        self._drain_stale()
        client = self._client
        if client is None or self._dead:
            self._dead = True
            raise ev.BackendError(
                "the Claude Code process is not running; send the query again to restart it"
            )
        # A slash command goes to the CLI as typed: it must start the message.
        plain = self._has_conversation or prompt.startswith("/")
        text = prompt if plain else first_message(transcript, prompt)
        turn = self._turn = _Turn(started=time.monotonic())
        try:
            try:
                await client.query(_with_images(text, attachments) if attachments else text)
            except Exception as exc:
                self._dead = True
                raise ev.BackendError(
                    f"could not send the prompt to Claude Code: {one_line(str(exc))}"
                ) from None
            self._has_conversation = True
            yield ev.Status("working")
            turn.direct = direct
            async for event in self._events(turn):
                yield event
        finally:
            turn.direct = None
            self._turn = None

    async def _events(self, turn: _Turn) -> AsyncIterator[ev.Event]:
        """The turn's events, from the inbox, until its result."""
        limit = self._config.request_timeout_seconds
        while True:
            # While a tool runs, silence is the tool's, not the model's: no limit then.
            try:
                item = await self._next_item(turn, None if turn.tools else limit)
            except TimeoutError:
                await self._abandon_turn(turn)
                raise ev.BackendError(
                    f"no answer from the model within {limit:g} s; raise "
                    "requestTimeoutSeconds or check the model server"
                ) from None
            if isinstance(item, Ended):
                self._dead = True
                if turn.interrupted:
                    raise ev.TurnCancelled()
                error = one_line(str(item.error)) if item.error is not None else ""
                detail = one_line(" ".join(self._stderr) or error)
                raise ev.BackendError(
                    "the Claude Code process ended unexpectedly"
                    + (f" ({detail})" if detail else "")
                    + "; the next query starts a new one and resumes the conversation"
                )
            if isinstance(item, _Ask):
                turn.asked.add(item.tool_use_id)
                answer = await self._answer(item)
                if not answer.allow and answer.interrupt:
                    turn.stop_reason = answer.reason
                continue
            if isinstance(item, StreamEvent):
                if item.parent_tool_use_id is None:
                    event = _delta_event(item.event)
                    if event is not None:
                        yield event
            elif isinstance(item, AssistantMessage):
                # A subagent's messages carry the Agent tool use's id: its tool uses are
                # reported under it; its text is not the answer's.
                parent = item.parent_tool_use_id
                if parent is None and item.usage:
                    turn.context_tokens = _context_size(item.usage)
                for block in item.content:
                    if isinstance(block, ToolUseBlock):
                        turn.tools[block.id] = block
                        if parent is not None:
                            turn.parents[block.id] = parent
                        tool_input = dict(block.input)
                        name = self._session_name(block.name)
                        yield ev.ToolUse(
                            block.id,
                            name,
                            tool_input,
                            describe_tool_use(name, tool_input, self._config.cwd),
                            parent,
                        )
            elif isinstance(item, SystemMessage):
                if item.subtype == "status" and item.data.get("status") == "compacting":
                    yield ev.Status("compacting", "Compacting the conversation…")
                elif item.subtype == "api_retry":
                    yield _retrying(item.data)
            elif isinstance(item, UserMessage):
                if isinstance(item.content, str):
                    continue
                for block in item.content:
                    if isinstance(block, ToolResultBlock):
                        for event in self._tool_result(block, item, turn):
                            yield event
            elif isinstance(item, ResultMessage):
                await self._window_known()
                yield self._finish(item, turn)
                return

    async def _next_item(self, turn: _Turn, limit: float | None) -> Any:
        """The inbox's next item; TimeoutError once nothing at all came for `limit`
        seconds, counting the tokens the reader handed over directly."""
        if limit is None:
            return await self._inbox.get()
        waiting_since = time.monotonic()
        while True:
            remaining = max(waiting_since, turn.last_direct) + limit - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            try:
                return await asyncio.wait_for(self._inbox.get(), remaining)
            except TimeoutError:
                continue

    async def _answer(self, item: _Ask) -> PermissionAnswer:
        """The user's answer to a permission request, unless the CLI dies first: then
        nobody is left to run the tool, and waiting on the user would hang the turn."""
        answer = PermissionAnswer(allow=False, reason="abandoned", interrupt=True)
        turn = self._turn
        parent = turn.parents.get(item.tool_use_id) if turn is not None else None
        asking = asyncio.ensure_future(
            self._ask(item.tool_use_id, item.tool_name, item.tool_input, item.suggestions, parent)
        )
        try:
            watched: set[asyncio.Future[Any]] = {asking}
            if self._reader is not None:
                watched.add(self._reader)
            await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
            if asking.done():
                answer = asking.result()
            else:  # the reader ended: the CLI is gone
                asking.cancel()
                await asyncio.gather(asking, return_exceptions=True)
        finally:
            if not asking.done():
                asking.cancel()
            if not item.reply.done():
                item.reply.set_result(answer)
        return answer

    def _tool_result(
        self,
        block: ToolResultBlock,
        message: UserMessage,
        turn: _Turn,
    ) -> list[ev.Event]:
        tool = turn.tools.pop(block.tool_use_id, None)
        parent = turn.parents.get(block.tool_use_id)
        name = self._session_name(tool.name) if tool else ""
        tool_input = dict(tool.input) if tool else {}
        is_error = bool(block.is_error)
        out: list[ev.Event] = []
        if block.tool_use_id not in turn.asked and not is_error:
            # The CLI ran it without asking: the permission mode (or a read-only tool's
            # default) allowed it. Say so, as the protocol asks.
            out.append(ev.PermissionResolved(f"auto-{block.tool_use_id}", "allow", "mode"))
        summary = format_tool_summary(
            name,
            tool_input,
            result_text(block.content),
            message.tool_use_result,
            self._config.cwd,
            is_error,
        )
        out.append(ev.ToolResult(block.tool_use_id, name, summary, is_error, parent))
        return out

    def _finish(self, result: ResultMessage, turn: _Turn) -> ev.Done:
        self._backend_session_id = result.session_id or self._backend_session_id
        total = result.total_cost_usd or 0.0
        cost = max(total - self._cost_so_far, 0.0)
        self._cost_so_far = max(total, self._cost_so_far)
        if turn.interrupted:
            raise ev.TurnCancelled()
        if turn.stop_reason is not None:
            # A deny with interrupt (such as an unanswered request) ended the turn; the
            # CLI's own result then only carries a diagnostic.
            raise ev.BackendError(f"the turn was stopped: {turn.stop_reason}")
        if result.is_error:
            raise self._error(result)
        usage = result.usage or {}
        return finished(
            text=result.result or "",
            stop_reason=result.stop_reason or "end_turn",
            usage=ev.Usage(
                input_tokens=int(usage.get("input_tokens") or 0),
                output_tokens=int(usage.get("output_tokens") or 0),
                context_tokens=turn.context_tokens,
                context_window=_WINDOWS.get(self._config.model or ""),
            ),
            cost_usd=cost,
            started=turn.started,
            backend_session_id=self._backend_session_id,
        )

    async def commands(self) -> list[dict[str, str]]:
        """The CLI's slash commands (built-in, user, project, plugin, skills)."""
        client = self._client
        if client is None or self._dead:
            return []
        try:
            info = await asyncio.wait_for(client.get_server_info(), CLOSE_TIMEOUT)
        except Exception as exc:
            raise ev.BackendError(
                f"Claude Code did not list its commands: {one_line(str(exc))}"
            ) from None
        commands = (info or {}).get("commands") or []
        listed = [
            {
                "name": str(c.get("name") or ""),
                "description": str(c.get("description") or ""),
                "argumentHint": str(c.get("argumentHint") or ""),
            }
            for c in commands
            if isinstance(c, dict) and c.get("name")
        ]
        return sorted(listed, key=lambda c: c["name"])

    async def _window_known(self) -> None:
        """Learn the model's context window once per model and server: the CLI's
        `get_context_usage()` (its `maxTokens`) counts tokens with the API, so it is
        asked once, in the background after a first turn, never on a turn's path;
        the next turn waits for it at most WINDOW_WAIT."""
        key = self._config.model or ""
        if key in _WINDOWS or self._client is None:
            return
        task = _WINDOW_TASKS.get(key)
        if task is None:
            _WINDOW_TASKS[key] = asyncio.create_task(_learn_window(self._client, key))
        elif not task.done():
            await asyncio.wait({task}, timeout=WINDOW_WAIT)

    def _error(self, result: ResultMessage) -> ev.BackendError:
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

    async def _abandon_turn(self, turn: _Turn) -> None:
        """Interrupt a turn that went silent and wait for its end, so the next query
        starts clean; a CLI that does not answer is treated as dead."""
        turn.direct = None  # what still comes belongs to a turn that has failed
        await self.interrupt()
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                while True:
                    item = await self._inbox.get()
                    if isinstance(item, _Ask) and not item.reply.done():
                        item.reply.set_result(PermissionAnswer(allow=False, interrupt=True))
                    if isinstance(item, ResultMessage | Ended):
                        break
        except TimeoutError:
            self._dead = True

    async def interrupt(self) -> None:
        client, turn = self._client, self._turn
        if client is None or turn is None or self._dead:
            return
        turn.interrupted = True
        try:
            await asyncio.wait_for(client.interrupt(), CLOSE_TIMEOUT)
        except Exception as exc:
            log.warning("interrupt failed: %s", one_line(str(exc)))

    async def close(self) -> None:
        client, self._client = self._client, None
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader
            self._reader = None
        self._drain_stale()
        if client is not None:
            await self._disconnect(client)
        if self.pid is not None:
            if pid_alive(self.pid):
                kill_pid(self.pid)
            LIVE_PIDS.discard(self.pid)
            self.pid = None
        if self._warm_up_conversation and not self._has_conversation:
            # Warmed up but never asked anything: its conversation file holds only the
            # blocked warm-up; leave nothing behind in the user's Claude Code history.
            await asyncio.to_thread(self._delete_conversation, self._warm_up_conversation)
        self._warm_up_conversation = ""

    def _delete_conversation(self, conversation_id: str) -> None:
        for path in history.transcript_paths(conversation_id, self._config.env):
            with contextlib.suppress(OSError):
                path.unlink()

    async def _disconnect(self, client: ClaudeSDKClient) -> None:
        try:
            await asyncio.wait_for(client.disconnect(), CLOSE_TIMEOUT)
        except Exception as exc:  # the process is killed below all the same
            log.debug("disconnect: %s", one_line(str(exc)))


def _untrusted_notice(cwd: str) -> str | None:
    try:
        return trust.check(cwd).untrusted_notice()
    except trust.TrustError:
        return None


def _tool_server(
    server: ToolServer | None,
    cwd: str,
    denied: Callable[[str, dict[str, Any]], str | None] | None = None,
) -> dict[str, McpServerConfig]:
    """A `ToolServer`'s tools as an in-process MCP server of its name (the editor's is
    `editor`, not `ide`: the CLI keeps only two tools of a server by that name); none
    when it offers none. The SDK runs each call as its own task, so a tool waiting on
    the editor blocks nothing. `denied`: why a call must not run (the user's deny rule),
    checked as it runs, since bypassPermissions runs MCP tools without asking."""
    if server is None or not server.specs():
        return {}

    def handler(name: str) -> Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]:
        async def call(args: dict[str, Any]) -> dict[str, Any]:
            reason = await asyncio.to_thread(denied, name, args) if denied else None
            if reason:
                return {"content": [{"type": "text", "text": reason}], "is_error": True}
            try:
                text = await server.call(name, args, cwd)
            except EditorToolError as exc:
                return {"content": [{"type": "text", "text": str(exc)}], "is_error": True}
            return {"content": [{"type": "text", "text": text}]}

        return call

    tools = [
        SdkMcpTool(spec.name, spec.description, spec.input_schema, handler(spec.name))
        for spec in server.specs()
    ]
    name = server.server_name
    return {name: create_sdk_mcp_server(name=name, tools=tools)}


def _delta_event(event: dict[str, Any]) -> ev.Event | None:
    if event.get("type") != "content_block_delta":
        return None
    delta = event.get("delta") or {}
    if delta.get("type") == "text_delta":
        return ev.Token(str(delta.get("text", "")))
    if delta.get("type") == "thinking_delta":
        return ev.Thinking(str(delta.get("thinking", "")))
    return None


def _suggestion(update: Any) -> Suggestion:
    """The CLI's PermissionUpdate (an SDK object, or a dict from older SDKs), neutral."""

    def get(obj: Any, name: str) -> Any:
        return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)

    pairs: list[tuple[str, str | None]] = []
    for rule in get(update, "rules") or []:
        tool = get(rule, "tool_name") or get(rule, "toolName")
        content = get(rule, "rule_content") or get(rule, "ruleContent")
        if isinstance(tool, str):
            pairs.append((tool, content if isinstance(content, str) else None))
    return Suggestion(
        kind=str(get(update, "type") or ""),
        rules=tuple(pairs),
        mode=get(update, "mode"),
        behavior=get(update, "behavior"),
    )


async def _learn_window(client: ClaudeSDKClient, key: str) -> None:
    try:
        usage = await asyncio.wait_for(client.get_context_usage(), CLOSE_TIMEOUT)
    except Exception as exc:
        log.debug("no context usage: %s", one_line(str(exc)))
        _WINDOW_TASKS.pop(key, None)  # another session may ask again
        return
    window = (usage or {}).get("maxTokens")
    if isinstance(window, int) and window > 0:
        _WINDOWS[key] = window


def _retrying(data: dict[str, Any]) -> ev.Status:
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


def _context_size(usage: dict[str, Any]) -> int:
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


async def _with_images(
    text: str, attachments: Sequence[Attachment]
) -> AsyncIterator[dict[str, Any]]:
    """The prompt as one streamed user message: the images, then the text."""
    content: list[dict[str, Any]] = [
        {"type": "image", "source": {"type": "base64", "media_type": a.media_type, "data": a.data}}
        for a in attachments
    ]
    content.append({"type": "text", "text": text})
    yield {
        "type": "user",
        "message": {"role": "user", "content": content},
        "parent_tool_use_id": None,
        "session_id": "default",
    }


def _client_pid(client: ClaudeSDKClient) -> int | None:
    # The SDK does not expose the CLI's PID; its subprocess transport holds it. Used
    # only to make sure the process is gone after close, so a miss is not fatal.
    process = getattr(getattr(client, "_transport", None), "_process", None)
    pid = getattr(process, "pid", None)
    return pid if isinstance(pid, int) else None


__all__ = ["CLIConnectionError", "ClaudeSession"]
