"""Sessions: `SessionManager` maps `sessionId` to a `SessionActor` (actor.py); lifecycle
only: find, create, delete, configure, list, and what the front ends ask of the live
clients (slash commands, connecting ahead, staying within `maxLiveSessions`).

Both front ends build it with `build_manager` and call only its methods: the actors,
the pool and the settings are the session layer's own. What a session keeps (changes,
revert, history, rules) is `kept` (kept.py); capacity (spares, eviction, the idle
reaper) is the pool's (pool.py); the permission policy is permissions/policy.py's.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypedDict, Unpack

import attrs

from dave_lsp import events as ev
from dave_lsp import paths
from dave_lsp.backends import registry
from dave_lsp.backends.base import ChatMessage, SessionConfig
from dave_lsp.config import InitOptions
from dave_lsp.permissions.policy import PermissionBroker, PermissionPolicy
from dave_lsp.review.change_store import ChangeStore
from dave_lsp.review.review import Review
from dave_lsp.rpc import AttachmentParam, QueryContext
from dave_lsp.session import context as editor_context
from dave_lsp.session.actor import SessionActor
from dave_lsp.session.clients import Clients
from dave_lsp.session.kept import Kept
from dave_lsp.session.pool import ProcessPool
from dave_lsp.session.results import EventSink, SessionInfo
from dave_lsp.session.rewind import Rewinds
from dave_lsp.session.settings import info, record_for, settings_of
from dave_lsp.session.store import SessionRecord, SessionStore
from dave_lsp.session.turn import QueryJob
from dave_lsp.tools.editor import EditorTools, FileTools
from dave_lsp.trust import TrustStore

log = logging.getLogger(__name__)


class Requested(TypedDict, total=False):
    """What a new session is asked to start with (`new_config`'s keywords, each of them
    the server's default when not given): a front end's request, or a remembered
    session's record (settings.py's `settings_of`)."""

    cwd: str | None
    model: str | None
    permission_mode: str | None
    backend: str | None
    resume: str | None
    mcp_servers: dict[str, Any] | None
    additional_directories: Sequence[str]


def build_manager(
    options: InitOptions,
    broker: PermissionBroker,
    default_cwd: str,
    editor: EditorTools | None = None,
    refill_after: int = 1,
) -> SessionManager:
    """The one way both front ends make their manager: the options' state folder
    (`stateDir`, else the XDG default) and permission timeout, the front end's broker;
    spares refilled from the `refill_after`-th new session on (pool.py)."""
    state_dir = Path(options.state_dir).expanduser() if options.state_dir else None
    store = SessionStore(state_dir)
    # Backends find what they keep in the state folder from their env (paths.state_dir).
    env = {**options.env, paths.STATE_DIR_ENV: str(store.root.parent)}
    manager = SessionManager(
        attrs.evolve(options, env=env),
        PermissionPolicy(broker, options.permission_timeout_seconds),
        default_cwd,
        store,
        editor,
    )
    manager.pool.refill_after = refill_after
    return manager


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
        self.changes = ChangeStore(store.root.parent / "changes", options.checkpoints)
        # The folders whose project settings load (`stateDir/trust.json` and the options').
        self.trust = TrustStore(store.root.parent, options.trusted_folders)
        self.sessions: dict[str, SessionActor] = {}
        # ACP: the client's file tools for a spare, so its sessions adopt one.
        self.client_files: SpareFiles | None = None
        default = registry.BACKENDS[options.backend]
        self.pool: ProcessPool[SessionActor] = ProcessPool(
            max_live=options.max_live_sessions,
            prewarm=options.prewarm,
            live=lambda: list(self.sessions.values()),
            make_spare=(lambda: _new_spare(self)) if default.holds_process else None,
        )
        # What sessions keep, for the front ends to read back (kept.py).
        self.kept = Kept(
            find=self.get, live=self._live, store=store, changes=self.changes, env=options.env
        )
        # dave/rewind and dave/fork (rewind.py).
        self.rewinds = Rewinds(find=self.get, store=store, changes=self.changes)
        # What the front ends ask of the model clients (clients.py).
        self.clients = Clients(
            sessions=self.sessions,
            pool=self.pool,
            options=options,
            trust=self.trust,
            find=self.get,
            temporary=self._temporary,
        )

    # -- configuration ---------------------------------------------------------------

    def new_config(self, session_id: str, **asked: Unpack[Requested]) -> SessionConfig:
        """The config of a new session: what is `asked`, the server's options for the rest."""
        options = self.options
        folder = self._folder(asked.get("cwd"))
        name = asked.get("backend") or options.backend
        return SessionConfig(
            session_id=session_id,
            backend=name,
            cwd=folder,
            model=asked.get("model") or options.model,
            permission_mode=asked.get("permission_mode") or options.permission_mode,
            env=dict(options.env),
            backend_options=options.backend_options.get(name),
            request_timeout_seconds=options.request_timeout_seconds,
            editor=self.editor,
            resume=asked.get("resume"),
            # initializationOptions' servers, the client's (ACP) over them.
            mcp_servers={**options.mcp_servers, **(asked.get("mcp_servers") or {})},
            trusted=self.trust.is_trusted(folder),
            additional_directories=tuple(asked.get("additional_directories", ())),
        )

    def _folder(self, cwd: str | None) -> str:
        return os.path.abspath(os.path.expanduser(cwd or self.options.cwd or self.default_cwd))

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

    def _temporary(self) -> SessionActor:
        config = self.new_config(f"commands-{uuid.uuid4()}")
        return self._actor(config, record_for(config))

    # -- finding and creating sessions ----------------------------------------------

    def get(self, session_id: str) -> SessionActor | None:
        """The live actor of a session, reviving one the store remembers."""
        actor = self.sessions.get(session_id)
        if actor is not None and not actor.closing:
            return actor
        record = self.store.load(session_id)
        if record is None or record.backend not in registry.BACKENDS:
            return None
        config = self.new_config(session_id, **settings_of(record))
        actor = self._actor(config, record)
        self.sessions[session_id] = actor
        return actor

    def create(self, config: SessionConfig) -> SessionActor:
        """A new session; it adopts a warm spare when one fits."""
        spare = self.pool.take_spare(lambda spare: _fits(spare.config, config))
        config = _with_files_of(spare, config)
        record = record_for(config)
        refill = self.pool.session_made(spare)
        if spare is not None:
            spare.adopt(config, record)
            spare.on_first_answer = refill
            actor = spare
        else:
            actor = self._actor(config, record)
        self.sessions[config.session_id] = actor
        if spare is not None:
            # The spare's process now counts as a session's: keep within the limit.
            self.pool.make_room_later(actor)
        self.store.save(record)
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

    def new_session(self, session_id: str | None, **asked: Unpack[Requested]) -> str:
        """`dave/newSession`: a session made and connected now; its sessionId.
        ValueError for one that exists."""
        session_id = session_id or str(uuid.uuid4())
        if self.get(session_id) is not None:
            raise ValueError(f"session {session_id} already exists; query it, or delete it first")
        actor = self.create(self.new_config(session_id, **asked))
        actor.warm()  # connect now, so the first query does not wait for it
        return session_id

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

    # -- what a front end asks of a session ------------------------------------------

    def find(self, session_id: str) -> SessionConfig | None:
        """A session's settings as its backend gets them, reviving one the store
        remembers; None for an unknown session."""
        actor = self.get(session_id)
        return None if actor is None else actor.config

    def _live(self, session_id: str) -> SessionActor | None:
        actor = self.sessions.get(session_id)
        return actor if actor is not None and not actor.closing else None

    def live_record(self, session_id: str) -> SessionRecord | None:
        """A live session's record (title, turns); None when it is not live. Reviving none."""
        actor = self._live(session_id)
        return None if actor is None else actor.record

    def is_live(self, session_id: str) -> bool:
        """Whether the session has an actor now (connected or not); reviving none."""
        return session_id in self.sessions

    def attach_client(
        self,
        session_id: str,
        *,
        files: FileTools | None,
        mcp_servers: dict[str, Any] | None = None,
    ) -> None:
        """The client's file tools (and MCP servers, unless None) for a session whose
        model client is not connected yet: it starts with them (ACP)."""
        actor = self.sessions.get(session_id)
        if actor is not None:
            if mcp_servers is not None:  # over initializationOptions' servers
                mcp_servers = {**self.options.mcp_servers, **mcp_servers}
            actor.settings.attach_client(files=files, mcp_servers=mcp_servers)

    def review_of(self, session_id: str) -> Review | None:
        """The review of a live session's running turn (what a file held before it)."""
        actor = self.sessions.get(session_id)
        return None if actor is None else actor.review

    def cost_usd(self, session_id: str) -> float:
        """What the session's turns cost so far, in US dollars."""
        actor = self.sessions.get(session_id)
        record = actor.record if actor is not None else self.store.load(session_id)
        return record.cost_usd if record is not None else 0.0

    def list(self) -> list[SessionInfo]:
        infos: dict[str, SessionInfo] = {}
        for record in self.store.all():
            infos[record.session_id] = info(record, "evicted")
        for actor in self.sessions.values():
            if not actor.closing:
                infos[actor.session_id] = info(actor.record, actor.state)
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


