"""Sessions: `SessionManager` maps `sessionId` to a `SessionActor`; lifecycle only.

A `SessionActor` is one asyncio task that alone owns one backend session and takes
commands from its queue (a query, `Warm`, `Evict`, `Configure`, shutdown), so queries
on one session run one at a time, in arrival order, and sessions run concurrently.
Other tasks only put commands on the queue, answer permissions through the broker, or
call `cancel`. The actor is handed what it needs (the store, the permission policy,
its queue limit, and a callback that frees a process slot) and never reaches back
into the manager.

Capacity (spares, eviction, the idle reaper) is session/pool.py's; the permission policy is
permissions/policy.py's; one turn's bookkeeping is session/turn.py's. A spare is a whole actor,
because a Claude client must be closed by the task that connected it.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal

import attrs

from dave_lsp import events as ev
from dave_lsp.backends import history as conversation
from dave_lsp.backends import registry
from dave_lsp.backends.base import BackendSession, ChatMessage, PermissionAnswer, SessionConfig
from dave_lsp.config import InitOptions
from dave_lsp.lsp.progress import EventSink
from dave_lsp.lsp.protocol import AttachmentParam, ParamsError, QueryContext, SessionInfo
from dave_lsp.permissions.policy import PermissionPolicy, ToolRequest
from dave_lsp.permissions.rules import Rule, Suggestion
from dave_lsp.review.changes import ChangeSet, ChangeStore, HunkRef, RevertResult, revert
from dave_lsp.review.review import Review
from dave_lsp.session import context as editor_context
from dave_lsp.session.pool import SHUTDOWN_TIMEOUT, ProcessPool
from dave_lsp.session.store import SessionRecord, SessionStore, now_iso
from dave_lsp.session.turn import QueryJob
from dave_lsp.tools.editor import EditorTools
from dave_lsp.trust import FolderCheck, TrustStore
from dave_lsp.trust import check as check_folder

log = logging.getLogger(__name__)

SessionState = Literal["idle", "working", "needsInput", "evicted"]


@attrs.frozen
class Warm:
    """Connect the backend now (and warm it up), so the first query does not wait."""

    done: asyncio.Future[None]


@attrs.frozen
class Evict:
    """Close the backend, keeping the session's state for its next query."""

    done: asyncio.Future[None]


@attrs.frozen
class Configure:
    """Change the mode or model, of the live client too, keeping the conversation."""

    done: asyncio.Future[None]
    permission_mode: str | None = None
    model: str | None = None


class Shutdown:
    """The last item an actor takes: it closes its backend and ends."""


Command = Warm | Evict | Configure
_SHUTDOWN = Shutdown()


