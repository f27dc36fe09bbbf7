"""A connection's running prompts: what `session/cancel` cancels, and how a prompt's
answer is decided (its turn's stop reason, or `cancelled` once the client cancelled).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import attrs

from dave_lsp import events as ev
from dave_lsp.acp import schema
from dave_lsp.acp.transport import RpcError
from dave_lsp.acp.updates import TurnUpdates
from dave_lsp.session.manager import SessionManager
from dave_lsp.session.turn import QueryJob

# After session/cancel, how long the prompt waits for the turn to wind down before it
# answers `cancelled` anyway (the session layer goes on stopping it; the next prompt
# queues behind). The bound is 2 s.
CANCEL_GRACE = 1.5


@attrs.define(eq=False)
class _Prompt:
    job: QueryJob
    cancelled: asyncio.Event = attrs.field(factory=asyncio.Event)


class RunningPrompts:
    """The prompts of one connection that wait for their turns, by sessionId."""

    def __init__(self, manager: SessionManager) -> None:
        self._manager = manager
        self._by_session: dict[str, list[_Prompt]] = {}

    async def run(self, job: QueryJob, sink: TurnUpdates) -> dict[str, Any]:
        """Wait for the job's turn; the `session/prompt` result."""
        running = _Prompt(job)
        self._by_session.setdefault(job.session_id, []).append(running)
        try:
            return await self._outcome(running, sink)
        finally:
            waiting = self._by_session.get(job.session_id, [])
            if running in waiting:
                waiting.remove(running)
            if not waiting:
                self._by_session.pop(job.session_id, None)

    async def _outcome(self, running: _Prompt, sink: TurnUpdates) -> dict[str, Any]:
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
            return {"stopReason": "cancelled"}
        try:
            result = job.future.result()
        except ev.TurnCancelled:
            return {"stopReason": "cancelled"}
        except ev.BackendError as exc:
            code, message = schema.turn_failure(exc)
            raise RpcError(
                code, f"session/prompt: {message}", {"partialText": "".join(job.text)}
            ) from None
        sink.usage(result.usage, self._manager.cost_usd(job.session_id))
        return {"stopReason": schema.stop_reason(result.stop_reason)}

    async def cancel_all(self, session_id: str) -> None:
        """`session/cancel`: every prompt of the session answers `cancelled`."""
        prompts = list(self._by_session.get(session_id, []))
        for running in prompts:
            running.cancelled.set()
        await asyncio.gather(
            *(self._manager.cancel(p.job) for p in prompts), return_exceptions=True
        )
