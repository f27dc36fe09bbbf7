"""Sessions: `SessionManager` maps `sessionId` to a `SessionActor`.

A `SessionActor` is one asyncio task that alone owns one backend session and takes
commands from its queue (a query, warm, evict, configure, shutdown), so queries on one
session run one at a time, in arrival order, and sessions run concurrently. Other
tasks only put commands on the queue, answer permissions through the broker, or call
`interrupt`.

The manager bounds backend processes (`maxLiveSessions`, spares included: an unused
spare gives its slot up first, then the least recently used idle session is evicted,
its state kept, and resumed on its next query), evicts idle sessions after
`idleTimeoutSeconds`, and keeps up to `prewarm` spare actors whose client is already
connected, in free slots only, which a new session with the default settings adopts.
A spare is a whole actor, because a Claude client must be closed by the task that
connected it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import time
import uuid
from typing import Any

import attrs

from dave_lsp import events as ev
from dave_lsp import rules as allow_rules
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
from dave_lsp.protocol import QueryResult, SessionInfo, ToolResultInfo
from dave_lsp.rules import Rule, Suggestion
from dave_lsp.store import SessionRecord, SessionStore, now_iso
from dave_lsp.summaries import describe_tool_use

log = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT = 5.0
# Backends that hold a process, and so count against maxLiveSessions.
PROCESS_BACKENDS = ("claude",)
BACKEND_MODULES = {
    "claude": "dave_lsp.backends.claude",
    "openai": "dave_lsp.backends.openai_compat",
}


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
    # Whether the model got as far as answering (any event but a status change).
    produced: bool = False
    text: list[str] = attrs.field(factory=list)
    tool_results: list[ToolResultInfo] = attrs.field(factory=list)

    def take(self, event: ev.Event) -> None:
        """Record one event of the turn and report it to the editor."""
        if type(event) is ev.Token:  # the common case first
            self.produced = True
            self.text.append(event.text)
        elif isinstance(event, ev.ToolResult):
            self.produced = True
            self.tool_results.append(
                ToolResultInfo(event.tool_use_id, event.tool_name, event.summary, event.is_error)
            )
        elif not isinstance(event, ev.Status):
            self.produced = True
        self.sink.emit(event)

    def fail(self, exc: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(exc)
            # Mark it retrieved: a job cancelled while queued may have nobody awaiting it.
            self.future.exception()

    def close(self) -> None:
        self.state = "done"
        if not self.finished.done():
            self.finished.set_result(None)

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


@attrs.define
class _Command:
    """A non-query command; `done` resolves when the actor has carried it out."""

    kind: str  # warm | evict | configure
    done: asyncio.Future[None]
    permission_mode: str | None = None
    model: str | None = None


_SHUTDOWN = object()


class SessionActor:
    """One session: a task, a queue, and the backend session only it touches."""

    def __init__(self, manager: SessionManager, config: SessionConfig, record: SessionRecord):
        self.manager = manager
        self.config = config
        self.record = record
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._waiting = 0
        self.backend: BackendSession | None = None
        self.current: QueryJob | None = None
        self.closing = False
        self.opening = False
        self.last_active = time.monotonic()
        self.notice: str | None = None
        self.on_first_answer: Any = None
        self.task = asyncio.create_task(self._run(), name=f"session {self.session_id[:40]}")

    @property
    def session_id(self) -> str:
        return self.config.session_id

    @property
    def holds_process(self) -> bool:
        return (
            self.backend is not None or self.opening
        ) and self.config.backend in PROCESS_BACKENDS

    @property
    def state(self) -> str:
        if self.manager.broker.pending_for(self.session_id):
            return "needsInput"
        if self.current is not None:
            return "working"
        if self.backend is None and self.record.turns:
            return "evicted"
        return "idle"

    @property
    def evictable(self) -> bool:
        return (
            self.backend is not None
            and self.current is None
            and self._queue.empty()
            and not self.closing
            and not self.manager.broker.pending_for(self.session_id)
        )

    def adopt(self, config: SessionConfig, record: SessionRecord) -> None:
        """Become the session `config` describes (a spare being put to use)."""
        self.config = config
        self.record = record
        self.task.set_name(f"session {self.session_id[:40]}")

    def submit(self, job: QueryJob) -> None:
        if self.closing:
            raise ev.BackendError(
                f"session {self.session_id} is being deleted; use a new sessionId"
            )
        limit = self.manager.options.max_queued_queries
        if self._waiting >= limit:
            raise ev.BackendError(
                f"session {self.session_id} already has {limit} queries waiting; "
                "wait for them to finish or cancel one"
            )
        self._waiting += 1
        self.last_active = time.monotonic()
        self._queue.put_nowait(job)

    def command(self, kind: str, **values: Any) -> asyncio.Future[None]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Command(kind, done, **values))
        return done

    async def _run(self) -> None:
        try:
            while True:
                item = await self._queue.get()
                if item is _SHUTDOWN:
                    break
                if isinstance(item, _Command):
                    await self._carry_out(item)
                    continue
                job: QueryJob = item
                self._waiting -= 1
                if job.future.done():  # cancelled while it waited
                    job.close()
                    continue
                await self._run_query(job)
        finally:
            await self._close_backend()

    async def _carry_out(self, command: _Command) -> None:
        try:
            if command.kind == "warm":
                await self._ensure_backend(warm_up=True)
            elif command.kind == "evict":
                if self.backend is not None:
                    log.info("session %s: evicted (its state is kept)", self.session_id)
                await self._close_backend()
            elif command.kind == "configure":
                await self._configure(command.permission_mode, command.model)
        except ev.BackendError as exc:
            if not command.done.done():
                command.done.set_exception(exc)
                command.done.exception()
        finally:
            if not command.done.done():
                command.done.set_result(None)

    async def _configure(self, permission_mode: str | None, model: str | None) -> None:
        if permission_mode is not None:
            self.config = attrs.evolve(self.config, permission_mode=permission_mode)
            self.record.permission_mode = permission_mode
        if model is not None:
            self.config = attrs.evolve(self.config, model=model)
            self.record.model = model
        self.manager.store.save(self.record)
        if self.backend is not None:
            await self.backend.configure(permission_mode=permission_mode, model=model)

    async def _ensure_backend(self, warm_up: bool = False) -> BackendSession:
        if self.backend is not None:
            return self.backend
        self.opening = True
        try:
            await self.manager.make_room(self)
            backend = self.manager.factory_for(self.config.backend)(self.config, self._ask)
            try:
                self.notice = await backend.open(warm_up) or self.notice
            except ev.BackendError:
                await _close_quietly(backend)
                raise
            self.backend = backend
            return backend
        finally:
            self.opening = False

    async def _run_query(self, job: QueryJob) -> None:
        job.state = "running"
        self.current = job
        had_backend = self.backend is not None
        try:
            try:
                await self._turn(job)
            except ev.BackendError:
                if not had_backend or job.produced or job.cancel_requested or self._usable():
                    raise
                # The process was found dead before the turn produced anything (it died
                # while the session was idle): the prompt reached nobody, so send it once
                # more through a new process, which resumes the conversation.
                log.info("session %s: backend process gone; restarting it", self.session_id)
                await self._turn(job)
        except (ev.BackendError, ev.TurnCancelled) as exc:
            job.fail(exc)
        except Exception as exc:  # a bug must not take the session down with it
            log.exception("session %s: query failed", self.session_id)
            job.fail(ev.BackendError(f"internal error in dave-lsp: {exc}; see the server log"))
            await self._close_backend()
        finally:
            self.manager.broker.deny_session(self.session_id, "The turn ended.")
            if self.backend is not None and not self.backend.alive:
                await self._close_backend()
            self.current = None
            self.last_active = time.monotonic()
            job.close()

    def _usable(self) -> bool:
        return self.backend is not None and self.backend.alive

    async def _turn(self, job: QueryJob) -> None:
        """Run one query on the backend (opening it if needed), streaming its events."""
        if self.backend is not None and not self.backend.alive:
            # Its process ended while the session was idle: start a new one, which
            # resumes the conversation.
            await self._close_backend()
        if self.backend is None:
            job.sink.emit(ev.Status("connecting", "Starting the model client…"))
            try:
                await self._ensure_backend()
            except ev.BackendError as exc:
                self._fail_waiting(exc)
                raise
        assert self.backend is not None
        if self.notice:
            job.sink.emit(ev.Status("working", self.notice))
            self.notice = None
        async for event in self.backend.query(job.prompt, job.transcript, job.take):
            if isinstance(event, ev.Done):
                job.future.set_result(self._result(job, event))
                self._remember(job, event)
                return
            job.take(event)
        raise ev.BackendError("the model client ended the turn without a result")

    def _remember(self, job: QueryJob, done: ev.Done) -> None:
        """Keep what a restart needs to resume this conversation."""
        record = self.record
        record.turns += 1
        record.last_active_at = now_iso()
        if done.backend_session_id:
            record.backend_session_id = done.backend_session_id
            # A backend opened after an eviction resumes this conversation.
            self.config = attrs.evolve(self.config, resume=done.backend_session_id)
        if not record.title:
            first_line = job.prompt.strip().splitlines()[0] if job.prompt.strip() else ""
            record.title = first_line[:80]
        self.manager.store.save(record)
        if self.on_first_answer is not None:
            callback, self.on_first_answer = self.on_first_answer, None
            callback()

    def _fail_waiting(self, exc: ev.BackendError) -> None:
        """A connect failure fails every query waiting on the session, as the protocol says."""
        kept: list[Any] = []
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if isinstance(item, QueryJob):
                item.fail(ev.BackendError(str(exc)))
                self._waiting -= 1
                item.close()
            else:
                kept.append(item)
        for item in kept:
            self._queue.put_nowait(item)

    def _result(self, job: QueryJob, done: ev.Done) -> QueryResult:
        return QueryResult(
            session_id=self.session_id,
            text="".join(job.text),
            stop_reason=done.stop_reason,
            tool_results=list(job.tool_results),
            usage=done.usage,
            cost_usd=done.cost_usd,
            duration_ms=done.duration_ms,
            backend_session_id=done.backend_session_id,
        )

    async def _ask(
        self,
        tool_use_id: str,
        tool_name: str,
        tool_input: dict[str, Any],
        suggestions: list[Suggestion],
    ) -> PermissionAnswer:
        """The backend's permission callback: a rule, or the user through the editor."""
        job = self.current
        if job is None or job.cancel_requested or self.closing:
            return PermissionAnswer(
                allow=False, reason="The request was cancelled.", interrupt=True
            )
        job.produced = True  # the model asked for a tool: this turn is under way
        cwd = self.config.cwd
        covering = (
            r for r in self.record.rules if allow_rules.covers(r.rule, tool_name, tool_input, cwd)
        )
        rule = next(covering, None)
        if rule is not None:
            job.sink.emit(ev.PermissionResolved(f"rule-{tool_use_id}", "allow", "rule", rule.rule))
            return PermissionAnswer(allow=True)
        if not job.sink.can_ask:
            return PermissionAnswer(
                allow=False,
                reason=(
                    "The editor cannot answer permission requests (the query had no progress "
                    "token); it must allow this tool through its permission mode."
                ),
            )
        proposal = allow_rules.propose(tool_name, tool_input, suggestions, cwd)
        broker = self.manager.broker
        request = broker.register(self.session_id, tool_name)
        job.sink.emit(
            ev.PermissionRequested(
                request.request_id,
                tool_use_id,
                tool_name,
                tool_input,
                f"Allow {describe_tool_use(tool_name, tool_input, cwd)}?",
                proposal,
            )
        )
        timeout = self.manager.options.permission_timeout_seconds
        try:
            answer, by, always = await asyncio.wait_for(asyncio.shield(request.future), timeout)
        except asyncio.CancelledError:
            # The backend gave up on the answer (its process died): close the prompt.
            broker.forget(request.request_id)
            job.sink.emit(ev.PermissionResolved(request.request_id, "deny", "cancel"))
            raise
        except TimeoutError:
            broker.forget(request.request_id)
            answer, by, always = (
                PermissionAnswer(
                    allow=False,
                    interrupt=True,
                    reason=(
                        f"No answer to the permission request for {tool_name} within "
                        f"{timeout:g} s (permissionTimeoutSeconds); the tool was denied."
                    ),
                ),
                "cancel",
                False,
            )
        added = None
        if always and answer.allow:
            added = proposal.rule
            if all(r.rule != proposal.rule for r in self.record.rules):
                self.record.rules.append(attrs.evolve(proposal, created_at=now_iso()))
                self.manager.store.save(self.record)
        job.sink.emit(
            ev.PermissionResolved(
                request.request_id, "allow" if answer.allow else "deny", by, added
            )
        )
        return answer

    async def cancel(self, job: QueryJob, reason: str = "") -> None:
        """End `job` as cancelled: drop it if it waits, interrupt it if it runs."""
        job.cancel_requested = True
        if job.state == "queued":
            job.fail(ev.TurnCancelled(reason or "query cancelled before it started"))
            return
        if job.state == "running":
            self.manager.broker.deny_session(self.session_id, "The user cancelled the request.")
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
                self.current = None
                job.close()
                self.task = asyncio.create_task(self._run(), name=f"session {self.session_id[:40]}")

    async def shutdown(self) -> None:
        """Cancel everything, close the backend; the backend's process is gone on return."""
        self.closing = True
        self.manager.broker.deny_session(self.session_id, "The session was deleted.")
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if isinstance(item, QueryJob):
                item.fail(ev.TurnCancelled("the session was deleted"))
                item.close()
            elif isinstance(item, _Command) and not item.done.done():
                item.done.set_result(None)
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
    """Every session of the server, by `sessionId`, plus the warm spares."""

    def __init__(
        self,
        options: InitOptions,
        factories: dict[str, BackendFactory],
        broker: PermissionBroker,
        default_cwd: str,
        store: SessionStore,
    ) -> None:
        self.options = options
        self.factories = factories
        self.broker = broker
        self.default_cwd = default_cwd
        self.store = store
        self.sessions: dict[str, SessionActor] = {}
        self.spares: list[SessionActor] = []
        self._reaper: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._closed = False

    def factory_for(self, backend: str) -> BackendFactory:
        return self.factories[backend]

    # -- configuration ---------------------------------------------------------------

    def new_config(
        self,
        session_id: str,
        *,
        cwd: str | None = None,
        model: str | None = None,
        permission_mode: str | None = None,
        backend: str | None = None,
        resume: str | None = None,
    ) -> SessionConfig:
        options = self.options
        folder = os.path.abspath(os.path.expanduser(cwd or options.cwd or self.default_cwd))
        return SessionConfig(
            session_id=session_id,
            backend=backend or options.backend,
            cwd=folder,
            model=model or options.model,
            permission_mode=permission_mode or options.permission_mode,
            env=dict(options.env),
            cli_path=options.claude.cli_path,
            openai_base_url=options.openai.base_url,
            openai_api_key_env=options.openai.api_key_env,
            openai_system_prompt=options.openai.system_prompt,
            request_timeout_seconds=options.request_timeout_seconds,
            resume=resume,
        )

    @staticmethod
    def _record_for(config: SessionConfig) -> SessionRecord:
        return SessionRecord(
            session_id=config.session_id,
            backend=config.backend,
            cwd=config.cwd,
            model=config.model,
            permission_mode=config.permission_mode,
            backend_session_id=config.resume or "",
        )

    # -- finding and creating sessions ----------------------------------------------

    def get(self, session_id: str) -> SessionActor | None:
        """The live actor of a session, reviving one the store remembers."""
        actor = self.sessions.get(session_id)
        if actor is not None and not actor.closing:
            return actor
        record = self.store.load(session_id)
        if record is None or record.backend not in self.factories:
            return None
        config = self.new_config(
            session_id,
            cwd=record.cwd,
            model=record.model,
            permission_mode=record.permission_mode,
            backend=record.backend,
            resume=record.backend_session_id or None,
        )
        actor = SessionActor(self, config, record)
        self.sessions[session_id] = actor
        return actor

    def create(self, config: SessionConfig) -> SessionActor:
        """A new session; it adopts a warm spare when one fits."""
        record = self._record_for(config)
        spare = self._take_spare(config)
        if spare is not None:
            spare.adopt(config, record)
            spare.on_first_answer = self.ensure_spares
            actor = spare
            # The spare's process now counts as a session's: keep within the limit.
            room = asyncio.create_task(self.make_room(actor), name="make room")
            self._background.add(room)
            room.add_done_callback(self._background.discard)
        else:
            actor = SessionActor(self, config, record)
        self.sessions[config.session_id] = actor
        self.store.save(record)
        return actor

    def get_or_create(self, session_id: str, cwd: str | None, model: str | None) -> SessionActor:
        actor = self.get(session_id)
        if actor is None:
            actor = self.create(self.new_config(session_id, cwd=cwd, model=model))
        return actor

    def submit(
        self,
        session_id: str,
        prompt: str,
        transcript: list[ChatMessage],
        sink: ProgressSink,
        cwd: str | None = None,
        model: str | None = None,
    ) -> QueryJob:
        actor = self.get_or_create(session_id, cwd, model)
        loop = asyncio.get_running_loop()
        job = QueryJob(
            session_id=session_id,
            prompt=prompt,
            transcript=transcript,
            sink=sink,
            future=loop.create_future(),
            finished=loop.create_future(),
        )
        actor.submit(job)
        return job

    def new_session(
        self,
        session_id: str | None,
        *,
        cwd: str | None,
        model: str | None,
        permission_mode: str | None,
        backend: str | None,
        resume: str | None,
    ) -> SessionActor:
        session_id = session_id or str(uuid.uuid4())
        if self.get(session_id) is not None:
            raise ValueError(f"session {session_id} already exists; query it, or delete it first")
        config = self.new_config(
            session_id,
            cwd=cwd,
            model=model,
            permission_mode=permission_mode,
            backend=backend,
            resume=resume,
        )
        actor = self.create(config)
        actor.command("warm")  # connect now, so the first query does not wait for it
        return actor

    async def cancel(self, job: QueryJob) -> None:
        actor = self.sessions.get(job.session_id)
        if actor is not None:
            await actor.cancel(job)
        else:
            job.fail(ev.TurnCancelled())

    async def delete(self, session_id: str) -> bool:
        actor = self.sessions.pop(session_id, None)
        known = actor is not None or self.store.load(session_id) is not None
        self.store.delete(session_id)
        if actor is not None:
            await actor.shutdown()
            self.ensure_spares()  # its slot is free again
        return known

    async def configure(
        self, session_id: str, *, permission_mode: str | None = None, model: str | None = None
    ) -> bool:
        actor = self.get(session_id)
        if actor is None:
            return False
        await actor.command("configure", permission_mode=permission_mode, model=model)
        return True

    def rules(self, session_id: str) -> list[Rule] | None:
        """The session's allow-always rules; None for an unknown session."""
        actor = self.get(session_id)
        return None if actor is None else list(actor.record.rules)

    def remove_rule(self, session_id: str, rule: str) -> bool | None:
        """Remove one rule; whether it was there, or None for an unknown session."""
        actor = self.get(session_id)
        if actor is None:
            return None
        kept = [r for r in actor.record.rules if r.rule != rule]
        if len(kept) == len(actor.record.rules):
            return False
        actor.record.rules = kept
        self.store.save(actor.record)
        return True

    def list(self) -> list[SessionInfo]:
        infos: dict[str, SessionInfo] = {}
        for record in self.store.all():
            infos[record.session_id] = _info(record, "evicted")
        for actor in self.sessions.values():
            if not actor.closing:
                infos[actor.session_id] = _info(actor.record, actor.state)
        return sorted(infos.values(), key=lambda i: i.last_active_at, reverse=True)

    # -- bounded processes -----------------------------------------------------------

    def _processes(self, excluding: SessionActor | None = None) -> int:
        """Backend processes held or being started: live sessions' and every spare's."""
        live = sum(1 for a in self.sessions.values() if a is not excluding and a.holds_process)
        return live + len(self.spares)

    async def make_room(self, requester: SessionActor) -> None:
        """Free a process slot for `requester` within `maxLiveSessions`, spares included:
        an unused spare goes first, then the least recently used idle sessions."""
        if requester.config.backend not in PROCESS_BACKENDS or requester in self.spares:
            return
        if requester.session_id not in self.sessions:
            return
        while True:
            if self._processes(excluding=requester) < self.options.max_live_sessions:
                return
            if self.spares:
                spare = self.spares.pop()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.shield(spare.shutdown()), SHUTDOWN_TIMEOUT)
                continue
            live = [a for a in self.sessions.values() if a is not requester and a.holds_process]
            idle = sorted((a for a in live if a.evictable), key=lambda a: a.last_active)
            if not idle:
                # Every live session is working or waiting on the user: none may be
                # evicted, so this one runs over the limit until one goes idle.
                log.warning(
                    "maxLiveSessions (%d) exceeded: every live session is busy",
                    self.options.max_live_sessions,
                )
                return
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(idle[0].command("evict")), SHUTDOWN_TIMEOUT)

    def start_background(self) -> None:
        """Start the idle reaper and the spares (after `initialized`)."""
        timeout = self.options.idle_timeout_seconds
        if timeout and self._reaper is None:
            self._reaper = asyncio.create_task(self._reap_idle(timeout), name="idle reaper")
        warming = asyncio.create_task(self._preload_then_warm(), name="preload")
        self._background.add(warming)
        warming.add_done_callback(self._background.discard)

    async def _preload_then_warm(self) -> None:
        # The backend's SDK takes a second or more to import: do it in a thread, off the
        # loop and after `initialize` was answered, so neither waits for it.
        module = BACKEND_MODULES.get(self.options.backend)
        if module is not None:
            try:
                await asyncio.to_thread(importlib.import_module, module)
            except ImportError:
                log.exception("could not import %s", module)
        self.ensure_spares()

    async def _reap_idle(self, idle_seconds: float) -> None:
        period = max(0.2, min(30.0, idle_seconds / 3))
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            for actor in list(self.sessions.values()):
                if actor.evictable and now - actor.last_active >= idle_seconds:
                    actor.command("evict")

    def ensure_spares(self) -> None:
        """Top the spares up to `prewarm`, for the default backend when it holds a process.
        A spare only takes a free slot under `maxLiveSessions`: it never evicts a session."""
        if self._closed or self.options.backend not in PROCESS_BACKENDS:
            return
        while (
            len(self.spares) < self.options.prewarm
            and self._processes() < self.options.max_live_sessions
        ):
            config = self.new_config(f"spare-{uuid.uuid4()}")
            spare = SessionActor(self, config, self._record_for(config))
            spare.command("warm")
            self.spares.append(spare)

    def _take_spare(self, config: SessionConfig) -> SessionActor | None:
        for spare in self.spares:
            if (
                spare.config.backend == config.backend
                and spare.config.cwd == config.cwd
                and spare.config.model == config.model
                and spare.config.permission_mode == config.permission_mode
                and config.resume is None
            ):
                self.spares.remove(spare)
                return spare
        return None

    async def close_all(self) -> None:
        self._closed = True
        if self._reaper is not None:
            self._reaper.cancel()
        actors = [*self.sessions.values(), *self.spares]
        self.sessions.clear()
        self.spares.clear()
        await asyncio.gather(*(actor.shutdown() for actor in actors), return_exceptions=True)


def _info(record: SessionRecord, state: str) -> SessionInfo:
    return SessionInfo(
        session_id=record.session_id,
        state=state,  # type: ignore[arg-type]
        backend=record.backend,
        cwd=record.cwd,
        model=record.model,
        permission_mode=record.permission_mode,
        created_at=record.created_at,
        last_active_at=record.last_active_at,
        turns=record.turns,
        title=record.title,
        backend_session_id=record.backend_session_id,
    )