class SessionActor:
    """One session: a task, a queue, and the backend session only it touches."""

    def __init__(
        self,
        config: SessionConfig,
        record: SessionRecord,
        *,
        store: SessionStore,
        changes: ChangeStore,
        policy: PermissionPolicy,
        max_queued: int,
        make_room: Callable[[SessionActor], Awaitable[None]],
        is_trusted: Callable[[str], bool] = lambda _folder: False,
    ) -> None:
        self.config = config
        self.record = record
        self._store = store
        self._changes = changes
        self.review = Review(config.session_id, config.cwd, changes)
        self._policy = policy
        self._max_queued = max_queued
        self._make_room = make_room
        self._is_trusted = is_trusted
        self._queue: asyncio.Queue[QueryJob | Command | Shutdown] = asyncio.Queue()
        self._waiting = 0
        self.backend: BackendSession | None = None
        self.current: QueryJob | None = None
        # The running turn, a task of the actor's own, so a stuck backend's turn can be
        # abandoned without touching the actor's task.
        self._turn_task: asyncio.Task[None] | None = None
        self.closing = False
        self.opening = False
        self.last_active = time.monotonic()
        self.notice: str | None = None
        self.on_first_answer: Callable[[], None] | None = None
        self.task = asyncio.create_task(self._run(), name=f"session {self.session_id[:40]}")

    @property
    def session_id(self) -> str:
        return self.config.session_id

    @property
    def holds_process(self) -> bool:
        spec = registry.BACKENDS.get(self.config.backend)
        return (
            (self.backend is not None or self.opening) and spec is not None and spec.holds_process
        )

    @property
    def state(self) -> SessionState:
        if self._policy.broker.pending_for(self.session_id):
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
            and not self._policy.broker.pending_for(self.session_id)
        )

    def adopt(self, config: SessionConfig, record: SessionRecord) -> None:
        """Become the session `config` describes (a spare being put to use)."""
        self.config = config
        self.record = record
        self.review = Review(config.session_id, config.cwd, self._changes)
        self.task.set_name(f"session {self.session_id[:40]}")

    # -- commands ----------------------------------------------------------------------

    def submit(self, job: QueryJob) -> None:
        if self.closing:
            raise ev.BackendError(
                f"session {self.session_id} is being deleted; use a new sessionId"
            )
        if self._waiting >= self._max_queued:
            raise ev.BackendError(
                f"session {self.session_id} already has {self._max_queued} queries waiting; "
                "wait for them to finish or cancel one"
            )
        self._waiting += 1
        self.last_active = time.monotonic()
        self._queue.put_nowait(job)

    def warm(self) -> asyncio.Future[None]:
        return self._command(Warm(_future()))

    def evict(self) -> asyncio.Future[None]:
        return self._command(Evict(_future()))

    def configure(
        self, *, permission_mode: str | None = None, model: str | None = None
    ) -> asyncio.Future[None]:
        return self._command(Configure(_future(), permission_mode, model))

    def _command(self, command: Command) -> asyncio.Future[None]:
        self._queue.put_nowait(command)
        return command.done

    # -- the actor's task --------------------------------------------------------------

    async def _run(self) -> None:
        try:
            while True:
                match await self._queue.get():
                    case Shutdown():
                        break
                    case QueryJob() as job:
                        self._waiting -= 1
                        if job.future.done():  # cancelled while it waited
                            job.close()
                            continue
                        await self._run_query(job)
                    case command:
                        await self._carry_out(command)
        finally:
            await self._close_backend()

    async def _carry_out(self, command: Command) -> None:
        try:
            match command:
                case Warm():
                    await self._ensure_backend(warm_up=True)
                case Evict():
                    if self.backend is not None:
                        log.info("session %s: evicted (its state is kept)", self.session_id)
                    await self._close_backend()
                case Configure(_, permission_mode, model):
                    await self._configure(permission_mode, model)
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
        self._store.save(self.record)
        if self.backend is not None:
            await self.backend.configure(permission_mode=permission_mode, model=model)

    def _trust_changed(self) -> bool:
        """Take the folder's trust as it is now (trust.py); whether it changed."""
        trusted = self._is_trusted(self.config.cwd)
        if trusted == self.config.trusted:
            return False
        self.config = attrs.evolve(self.config, trusted=trusted)
        return True

    async def _ensure_backend(self, warm_up: bool = False) -> BackendSession:
        if self.backend is not None:
            return self.backend
        self._trust_changed()  # a backend starts with the folder's trust of this moment
        self.opening = True
        try:
            await self._make_room(self)
            spec = registry.BACKENDS[self.config.backend]
            backend = spec.factory(self.config, self._ask, self)
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
        self.review.start_turn()
        try:
            self._turn_task = asyncio.create_task(self._attempt(job), name="turn")
            await self._turn_task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # the actor itself is being cancelled
            # `cancel` abandoned a turn whose backend did not wind down (and failed the
            # job): the next query gets a fresh backend.
            await self._finish_changes(job, succeeded=False)
            job.fail(ev.TurnCancelled())
            await self._close_backend()
        finally:
            self._turn_task = None
            self._policy.broker.deny_session(self.session_id, "The turn ended.")
            if self.backend is not None and not self.backend.alive:
                await self._close_backend()
            self.current = None
            self.last_active = time.monotonic()
            job.close()

    async def _attempt(self, job: QueryJob) -> None:
        """Run the turn; a process found dead before it produced anything gets the
        prompt once more through a new process. Failures end up on the job."""
        had_backend = self.backend is not None
        try:
            try:
                await self._turn(job)
            except ev.BackendError:
                if not had_backend or job.produced or job.cancel_requested or self._usable():
                    raise
                # The process died while the session was idle: the prompt reached nobody,
                # so send it once more through a new process, which resumes the conversation.
                log.info("session %s: backend process gone; restarting it", self.session_id)
                await self._turn(job)
        except (ev.BackendError, ev.TurnCancelled) as exc:
            await self._finish_changes(job, succeeded=False)
            job.fail(exc)
        except Exception as exc:  # a bug must not take the session down with it
            log.exception("session %s: query failed", self.session_id)
            await self._finish_changes(job, succeeded=False)
            job.fail(ev.BackendError(f"internal error in dave-lsp: {exc}; see the server log"))
            await self._close_backend()

    def _usable(self) -> bool:
        return self.backend is not None and self.backend.alive

    async def _turn(self, job: QueryJob) -> None:
        """Run one query on the backend (opening it if needed), streaming its events."""
        if self.backend is not None and not self.backend.alive:
            # Its process ended while the session was idle: start a new one, which
            # resumes the conversation.
            await self._close_backend()
        if self.backend is not None and self._trust_changed():
            # The folder was trusted (or no longer is) since the backend started: a new
            # one loads its settings (or drops them) and resumes the conversation.
            log.info("session %s: the folder's trust changed; reconnecting", self.session_id)
            self.notice = None  # what an untrusted start left out is no longer news
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
        turn = self.backend.query(job.prompt, job.transcript, job.take, job.attachments)
        async for event in turn:
            if isinstance(event, ev.Done):
                await self._finish_changes(job, succeeded=True)
                job.succeed(event)
                self._remember(job, event)
                return
            job.take(event)
        raise ev.BackendError("the model client ended the turn without a result")

    async def _finish_changes(self, job: QueryJob, *, succeeded: bool) -> None:
        """Keep the turn's file changes and put them on the job. Turns are numbered in
        the session's order; one that failed after changing files counts too, so its
        changes are not overwritten by the next turn's."""
        change_set = await self.review.finish_turn(self.record.turns + 1)
        if change_set is None:
            return
        job.changes = change_set.summary_json()
        if not succeeded:
            self.record.turns += 1
            self._store.save(self.record)

    # -- the backend's tool hooks (backends.base.ToolObserver) ---------------------

    async def before_tool(
        self, tool_use_id: str, tool_name: str, tool_input: dict[str, Any]
    ) -> None:
        await self.review.before_tool(tool_name, tool_input)

    async def after_tool(self, tool_use_id: str, tool_name: str) -> str | None:
        return await self.review.after_tool(tool_use_id)

    def _remember(self, job: QueryJob, done: ev.Done) -> None:
        """Keep what a restart needs to resume this conversation."""
        record = self.record
        record.turns += 1
        record.cost_usd += done.cost_usd
        record.last_active_at = now_iso()
        if done.backend_session_id:
            record.backend_session_id = done.backend_session_id
            # A backend opened after an eviction resumes this conversation.
            self.config = attrs.evolve(self.config, resume=done.backend_session_id)
        if not record.title:
            typed = (job.typed if job.typed is not None else job.prompt).strip()
            record.title = typed.splitlines()[0][:80] if typed else ""
        self._store.save(record)
        if self.on_first_answer is not None:
            callback, self.on_first_answer = self.on_first_answer, None
            callback()

    def _fail_waiting(self, exc: ev.BackendError) -> None:
        """A connect failure fails every query waiting on the session, as the protocol says."""
        kept: list[QueryJob | Command | Shutdown] = []
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

    async def _ask(
        self,
        tool_use_id: str,
        tool_name: str,
        tool_input: dict[str, Any],
        suggestions: list[Suggestion],
        parent_tool_use_id: str | None = None,
    ) -> PermissionAnswer:
        """The backend's permission callback: the policy decides, for the running turn."""
        job = self.current
        if job is None or job.cancel_requested or self.closing:
            return PermissionAnswer(
                allow=False, reason="The request was cancelled.", interrupt=True
            )
        job.produced = True  # the model asked for a tool: this turn is under way
        request = ToolRequest(tool_use_id, tool_name, tool_input, suggestions, parent_tool_use_id)
        decision = await self._policy.decide(
            self.session_id,
            self.config.cwd,
            self.record.rules,
            request,
            job.sink,
            self.config.files,
            mode=self.config.permission_mode,
            env=self.config.env,
            editor=self.config.editor,
            trusted=self.config.trusted,
        )
        added = decision.new_rule
        if added is not None and all(r.rule != added.rule for r in self.record.rules):
            self.record.rules.append(added)
            self._store.save(self.record)
        if decision.edit is not None:
            self.review.accept_edit(tool_use_id, decision.edit)
        if tool_name == "ExitPlanMode" and decision.answer.allow:
            # The CLI leaves plan mode on an approval (for `default` without a mode):
            # remember where it goes, as dave/setPermissionMode would.
            mode = decision.answer.set_mode or "default"
            self.config = attrs.evolve(self.config, permission_mode=mode)
            self.record.permission_mode = mode
            self._store.save(self.record)
        return decision.answer

    # -- from other tasks --------------------------------------------------------------

    async def cancel(self, job: QueryJob, reason: str = "") -> None:
        """End `job` as cancelled: drop it if it waits, interrupt it if it runs."""
        job.cancel_requested = True
        if job.state == "queued":
            job.fail(ev.TurnCancelled(reason or "query cancelled before it started"))
            return
        if job.state != "running":
            return
        self._policy.broker.deny_session(self.session_id, "The user cancelled the request.")
        if self.backend is not None:
            await self.backend.interrupt()
        if await _finishes(job, SHUTDOWN_TIMEOUT):
            return
        # The backend did not wind down: end the turn here; the actor abandons it and
        # starts a fresh backend for the next query rather than wait on a stuck one.
        log.warning("session %s: backend did not stop; restarting it", self.session_id)
        job.fail(ev.TurnCancelled(reason or "query cancelled"))
        if job is self.current and self._turn_task is not None:
            self._turn_task.cancel()
        await _finishes(job, SHUTDOWN_TIMEOUT)

    async def shutdown(self) -> None:
        """Cancel everything, close the backend; the backend's process is gone on return."""
        self.closing = True
        self._policy.broker.deny_session(self.session_id, "The session was deleted.")
        while not self._queue.empty():
            match self._queue.get_nowait():
                case QueryJob() as job:
                    job.fail(ev.TurnCancelled("the session was deleted"))
                    job.close()
                case Shutdown():
                    pass
                case command if not command.done.done():
                    command.done.set_result(None)
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


