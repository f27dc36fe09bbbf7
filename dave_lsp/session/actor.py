"""A session's actor: one asyncio task that alone owns one backend session.

It takes commands from its inbox (a query, `Warm`, `Evict`, `Configure`, shutdown), so
queries on one session run one at a time, in arrival order, and sessions run
concurrently. Other tasks only put commands in the inbox, answer permissions through
the broker, or call `cancel`. The actor is handed what it needs (its settings, the
change store, the permission policy, its queue limit, and a callback that frees a
process slot) and never reaches back into the manager (manager.py).

The running turn is a task of its own, so `cancel` can abandon a stuck turn without
touching the actor's task. A spare (pool.py) is a whole actor, because a Claude client
must be closed by the task that connected it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from dave_lsp import events as ev
from dave_lsp.backends import registry
from dave_lsp.backends.base import BackendSession, SessionConfig
from dave_lsp.permissions.policy import PermissionPolicy
from dave_lsp.review.change_store import ChangeStore
from dave_lsp.review.review import Review
from dave_lsp.session.hooks import BackendHooks
from dave_lsp.session.inbox import SHUTDOWN, Command, Configure, Evict, Inbox, Shutdown, Warm
from dave_lsp.session.pool import SHUTDOWN_TIMEOUT
from dave_lsp.session.settings import SessionState, Settings
from dave_lsp.session.store import SessionRecord, SessionStore
from dave_lsp.session.turn import QueryJob

log = logging.getLogger(__name__)


class SessionActor:
    """One session: a task, an inbox, and the backend session only it touches."""

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
        self._store = store
        self.settings = Settings(config, record, store)
        self._changes = changes
        self.review = Review(config.session_id, config.cwd, changes, config.folders)
        self._policy = policy
        self._make_room = make_room
        self._is_trusted = is_trusted
        self._inbox = Inbox(max_queued)
        self.hooks = BackendHooks(self, policy)
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
    def config(self) -> SessionConfig:
        return self.settings.config

    @property
    def record(self) -> SessionRecord:
        return self.settings.record

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
            and self._inbox.empty()
            and not self.closing
            and not self._policy.broker.pending_for(self.session_id)
        )

    def adopt(self, config: SessionConfig, record: SessionRecord) -> None:
        """Become the session `config` describes (a spare being put to use)."""
        self.settings = Settings(config, record, self._store)
        self.review = Review(config.session_id, config.cwd, self._changes, config.folders)
        self.task.set_name(f"session {self.session_id[:40]}")

    # -- commands ----------------------------------------------------------------------

    def submit(self, job: QueryJob) -> None:
        if self.closing:
            raise ev.BackendError(
                f"session {self.session_id} is being deleted; use a new sessionId"
            )
        self._inbox.put_query(job, self.session_id)
        self.last_active = time.monotonic()

    def warm(self) -> asyncio.Future[None]:
        return self._command(Warm(_future()))

    def evict(self) -> asyncio.Future[None]:
        return self._command(Evict(_future()))

    def configure(
        self, *, permission_mode: str | None = None, model: str | None = None
    ) -> asyncio.Future[None]:
        return self._command(Configure(_future(), permission_mode, model))

    def _command(self, command: Command) -> asyncio.Future[None]:
        self._inbox.put(command)
        return command.done

    # -- the actor's task --------------------------------------------------------------

    async def _run(self) -> None:
        try:
            while True:
                match await self._inbox.get():
                    case Shutdown():
                        break
                    case QueryJob() as job:
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
                case Evict(_, work) if work is None or await work():
                    if self.backend is not None:
                        log.info("session %s: evicted (its state is kept)", self.session_id)
                    await self._close_backend()
                case Configure(_, permission_mode, model):
                    self.settings.configure(permission_mode=permission_mode, model=model)
                    if self.backend is not None:
                        await self.backend.configure(permission_mode=permission_mode, model=model)
        except ev.BackendError as exc:
            if not command.done.done():
                command.done.set_exception(exc)
                command.done.exception()
        finally:
            if not command.done.done():
                command.done.set_result(None)

    def _trust_changed(self) -> bool:
        """Take the folder's trust as it is now (trust.py); whether it changed."""
        return self.settings.set_trusted(self._is_trusted(self.config.cwd))

    async def _ensure_backend(self, warm_up: bool = False) -> BackendSession:
        if self.backend is not None:
            return self.backend
        self._trust_changed()  # a backend starts with the folder's trust of this moment
        self.opening = True
        try:
            await self._make_room(self)
            spec = registry.BACKENDS[self.config.backend]
            backend = spec.factory(self.config, self.hooks.ask, self.hooks)
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
        self.review.start_turn(job.sink.emit)
        try:
            self._turn_task = asyncio.create_task(self._attempt(job), name="turn")
            await self._turn_task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # the actor itself is being cancelled
            # `cancel` abandoned a turn whose backend did not wind down (and failed the
            # job): the next query gets a fresh backend.
            await self.hooks.finish_changes(job, succeeded=False)
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
            await self.hooks.finish_changes(job, succeeded=False)
            job.fail(exc)
        except Exception as exc:  # a bug must not take the session down with it
            log.exception("session %s: query failed", self.session_id)
            await self.hooks.finish_changes(job, succeeded=False)
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
                self._inbox.fail_queries(exc)
                raise
        assert self.backend is not None
        if self.notice:
            job.sink.emit(ev.Status("working", self.notice))
            self.notice = None
        turn = self.backend.query(job.prompt, job.transcript, job.take, job.attachments)
        async for event in turn:
            if isinstance(event, ev.Done):
                await self.hooks.finish_changes(job, succeeded=True)
                job.succeed(event)
                self._remember(job, event)
                return
            job.take(event)
        raise ev.BackendError("the model client ended the turn without a result")

    def _remember(self, job: QueryJob, done: ev.Done) -> None:
        self.settings.remember_turn(done, job.typed if job.typed is not None else job.prompt)
        if self.on_first_answer is not None:
            callback, self.on_first_answer = self.on_first_answer, None
            callback()

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
        self._inbox.drop_all()
        if self.current is not None:
            await self.cancel(self.current, "the session was deleted")
        self._inbox.put(SHUTDOWN)
        try:
            await asyncio.wait_for(asyncio.shield(self.task), SHUTDOWN_TIMEOUT)
        except (TimeoutError, asyncio.CancelledError):
            self.task.cancel()
            await self._close_backend()

    async def _close_backend(self) -> None:
        backend, self.backend = self.backend, None
        if backend is not None:
            await _close_quietly(backend)


def exclusive(actor: SessionActor, work: Callable[[], Awaitable[bool]]) -> asyncio.Future[None]:
    """Run `work` on the actor's task between its queries (inbox.Evict's `work`): no
    turn runs meanwhile, a query sent after it waits for it, and when it returns True
    the backend is closed, so the next query starts one afresh."""
    return actor._command(Evict(_future(), work))


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
