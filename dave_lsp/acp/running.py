"""A connection's running prompts: what `session/cancel` (every prompt of a session)
and `$/cancel_request` (one prompt) cancel, and how a prompt's answer is decided (its
turn's stop reason, or `cancelled` once the client cancelled).

A cancelled turn stops waiting for the client: its open permission requests and
elicitations are cancelled at the client (`$/cancel_request`) and fail at once here,
and its commands in client terminals are killed and released (terminals.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable

import attrs

from dave_lsp import events as ev
from dave_lsp.acp import outgoing as out
from dave_lsp.acp import schema
from dave_lsp.acp.transport import Connection, RpcError
from dave_lsp.acp.updates import TurnUpdates
from dave_lsp.session.manager import SessionManager
from dave_lsp.session.turn import QueryJob

# After session/cancel, how long the prompt waits for the turn to wind down before it
# answers `cancelled` anyway (the session layer goes on stopping it; the next prompt
# queues behind). The bound is 2 s.
CANCEL_GRACE = 1.5
# The requests of a running turn that wait for the user, stopped when it is cancelled
# (a terminal's wait is its own: ClientTerminals.cancel).
WAITING = frozenset({"session/request_permission", "elicitation/create"})
# A prompt's answer once the client cancelled it (the spec's rule, whatever the turn did).
CANCELLED = out.PromptResponse("cancelled")


@attrs.define(eq=False)
class _Prompt:
    job: QueryJob
    sink: TurnUpdates
    cancelled: asyncio.Event = attrs.field(factory=asyncio.Event)


class RunningPrompts:
    """The prompts of one connection that wait for their turns, by sessionId."""

    def __init__(self, manager: SessionManager, conn: Connection) -> None:
        self._manager = manager
        self._conn = conn
        self._by_session: dict[str, list[_Prompt]] = {}
        self._cancelling: set[asyncio.Task[None]] = set()

    async def before_turn(self, asking: Awaitable[bool]) -> bool:
        """What the prompt waits for before its turn (the folder-trust question);
        False when the client cancelled this prompt meanwhile (`$/cancel_request`: the
        question itself stays, for the next prompt)."""
        waiting = asyncio.ensure_future(asking)
        self._conn.when_cancelled(waiting.cancel)
        try:
            return await waiting
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # the agent is closing
            return False

    async def run(self, job: QueryJob, sink: TurnUpdates) -> out.PromptResponse:
        """Wait for the job's turn; the `session/prompt` result. `$/cancel_request` of
        the prompt ends it as `session/cancel` does (that prompt only)."""
        running = _Prompt(job, sink)
        self._by_session.setdefault(job.session_id, []).append(running)
        self._conn.when_cancelled(lambda: self._cancel_soon(running))
        try:
            return await self._outcome(running, sink)
        finally:
            waiting = self._by_session.get(job.session_id, [])
            if running in waiting:
                waiting.remove(running)
            if not waiting:
                self._by_session.pop(job.session_id, None)

    async def _outcome(self, running: _Prompt, sink: TurnUpdates) -> out.PromptResponse:
        """The prompt's answer: its turn's stop reason, or `cancelled` once the client
        cancelled (after a grace for the turn to end cleanly)."""
        job = running.job
        settled = asyncio.Event()
        job.future.add_done_callback(lambda _: settled.set())
        waits = {
            asyncio.ensure_future(settled.wait()),
            asyncio.ensure_future(running.cancelled.wait()),
        }
        _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for waiting in pending:
            waiting.cancel()
        if running.cancelled.is_set():
            # A moment for the turn to end cleanly, so its last updates come first; the
            # answer is `cancelled` whatever the turn did meanwhile (the spec's rule).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(job.finished), CANCEL_GRACE)
            return CANCELLED
        try:
            result = job.future.result()
        except ev.TurnCancelled:
            return CANCELLED
        except ev.BackendError as exc:
            code, message = schema.turn_failure(exc)
            raise RpcError(
                code, f"session/prompt: {message}", {"partialText": "".join(job.text)}
            ) from None
        sink.usage(result.usage, self._manager.cost_usd(job.session_id))
        return out.PromptResponse(schema.stop_reason(result.stop_reason))

    def _cancel_soon(self, running: _Prompt) -> None:
        """`$/cancel_request` of one prompt (on the reader, so not awaited): it answers
        `cancelled` as `session/cancel` makes it; the session goes on."""
        running.cancelled.set()
        self._stop_waiting(running)
        task = asyncio.create_task(self._manager.cancel(running.job), name="acp cancel request")
        self._cancelling.add(task)
        task.add_done_callback(self._cancelling.discard)

    def _stop_waiting(self, running: _Prompt) -> None:
        """A cancelled turn waits for nothing of the client's (the module's doc). A
        prompt still queued has nothing open: the running turn's requests are not its."""
        if running.job.state != "running":
            return
        self._conn.cancel_open(running.job.session_id, WAITING)
        if running.sink.terminals is not None:
            running.sink.terminals.cancel()

    async def cancel_all(self, session_id: str) -> None:
        """`session/cancel`: every prompt of the session answers `cancelled`."""
        prompts = list(self._by_session.get(session_id, []))
        for running in prompts:
            running.cancelled.set()
            self._stop_waiting(running)
        await asyncio.gather(
            *(self._manager.cancel(p.job) for p in prompts), return_exceptions=True
        )
