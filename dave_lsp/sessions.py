"""Sessions: `SessionManager` maps `sessionId` to a `SessionActor`.

A `SessionActor` is one asyncio task that alone owns one backend session and takes
commands from its queue (a query, or shutdown), so queries on one session run one at
a time, in arrival order, and sessions run concurrently. Other tasks only put
commands on the queue, answer permissions through the broker, or call `interrupt`.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import attrs

from dave_lsp import events as ev
from dave_lsp.backends.base import (
    BackendFactory,
    BackendSession,
    ChatMessage,
    PermissionAnswer,
    SessionConfig,
)
from dave_lsp.options import InitOptions
from dave_lsp.permissions import PermissionBroker
from dave_lsp.progress import ProgressSink
from dave_lsp.protocol import QueryParams, QueryResult, ToolResultInfo, UsageInfo
from dave_lsp.summaries import describe_tool_use

log = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT = 5.0


@attrs.define(eq=False)
class QueryJob:
    """One `dave/query` on its way through a session."""

    session_id: str
    prompt: str
    transcript: list[ChatMessage]
    sink: ProgressSink
    future: asyncio.Future[QueryResult]
    finished: asyncio.Future[None]
    state: str = "queued"  # queued | running | done
    cancel_requested: bool = False
    text: list[str] = attrs.field(factory=list)
    tool_results: list[ToolResultInfo] = attrs.field(factory=list)

    def fail(self, exc: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(exc)
            # Mark it retrieved: a job cancelled while queued may have nobody awaiting it.
            self.future.exception()

    def partial(self) -> dict[str, Any]:
        """What the turn produced before it failed (the error's `data`)."""
        return {
            "sessionId": self.session_id,
            "partialText": "".join(self.text),
            "toolResults": [
                {
                    "toolUseId": r.tool_use_id,
                    "toolName": r.tool_name,
                    "summary": r.summary,
                    "isError": r.is_error,
                }
                for r in self.tool_results
            ],
        }


_SHUTDOWN = object()


class SessionActor:
    """One session: a task, a queue, and the backend session only it touches."""

    def __init__(
        self,
        config: SessionConfig,
        factory: BackendFactory,
        broker: PermissionBroker,
        options: InitOptions,
    ) -> None:
        self.session_id = config.session_id
        self.config = config
        self._factory = factory
        self._broker = broker
        self._options = options
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._waiting = 0
        self.backend: BackendSession | None = None
        self.current: QueryJob | None = None
        self.closing = False
        # Tools the user allowed always in this session.
        self.rules: set[str] = set()
        self.task = asyncio.create_task(self._run(), name=f"session {self.session_id[:40]}")

    def submit(self, job: QueryJob) -> None:
        if self.closing:
            raise ev.BackendError(
                f"session {self.session_id} is being deleted; use a new sessionId"
            )
        limit = self._options.max_queued_queries
        if self._waiting >= limit:
            raise ev.BackendError(
                f"session {self.session_id} already has {limit} queries waiting; "
                "wait for them to finish or cancel one"
            )
        self._waiting += 1
        self._queue.put_nowait(job)

    async def _run(self) -> None:
        try:
            while True:
                command = await self._queue.get()
                if command is _SHUTDOWN:
                    break
                job: QueryJob = command
                self._waiting -= 1
                if job.future.done():  # cancelled while it waited
                    job.state = "done"
                    job.finished.set_result(None)
                    continue
                await self._run_query(job)
        finally:
            await self._close_backend()

    async def _run_query(self, job: QueryJob) -> None:
        job.state = "running"
        self.current = job
        try:
            backend = self.backend
            if backend is None:
                job.sink.emit(ev.Status("connecting", "Starting the model client…"))
                backend = self._factory(self.config, self._ask)
                try:
                    await backend.open()
                except ev.BackendError as exc:
                    await _close_quietly(backend)
                    self._fail_waiting(exc)
                    raise
                self.backend = backend
            async for event in backend.query(job.prompt, job.transcript):
                if isinstance(event, ev.Done):
                    job.future.set_result(self._result(job, event))
                    break
                if isinstance(event, ev.Token):
                    job.text.append(event.text)
                elif isinstance(event, ev.ToolResult):
                    job.tool_results.append(
                        ToolResultInfo(
                            event.tool_use_id, event.tool_name, event.summary, event.is_error
                        )
                    )
                job.sink.emit(event)
            else:
                raise ev.BackendError("the model client ended the turn without a result")
        except (ev.BackendError, ev.TurnCancelled) as exc:
            job.fail(exc)
        except Exception as exc:  # a bug must not take the session down with it
            log.exception("session %s: query failed", self.session_id)
            job.fail(ev.BackendError(f"internal error in dave-lsp: {exc}; see the server log"))
            await self._close_backend()
        finally:
            self._broker.deny_session(self.session_id, "The turn ended.")
            if self.backend is not None and not self.backend.alive:
                await self._close_backend()
            job.state = "done"
            self.current = None
            job.finished.set_result(None)

    def _fail_waiting(self, exc: ev.BackendError) -> None:
        """A connect failure fails every query waiting on the session, as the protocol says."""
        waiting: list[Any] = []
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is _SHUTDOWN:
                waiting.append(item)
                continue
            item.fail(ev.BackendError(str(exc)))
            self._waiting -= 1
            item.state = "done"
            item.finished.set_result(None)
        for item in waiting:
            self._queue.put_nowait(item)

    def _result(self, job: QueryJob, done: ev.Done) -> QueryResult:
        return QueryResult(
            session_id=self.session_id,
            text="".join(job.text),
            stop_reason=done.stop_reason,
            tool_results=list(job.tool_results),
            usage=UsageInfo(done.usage.input_tokens, done.usage.output_tokens),
            cost_usd=done.cost_usd,
            duration_ms=done.duration_ms,
            backend_session_id=done.backend_session_id,
        )

    async def _ask(
        self, tool_use_id: str, tool_name: str, tool_input: dict[str, Any], suggestions: list[Any]
    ) -> PermissionAnswer:
        """The backend's permission callback: a rule, or the user through the editor."""
        job = self.current
        if job is None or job.cancel_requested or self.closing:
            return PermissionAnswer(
                allow=False, reason="The request was cancelled.", interrupt=True
            )
        if tool_name in self.rules:
            job.sink.emit(ev.PermissionResolved(f"rule-{tool_use_id}", "allow", "rule"))
            return PermissionAnswer(allow=True)
        if not job.sink.can_ask:
            return PermissionAnswer(
                allow=False,
                reason=(
                    "The editor cannot answer permission requests (the query had no progress "
                    "token); it must allow this tool through its permission mode."
                ),
            )
        request = self._broker.register(self.session_id, tool_name)
        job.sink.emit(
            ev.PermissionRequested(
                request.request_id,
                tool_use_id,
                tool_name,
                tool_input,
                f"Allow {describe_tool_use(tool_name, tool_input, self.config.cwd)}?",
            )
        )
        timeout = self._options.permission_timeout_seconds
        try:
            answer, by, always = await asyncio.wait_for(asyncio.shield(request.future), timeout)
        except TimeoutError:
            self._broker.forget(request.request_id)
            answer, by, always = (
                PermissionAnswer(
                    allow=False,
                    interrupt=True,
                    reason=f"No answer from the user within {timeout:g} s.",
                ),
                "cancel",
                False,
            )
        if always:
            self.rules.add(tool_name)
        job.sink.emit(
            ev.PermissionResolved(request.request_id, "allow" if answer.allow else "deny", by)
        )
        return answer

    async def cancel(self, job: QueryJob, reason: str = "") -> None:
        """End `job` as cancelled: drop it if it waits, interrupt it if it runs."""
        job.cancel_requested = True
        if job.state == "queued":
            job.fail(ev.TurnCancelled(reason or "query cancelled before it started"))
            return
        if job.state == "running":
            self._broker.deny_session(self.session_id, "The user cancelled the request.")
            if self.backend is not None:
                await self.backend.interrupt()
            try:
                await asyncio.wait_for(asyncio.shield(job.finished), SHUTDOWN_TIMEOUT)
            except TimeoutError:
                # The backend did not wind down: end the turn here, and start a fresh
                # backend for the next query rather than wait on a stuck one.
                log.warning("session %s: backend did not stop; restarting it", self.session_id)
                job.fail(ev.TurnCancelled(reason or "query cancelled"))
                self.task.cancel()
                await asyncio.gather(self.task, return_exceptions=True)
                self._restart_task()

    def _restart_task(self) -> None:
        self.current = None
        self.task = asyncio.create_task(self._run(), name=f"session {self.session_id[:40]}")

    async def shutdown(self) -> None:
        """Cancel everything, close the backend; the backend's process is gone on return."""
        self.closing = True
        self._broker.deny_session(self.session_id, "The session was deleted.")
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if isinstance(item, QueryJob):
                item.fail(ev.TurnCancelled("the session was deleted"))
                item.state = "done"
                item.finished.set_result(None)
        self._waiting = 0
        if self.current is not None:
            await self.cancel(self.current, "the session was deleted")
        self._queue.put_nowait(_SHUTDOWN)
        try:
            await asyncio.wait_for(asyncio.shield(self.task), SHUTDOWN_TIMEOUT)
        except (TimeoutError, asyncio.CancelledError):
            self.task.cancel()
            await self._close_backend()

    async def _close_backend(self) -> None:
        backend, self.backend = self.backend, None
        if backend is not None:
            await _close_quietly(backend)


async def _close_quietly(backend: BackendSession) -> None:
    try:
        await backend.close()
    except Exception:
        log.exception("closing a backend failed")


class SessionManager:
    """Every session of the server, by `sessionId`."""

    def __init__(
        self,
        options: InitOptions,
        factory: BackendFactory,
        broker: PermissionBroker,
        default_cwd: str,
    ) -> None:
        self.options = options
        self.factory = factory
        self.broker = broker
        self.default_cwd = default_cwd
        self.sessions: dict[str, SessionActor] = {}

    def config_for(self, params: QueryParams) -> SessionConfig:
        options = self.options
        cwd = os.path.abspath(os.path.expanduser(params.cwd or options.cwd or self.default_cwd))
        return SessionConfig(
            session_id=params.session_id,
            cwd=cwd,
            model=params.model or options.model,
            permission_mode=options.permission_mode,
            env=dict(options.env),
            cli_path=options.claude.cli_path,
            openai_base_url=options.openai.base_url,
            openai_api_key_env=options.openai.api_key_env,
            openai_system_prompt=options.openai.system_prompt,
            request_timeout_seconds=options.request_timeout_seconds,
        )

    def submit(self, params: QueryParams, sink: ProgressSink) -> QueryJob:
        actor = self.sessions.get(params.session_id)
        if actor is None or actor.closing:
            actor = SessionActor(self.config_for(params), self.factory, self.broker, self.options)
            self.sessions[params.session_id] = actor
        loop = asyncio.get_running_loop()
        job = QueryJob(
            session_id=params.session_id,
            prompt=params.prompt,
            transcript=[ChatMessage(m.role, m.content) for m in params.messages],
            sink=sink,
            future=loop.create_future(),
            finished=loop.create_future(),
        )
        actor.submit(job)
        return job

    async def cancel(self, job: QueryJob) -> None:
        actor = self.sessions.get(job.session_id)
        if actor is not None:
            await actor.cancel(job)
        else:
            job.fail(ev.TurnCancelled())

    async def delete(self, session_id: str) -> bool:
        actor = self.sessions.pop(session_id, None)
        if actor is None:
            return False
        await actor.shutdown()
        return True

    async def close_all(self) -> None:
        actors = list(self.sessions.values())
        self.sessions.clear()
        await asyncio.gather(*(actor.shutdown() for actor in actors), return_exceptions=True)
