"""The Claude backend: one persistent `ClaudeSDKClient` (one Claude Code CLI process)
per session, connected once and reused for every query.

One reader task drains the client into an inbox for as long as it is connected (the
SDK's buffer is bounded, and a permission callback waiting while nobody reads could
deadlock). Permission callbacks are queued into the same inbox (permissions.py), so the
session sees a tool's `toolUse` before its permission request, in the order the CLI
sent them.

Text deltas are most of what a turn carries. While a turn runs and the inbox is empty,
the reader hands them straight to the turn's `direct` callback instead: no queue hop
and no generator step per token. Anything else, and any delta that arrives while the
inbox holds items, goes through the inbox, so the order is the CLI's.

Beside it: launch.py (starting and stopping the CLI), warmup.py (a client connected ahead
of need), permissions.py (the permission bridge), translate.py (the SDK's messages as
events), context_window.py, history.py (the CLI's transcripts) and transcript.py (the
first message of a new conversation).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import attrs
from claude_agent_sdk import (
    ClaudeSDKClient,
    CLIConnectionError,
    ResultMessage,
)
from claude_agent_sdk.types import HookEvent, HookMatcher, StreamEvent

from dave_lsp import events as ev
from dave_lsp.backends.base import (
    Attachment,
    ChatMessage,
    PermissionAnswer,
    PermissionAsker,
    SessionConfig,
    ToolObserver,
)
from dave_lsp.backends.claude import cut, launch, translate
from dave_lsp.backends.claude.context_window import WINDOWS
from dave_lsp.backends.claude.permissions import Ask, PermissionBridge
from dave_lsp.backends.claude.transcript import first_message
from dave_lsp.backends.claude.translate import Turn
from dave_lsp.backends.claude.warmup import WarmUp
from dave_lsp.backends.common import Ended, finished, one_line, pump
from dave_lsp.backends.registry import ClaudeOptions, options_of
from dave_lsp.pids import LIVE_PIDS, kill_pid, pid_alive

log = logging.getLogger(__name__)


class ClaudeSession:
    """A `BackendSession` backed by a persistent Claude Code CLI process."""

    def __init__(
        self, config: SessionConfig, ask: PermissionAsker, observer: ToolObserver | None = None
    ) -> None:
        self._config = config
        self._observer = observer
        self._client: ClaudeSDKClient | None = None
        self._reader: asyncio.Task[None] | None = None
        self._inbox: asyncio.Queue[Any] = asyncio.Queue()
        self._settings = options_of(config, ClaudeOptions)
        self._permissions = PermissionBridge(
            ask, lambda: self._config, lambda item: self._inbox.put_nowait(item), self._follow_mode
        )
        self._backend_session_id = config.resume or ""
        self._has_conversation = False
        self._dead = False
        self._turn: Turn | None = None
        self._cost_so_far = 0.0
        self._stderr: deque[str] = deque(maxlen=20)
        self._warm_up = WarmUp()
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

    def _follow_mode(self, mode: str) -> None:
        """The CLI switched its permission mode itself (it left plan mode)."""
        self._config = attrs.evolve(self._config, permission_mode=mode)

    async def open(self, warm_up: bool = False) -> str | None:
        launch.preflight(self._config)
        resume = self._backend_session_id if self._backend_session_id else None
        notice = None
        if not self._config.trusted and resume is None:
            # A new conversation in an untrusted folder: say once what was left out.
            notice = await asyncio.to_thread(launch.untrusted_notice, self._config.cwd)
        if warm_up and resume is None and self._warm_up.on:
            await self._connect(None, warm_up=True)
            assert self._client is not None
            outcome = await self._warm_up.run(self._client, self._inbox)
            if outcome == "ended":
                self._dead = True  # the next query reports the dead process
            if outcome != "failed":
                return notice
            await self.close()  # the prompt reached the model: start a clean conversation
        resume, fork, notice = await cut.fork_of(self._config, resume, notice)
        self._backend_session_id = resume or ""  # "": the cut could not be made
        try:
            await self._connect(fork or resume)
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

    async def _connect(self, resume: str | cut.Cut | None, warm_up: bool = False) -> None:
        self._stderr.clear()
        hooks: dict[HookEvent, list[HookMatcher]] = {}
        if warm_up:
            hooks.update(self._warm_up.hooks())
        if self._observer is not None:
            hooks.update(launch.review_hooks(self._observer))
        client = ClaudeSDKClient(
            launch.agent_options(
                self._config,
                self._settings,
                resume=resume,
                hooks=hooks,
                can_use_tool=self._permissions.can_use_tool,
                stderr=self._stderr.append,
                settings_deny=self._permissions.settings_deny,
            )
        )
        await launch.connect(client, self._stderr, self._settings.cli_path)
        self._client = client
        self._dead = False
        self._inbox = asyncio.Queue()
        self.pid = launch.client_pid(client)
        if self.pid is not None:
            LIVE_PIDS.add(self.pid)
        self._reader = asyncio.create_task(
            pump(client.receive_messages(), self._inbox.put_nowait, self._divert),
            name="claude reader",
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
        event = translate.delta_event(message.event)
        if event is not None:
            turn.last_direct = time.monotonic()
            turn.direct(event)
        return True

    def _drain_stale(self) -> None:
        """Drop what an earlier turn left behind, noting whether the process ended."""
        while not self._inbox.empty():
            item = self._inbox.get_nowait()
            self._dead = self._dead or isinstance(item, Ended)
            _refuse(item)

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
        turn = self._turn = Turn(started=time.monotonic())
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

    async def _events(self, turn: Turn) -> AsyncIterator[ev.Event]:
        """The turn's events, from the inbox, until its result."""
        limit = self._config.request_timeout_seconds
        while True:
            # While a tool runs, silence is the tool's, not the model's: no limit then.
            try:
                item = await _next_item(self._inbox, turn, None if turn.tools else limit)
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
            if isinstance(item, Ask):
                turn.asked.add(item.tool_use_id)
                parent = turn.parents.get(item.tool_use_id)
                answer = await self._permissions.answer(item, parent, self._reader)
                if not answer.allow and answer.interrupt:
                    turn.stop_reason = answer.reason
                continue
            if isinstance(item, ResultMessage):
                await WINDOWS.learn(self._client, self._config.model)
                yield self._finish(item, turn)
                return
            rename = self._permissions.session_name
            for event in translate.events(item, turn, rename, self._config.cwd):
                yield event

    def _finish(self, result: ResultMessage, turn: Turn) -> ev.Done:
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
            raise translate.failure(result)
        return finished(
            text=result.result or "",
            stop_reason=result.stop_reason or "end_turn",
            usage=translate.usage(result, turn, WINDOWS.get(self._config.model)),
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
            info = await asyncio.wait_for(client.get_server_info(), launch.CLOSE_TIMEOUT)
        except Exception as exc:
            raise ev.BackendError(
                f"Claude Code did not list its commands: {one_line(str(exc))}"
            ) from None
        return translate.commands(info)

    async def _abandon_turn(self, turn: Turn) -> None:
        """Interrupt a turn that went silent and wait for its end, so the next query
        starts clean; a CLI that does not answer is treated as dead."""
        turn.direct = None  # what still comes belongs to a turn that has failed
        await self.interrupt()
        try:
            async with asyncio.timeout(launch.CLOSE_TIMEOUT):
                while True:
                    item = await self._inbox.get()
                    _refuse(item)
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
            await asyncio.wait_for(client.interrupt(), launch.CLOSE_TIMEOUT)
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
            await launch.disconnect(client)
        if self.pid is not None:
            if pid_alive(self.pid):
                kill_pid(self.pid)
            LIVE_PIDS.discard(self.pid)
            self.pid = None
        await self._warm_up.forget(self._has_conversation, self._config.env)


async def _next_item(inbox: asyncio.Queue[Any], turn: Turn, limit: float | None) -> Any:
    """The inbox's next item; TimeoutError once nothing at all came for `limit` seconds,
    counting the tokens the reader handed the turn directly."""
    if limit is None:
        return await inbox.get()
    waiting_since = time.monotonic()
    while True:
        remaining = max(waiting_since, turn.last_direct) + limit - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        try:
            return await asyncio.wait_for(inbox.get(), remaining)
        except TimeoutError:
            continue


def _refuse(item: Any) -> None:
    """Answer a permission request nobody will handle (its turn is over): deny, stop."""
    if isinstance(item, Ask) and not item.reply.done():
        item.reply.set_result(PermissionAnswer(allow=False, interrupt=True))


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


__all__ = ["CLIConnectionError", "ClaudeSession"]