def _future() -> asyncio.Future[None]:
    return asyncio.get_running_loop().create_future()


async def _finishes(job: QueryJob, seconds: float) -> bool:
    """Whether the job finishes within `seconds` (the wait does not cancel it)."""
    try:
        await asyncio.wait_for(asyncio.shield(job.finished), seconds)
    except TimeoutError:
        return False
    return True


async def _close_quietly(backend: BackendSession) -> None:
    try:
        await backend.close()
    except Exception:
        log.exception("closing a backend failed")


class SessionManager:
    """Every session of the server, by `sessionId`; capacity is the pool's."""

    def __init__(
        self,
        options: InitOptions,
        policy: PermissionPolicy,
        default_cwd: str,
        store: SessionStore,
        editor: EditorTools | None = None,
    ) -> None:
        self.options = options
        self.editor = editor
        self.policy = policy
        self.default_cwd = default_cwd
        self.store = store
        # Each turn's file changes, beside the session records (`stateDir/changes`).
        self.changes = ChangeStore(store.root.parent / "changes")
        # The folders whose project settings load (`stateDir/trust.json` and the options').
        self.trust = TrustStore(store.root.parent, options.trusted_folders)
        self.sessions: dict[str, SessionActor] = {}
        default = registry.BACKENDS[options.backend]
        self.pool: ProcessPool[SessionActor] = ProcessPool(
            max_live=options.max_live_sessions,
            prewarm=options.prewarm,
            live=lambda: list(self.sessions.values()),
            make_spare=self._new_spare if default.holds_process else None,
        )

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
        mcp_servers: dict[str, Any] | None = None,
    ) -> SessionConfig:
        options = self.options
        folder = self._folder(cwd)
        name = backend or options.backend
        return SessionConfig(
            session_id=session_id,
            backend=name,
            cwd=folder,
            model=model or options.model,
            permission_mode=permission_mode or options.permission_mode,
            env=dict(options.env),
            backend_options=options.backend_options.get(name),
            request_timeout_seconds=options.request_timeout_seconds,
            editor=self.editor,
            resume=resume,
            mcp_servers=dict(mcp_servers or {}),
            trusted=self.trust.is_trusted(folder),
        )

    def _folder(self, cwd: str | None) -> str:
        return os.path.abspath(os.path.expanduser(cwd or self.options.cwd or self.default_cwd))

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

    def _actor(self, config: SessionConfig, record: SessionRecord) -> SessionActor:
        return SessionActor(
            config,
            record,
            store=self.store,
            changes=self.changes,
            policy=self.policy,
            max_queued=self.options.max_queued_queries,
            make_room=self._make_room,
            is_trusted=self.trust.is_trusted,
        )

    async def _make_room(self, actor: SessionActor) -> None:
        """A process slot for a session's backend (spares and process-less backends
        take none from the sessions)."""
        spec = registry.BACKENDS.get(actor.config.backend)
        if spec is not None and spec.holds_process and actor.session_id in self.sessions:
            await self.pool.make_room(actor)

    def _new_spare(self) -> SessionActor:
        config = self.new_config(f"spare-{uuid.uuid4()}")
        spare = self._actor(config, self._record_for(config))
        spare.warm()
        return spare

    # -- finding and creating sessions ----------------------------------------------

    def get(self, session_id: str) -> SessionActor | None:
        """The live actor of a session, reviving one the store remembers."""
        actor = self.sessions.get(session_id)
        if actor is not None and not actor.closing:
            return actor
        record = self.store.load(session_id)
        if record is None or record.backend not in registry.BACKENDS:
            return None
        config = self.new_config(
            session_id,
            cwd=record.cwd,
            model=record.model,
            permission_mode=record.permission_mode,
            backend=record.backend,
            resume=record.backend_session_id or None,
        )
        actor = self._actor(config, record)
        self.sessions[session_id] = actor
        return actor

    def create(self, config: SessionConfig) -> SessionActor:
        """A new session; it adopts a warm spare when one fits."""
        record = self._record_for(config)

        def fits(spare: SessionActor) -> bool:
            have = spare.config
            # A spare was connected without the client's MCP servers or file tools
            # (ACP's session/new).
            # Nor with another trust than the folder's now (the pool replaces spares
            # made before a change, so a trusted folder still gets a warm one).
            return (
                config.resume is None
                and not config.mcp_servers
                and config.files is None
                and (
                    have.backend,
                    have.cwd,
                    have.model,
                    have.permission_mode,
                    have.trusted,
                )
                == (
                    config.backend,
                    config.cwd,
                    config.model,
                    config.permission_mode,
                    config.trusted,
                )
            )

        spare = self.pool.take_spare(fits)
        if spare is not None:
            spare.adopt(config, record)
            spare.on_first_answer = self.pool.ensure_spares
            actor = spare
        else:
            actor = self._actor(config, record)
        self.sessions[config.session_id] = actor
        if spare is not None:
            # The spare's process now counts as a session's: keep within the limit.
            self.pool.make_room_later(actor)
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
        sink: EventSink,
        cwd: str | None = None,
        model: str | None = None,
        context: QueryContext | None = None,
        attachments: Sequence[AttachmentParam] = (),
    ) -> QueryJob:
        """Queue a query; ParamsError for a context or images the session cannot use.
        A slash command goes as typed: no context is put before it."""
        checked = editor_context.images(attachments)
        if prompt.startswith("/"):
            context = None
        actor = self.get(session_id)
        # Checked before a new session is made: a bad mention leaves nothing behind.
        editor_context.check(context, actor.config.cwd if actor else self._folder(cwd))
        if actor is None:
            actor = self.create(self.new_config(session_id, cwd=cwd, model=model))
        sent = editor_context.render(context, prompt, actor.config.cwd)
        job = QueryJob.create(session_id, sent, transcript, sink)
        job.attachments = checked
        if sent is not prompt:
            job.typed = prompt
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
        mcp_servers: dict[str, Any] | None = None,
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
            mcp_servers=mcp_servers,
        )
        actor = self.create(config)
        actor.warm()  # connect now, so the first query does not wait for it
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
        await asyncio.to_thread(self.changes.delete_session, session_id)
        if actor is not None:
            await actor.shutdown()
            self.pool.ensure_spares()  # its slot is free again
        return known

    async def configure(
        self, session_id: str, *, permission_mode: str | None = None, model: str | None = None
    ) -> bool:
        actor = self.get(session_id)
        if actor is None:
            return False
        await actor.configure(permission_mode=permission_mode, model=model)
        return True

    async def list_commands(self, session_id: str | None) -> list[dict[str, str]]:
        """The slash commands of the session's backend or, without a known session, of a
        live client of the default backend (a warm spare first); with none live, a
        client started for the question and closed after it."""
        actor = self.get(session_id) if session_id else None
        if actor is None:
            live = [*self.pool.spares, *self.sessions.values()]
            backend = self.options.backend
            actor = next((a for a in live if a.backend and a.config.backend == backend), None)
        temporary = None
        if actor is None:
            config = self.new_config(f"commands-{uuid.uuid4()}")
            actor = temporary = self._actor(config, self._record_for(config))
        try:
            if actor.backend is None:
                await actor.warm()
            return await actor.backend.commands() if actor.backend is not None else []
        finally:
            if temporary is not None:
                await temporary.shutdown()

    # -- folder trust ----------------------------------------------------------------

    async def set_trust(self, path: str, trusted: bool) -> tuple[str, bool]:
        """Remember (or take back) the trust of a folder; its normalized path and whether
        it is trusted now (one of `trustedFolders` stays so). TrustError for a bad path.
        Spares made with the other trust are replaced; live sessions change at their
        next turn (SessionActor._turn)."""
        where = await asyncio.to_thread(self.trust.remember, path, trusted)
        self.pool.replace_spares(
            lambda spare: spare.config.trusted != self.trust.is_trusted(spare.config.cwd)
        )
        return where, self.trust.is_trusted(where)

    async def folder_trust(self, path: str) -> tuple[FolderCheck, bool]:
        """What `path`'s settings would run, and whether it is trusted; TrustError for a
        path that is not a folder's."""
        found = await asyncio.to_thread(check_folder, path)
        return found, self.trust.is_trusted(found.path)

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

    async def changes_of(self, session_id: str, turn: int | None) -> ChangeSet | None:
        """A turn's changes (default: the last turn that changed files); ParamsError
        for an unknown session or a turn with none kept."""
        self._known(session_id)
        change_set = await asyncio.to_thread(self.changes.load, session_id, turn)
        if change_set is None and turn is not None:
            kept = await asyncio.to_thread(self.changes.turns, session_id)
            raise ParamsError(
                f"session {session_id} has no changes kept for turn {turn}"
                + (f"; turns with changes: {', '.join(map(str, kept))}" if kept else "")
            )
        return change_set

    async def revert(
        self,
        session_id: str,
        turn: int | None,
        paths: list[str] | None,
        hunks: list[HunkRef] | None,
    ) -> RevertResult:
        """Restore what a turn changed (never over a file changed since)."""
        change_set = await self.changes_of(session_id, turn)
        if change_set is None:
            return RevertResult((), ())
        return await asyncio.to_thread(revert, change_set, paths, hunks)

    async def history(self, session_id: str) -> conversation.History:
        """The session's conversation, from its backend's own record; ParamsError for an
        unknown session. A remembered session is read, not revived: nothing starts."""
        actor = self.sessions.get(session_id)
        live = actor if actor is not None and not actor.closing else None
        record = live.record if live is not None else self.store.load(session_id)
        if record is None:
            raise ParamsError(f"no session {session_id}")
        backend = live.backend if live is not None else None
        # Copied here, on the loop: the actor's task may change it while the file is read.
        chat = list(backend.history) if isinstance(backend, conversation.ChatHistory) else None
        return await asyncio.to_thread(
            conversation.read,
            record.backend,
            record.backend_session_id,
            record.cwd,
            live.config.env if live is not None else self.options.env,
            record.turns,
            chat,
        )

    def _known(self, session_id: str) -> None:
        if self.get(session_id) is None:
            raise ParamsError(f"no session {session_id}")

    def list(self) -> list[SessionInfo]:
        infos: dict[str, SessionInfo] = {}
        for record in self.store.all():
            infos[record.session_id] = _info(record, "evicted")
        for actor in self.sessions.values():
            if not actor.closing:
                infos[actor.session_id] = _info(actor.record, actor.state)
        return sorted(infos.values(), key=lambda i: i.last_active_at, reverse=True)

    # -- background ------------------------------------------------------------------

    def start_background(self) -> None:
        """Start the idle reaper and the spares (after `initialized`)."""
        self.pool.start_reaper(self.options.idle_timeout_seconds)
        self.pool.background(self._preload_then_warm(), "preload")

    async def _preload_then_warm(self) -> None:
        # The backend's SDK takes a second or more to import: do it in a thread, off the
        # loop and after `initialize` was answered, so neither waits for it.
        module = registry.BACKENDS[self.options.backend].module
        try:
            await asyncio.to_thread(importlib.import_module, module)
        except ImportError:
            log.exception("could not import %s", module)
        self.pool.ensure_spares()

    async def close_all(self) -> None:
        actors = [*self.sessions.values(), *self.pool.close()]
        self.sessions.clear()
        await asyncio.gather(*(actor.shutdown() for actor in actors), return_exceptions=True)


def _info(record: SessionRecord, state: SessionState) -> SessionInfo:
    return SessionInfo(
        session_id=record.session_id,
        state=state,
        backend=record.backend,
        cwd=record.cwd,
        model=record.model,
        permission_mode=record.permission_mode,
        created_at=record.created_at,
        last_active_at=record.last_active_at,
        turns=record.turns,
        title=record.title,
        backend_session_id=record.backend_session_id,
        cost_usd=record.cost_usd,
    )