def _new_spare(manager: SessionManager) -> SessionActor:
    """A spare of the default backend, connecting now; with the client's file tools
    when it offers them (`client_files`), so its sessions fit."""
    config = manager.new_config(f"spare-{uuid.uuid4()}")
    if manager.client_files is not None:
        files = manager.client_files(config, lambda: spare.session_id)
        config = attrs.evolve(config, files=files)
    spare = manager._actor(config, record_for(config))
    spare.warm()
    return spare


# A spare's file tools from the client (ACP): its config, and its sessionId as it is when
# they are used (the id it is adopted under).
SpareFiles = Callable[[SessionConfig, Callable[[], str]], FileTools | None]


def _with_files_of(spare: SessionActor | None, config: SessionConfig) -> SessionConfig:
    """`config` adopting `spare`: the spare's CLI runs its own file tools (the same
    client's: `_fits`), so they serve the session now."""
    if spare is None or config.files is None:
        return config
    return attrs.evolve(config, files=spare.config.files)


def _fits(have: SessionConfig, config: SessionConfig) -> bool:
    """Whether a spare made with `have` can become the session `config` describes."""
    # A spare was connected with initializationOptions' MCP servers only (not the
    # client's: ACP's session/new), and with the client's file tools or without
    # (`client_files`): a session needs the same. Nor with another trust than the
    # folder's now (the pool replaces spares made before a change, so a trusted folder
    # still gets a warm one).
    return (
        config.resume is None
        and config.mcp_servers == have.mcp_servers
        and (config.files is None) == (have.files is None)
        and (have.backend, have.folders, have.model, have.permission_mode, have.trusted)
        == (config.backend, config.folders, config.model, config.permission_mode, config.trusted)
    )


def set_folders(manager: SessionManager, session_id: str, folders: tuple[str, ...]) -> bool:
    """A live session's additional directories, changed (ACP's session/load, resume);
    whether they changed. A backend started with the old ones (the CLI's `add_dirs`)
    keeps them until it restarts: the caller evicts it."""
    actor = manager.sessions.get(session_id)
    if actor is None or not actor.settings.set_folders(folders):
        return False
    actor.review.folders = actor.config.folders  # the next turn's checkpoint takes them
    if actor.backend is not None:
        # Queued after a running turn; the next one starts the backend again (resuming
        # the conversation) with these folders.
        actor.evict()
    return True
