"""The ACP agent's handlers, each a thin layer over the one `SessionManager`.

An ACP session is a dave-lsp session: `session/new` is `new_session`, a prompt is
`submit` with a `TurnUpdates` sink, `session/cancel` is `cancel`, modes and models are
`configure` (config_options.py), and the session records, rules, pool and idle reaper
are LSP mode's. The ACP `sessionId` is the dave `sessionId` (a UUID), which
`session/load` finds in the store after a restart. The agent calls only the manager's
methods (and its `clients` and `kept`); a prompt's wait and cancel are running.py's,
the folder-trust question trust_question.py's, and reading a prompt's blocks and the
MCP servers content.py's.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import attrs

from dave_lsp import __version__
from dave_lsp import events as ev
from dave_lsp.acp import history, schema
from dave_lsp.acp import outgoing as out
from dave_lsp.acp.config_options import SessionConfigs
from dave_lsp.acp.content import additional_directories, mcp_servers, prompt_content
from dave_lsp.acp.files import ClientFiles, client_tools
from dave_lsp.acp.questions import offers_forms
from dave_lsp.acp.running import CANCELLED, RunningPrompts
from dave_lsp.acp.schema import acp
from dave_lsp.acp.session_list import session_list
from dave_lsp.acp.transport import Connection, RpcError
from dave_lsp.acp.trust_question import TrustQuestions
from dave_lsp.acp.updates import UPDATE, SessionTitles, TurnUpdates
from dave_lsp.backends.base import SessionConfig
from dave_lsp.config import InitOptions
from dave_lsp.permissions.policy import PermissionBroker
from dave_lsp.rpc import INTERNAL_ERROR, RESOURCE_NOT_FOUND, ParamsError
from dave_lsp.session.manager import build_manager, set_folders
from dave_lsp.session.rewind import first_turns
from dave_lsp.tools.editor import FileTools

log = logging.getLogger(__name__)


class Agent:
    """Every ACP handler of one connection."""

    def __init__(self, conn: Connection, options: InitOptions) -> None:
        self.conn = conn
        self.options = options
        self.broker = PermissionBroker()
        # Spares fit this client: made with its file tools (as `initialize` announced
        # them), and held back until its second session (docs/acp.md: Spares).
        cwd = options.cwd or os.getcwd()
        self.manager = build_manager(options, self.broker, cwd, refill_after=2)
        self.manager.client_files = self._files
        self.prompts = RunningPrompts(self.manager, conn)
        self.configs = SessionConfigs(conn, self.manager)
        self.client_capabilities: acp.ClientCapabilities | None = None
        self._initialized = False
        self._background: set[asyncio.Task[None]] = set()
        self._announced: set[str] = set()  # sessions whose slash commands were sent
        self._titles = SessionTitles(conn)
        self._trust = TrustQuestions(conn, self.manager.clients, options.permission_timeout_seconds)
        for method, handler in {
            "initialize": self.initialize,
            "authenticate": self.authenticate,
            "session/new": self.new_session,
            "session/load": self.load_session,
            "session/resume": self.resume_session,
            "session/list": self.list_sessions,
            "session/prompt": self.prompt,
            "session/set_mode": self.configs.set_mode,
            "session/set_config_option": self.configs.set_config_option,
            "session/close": self.close_session,
            "session/delete": self.delete_session,
        }.items():
            conn.on_request(method, handler)
        conn.on_notification("session/cancel", self.cancel)

    # -- lifecycle -------------------------------------------------------------------

    async def initialize(self, params: Any) -> Any:
        request = schema.parse("initialize", params, acp.InitializeRequest)
        self.client_capabilities = request.client_capabilities
        if not self._initialized:
            self._initialized = True
            self.manager.start_background()
        return out.InitializeResponse(
            # ACP has one version so far; a client asking for a later one gets ours.
            schema.PROTOCOL_VERSION,
            out.AgentCapabilities(
                load_session=True,
                prompt_capabilities=out.PromptCapabilities(
                    image=True, audio=False, embedded_context=True
                ),
                mcp_capabilities=out.McpCapabilities(http=True, sse=True),
                session_capabilities=schema.SESSION_CAPABILITIES,
            ),
            out.Implementation("dave-lsp", "dave-lsp", __version__),
            schema.AUTH_METHODS,
        )

    async def authenticate(self, params: Any) -> Any:
        request = schema.parse("authenticate", params, acp.AuthenticateRequest)
        schema.authenticate(request.method_id, {**os.environ, **self.options.env})
        return out.Empty()

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
        await self.manager.close_all()

    # -- sessions --------------------------------------------------------------------

    async def new_session(self, params: Any) -> Any:
        request = schema.parse("session/new", params, acp.NewSessionRequest)
        cwd = _absolute("session/new", request.cwd)
        extra = additional_directories("session/new", request.additional_directories)
        config = self._with_files(
            self.manager.new_config(
                str(uuid.uuid4()),
                cwd=cwd,
                mcp_servers=mcp_servers(request.mcp_servers),
                additional_directories=extra,
            )
        )
        # Adopts a warm spare when one fits (made with this client's file tools).
        self.manager.create(config)
        self._start(config.session_id)
        return schema.new_session(config.session_id, config.permission_mode, config.model)

    async def load_session(self, params: Any) -> Any:
        request = schema.parse("session/load", params, acp.LoadSessionRequest)
        config = self._revive(
            "session/load",
            request.session_id,
            request.cwd,
            request.mcp_servers,
            request.additional_directories,
        )
        # The conversation to resume, as the session's record keeps it (settings.py).
        conversation_id = config.resume or ""
        conversation = await asyncio.to_thread(
            history.conversation, config.backend, conversation_id, config.env
        )
        conversation = first_turns(conversation, config.resume_turns)  # rewound, forked
        # The spec: every update of the replay comes before the response.
        for body in history.replay(conversation, config.cwd):
            self.conn.notify(UPDATE, schema.update(config.session_id, body))
        self._start(config.session_id)
        return self._setup(config)

    async def resume_session(self, params: Any) -> Any:
        request = schema.parse("session/resume", params, acp.ResumeSessionRequest)
        config = self._revive(
            "session/resume",
            request.session_id,
            request.cwd,
            request.mcp_servers or [],
            request.additional_directories,
        )
        self._start(config.session_id)
        return self._setup(config)

    def _revive(
        self,
        method: str,
        session_id: str,
        cwd: str,
        servers: Sequence[Any],
        folders: Sequence[str] | None,
    ) -> SessionConfig:
        """The session to load: one the store remembers (with the request's additional
        directories, else those it has), else a Claude Code conversation of that id (a
        session the CLI or another agent made), adopted as a new session."""
        folder = _absolute(method, cwd)
        extra = additional_directories(method, folders)
        mcp = mcp_servers(servers)
        config = self.manager.find(session_id)
        if config is None:
            env = dict(self.options.env)
            if not history.kept(self.options.backend, session_id, env):
                raise RpcError(RESOURCE_NOT_FOUND, f"{method}: no session {session_id}")
            config = self._with_files(
                self.manager.new_config(
                    session_id,
                    cwd=folder,
                    resume=session_id,
                    mcp_servers=mcp,
                    additional_directories=extra,
                )
            )
            self.manager.create(config)
            return config
        # Omitted: the folders it has (clients before the field); else the complete list.
        if folders is not None and set_folders(self.manager, session_id, extra):
            config = self.manager.find(session_id) or config
        if not self.manager.clients.connected(session_id):
            # Not connected yet: its client starts with what this client gives now.
            self.manager.attach_client(
                session_id, files=self._files(config), mcp_servers=mcp or config.mcp_servers
            )
            config = self.manager.find(session_id) or config
        return config

    def _files(
        self, config: SessionConfig, session_id: Callable[[], str] | None = None
    ) -> FileTools | None:
        """The client's file system and terminals as the model's tools (acp/files.py:
        `client_tools`). `session_id`: a spare's, as it is when they are used."""
        return client_tools(self.conn, self.client_capabilities, config, session_id)

    def _with_files(self, config: SessionConfig) -> SessionConfig:
        """A new session's config with the client's file tools (`_files`)."""
        return attrs.evolve(config, files=self._files(config))

    def _setup(self, config: SessionConfig) -> out.SessionSetup:
        return schema.session_setup(config.permission_mode, config.model)

    async def list_sessions(self, params: Any) -> Any:
        request = schema.parse("session/list", params, acp.ListSessionsRequest)
        return session_list(self.manager, request.cwd)

    async def close_session(self, params: Any) -> Any:
        request = schema.parse("session/close", params, acp.CloseSessionRequest)
        if not self.manager.is_live(request.session_id):
            return out.Empty()
        await self.prompts.cancel_all(request.session_id)
        # Its process ends; the record stays for session/load.
        await self.manager.clients.evict(request.session_id)
        return out.Empty()

    async def delete_session(self, params: Any) -> Any:
        request = schema.parse("session/delete", params, acp.DeleteSessionRequest)
        await self.manager.delete(request.session_id)
        return out.Empty()

    def _start(self, session_id: str) -> None:
        """Connect the session's client ahead of its first prompt when a process slot is
        free (session/clients.py: warm_ahead), then announce its slash commands. In the
        background: the answer to session/new must not wait for a process to start.
        Without a free slot the first prompt connects it, and the commands follow that
        prompt."""
        warming = self.manager.clients.warm_ahead(session_id)
        if warming is None:
            return

        async def warm_then_announce() -> None:
            try:
                await warming
            except ev.BackendError as exc:
                log.info("session %s did not connect ahead: %s", session_id, exc)
                return
            await self._announce_commands(session_id)

        self._background_task(warm_then_announce(), "acp warm-up")

    async def _announce_commands(self, session_id: str) -> None:
        """Send the CLI's slash commands (its client is live: this never starts one)."""
        if session_id in self._announced or not self.manager.clients.connected(session_id):
            return
        self._announced.add(session_id)
        try:
            commands = await self.manager.clients.commands(session_id)
        except ev.BackendError as exc:
            log.info("no slash commands for %s: %s", session_id, exc)
            return
        body = schema.commands_update(commands)
        self.conn.notify(UPDATE, schema.update(session_id, body))

    def _background_task(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- prompts ---------------------------------------------------------------------

    async def prompt(self, params: Any) -> Any:
        request = schema.parse("session/prompt", params, acp.PromptRequest)
        session_id = request.session_id
        config = self.manager.find(session_id)
        review = self.manager.review_of(session_id)
        if config is None or review is None:
            raise RpcError(RESOURCE_NOT_FOUND, f"session/prompt: no session {session_id}")
        text, images = prompt_content(request.prompt)
        if not await self.prompts.before_turn(self._trust.ask(config)):
            return CANCELLED
        if not self.manager.clients.connected(session_id) and config.files is None:
            # Revived from the store without session/load: its client starts with
            # this client's file system too.
            self.manager.attach_client(session_id, files=self._files(config))
            config = self.manager.find(session_id) or config
        files = config.files
        sink = TurnUpdates(
            self.conn,
            session_id,
            config.cwd,
            self.broker,
            before_turn=review.before_text,
            written=files.written if isinstance(files, ClientFiles) else None,
        )
        sink.forms = offers_forms(self.client_capabilities)
        sink.terminals = files.terminals if isinstance(files, ClientFiles) else None
        sink.mode_changed = lambda mode: self.configs.announce(session_id, mode)
        try:
            job = self.manager.submit(session_id, text, [], sink, attachments=images)
        except ParamsError as exc:
            raise ParamsError(f"session/prompt: {exc}") from None
        except ev.BackendError as exc:
            raise RpcError(INTERNAL_ERROR, f"session/prompt: {exc}") from None
        try:
            return await self.prompts.run(job, sink)
        finally:
            sink.close()
            self._after_turn(session_id)

    def _after_turn(self, session_id: str) -> None:
        self._titles.send(session_id, self.manager.live_record(session_id))
        self.manager.clients.keep_within_limit(session_id)
        if session_id not in self._announced:
            self._background_task(self._announce_commands(session_id), "acp commands")

    async def cancel(self, params: Any) -> None:
        try:
            request = schema.parse("session/cancel", params, acp.CancelNotification)
        except ParamsError as exc:
            log.warning("%s", exc)
            return
        # Not awaited: the reader must go on reading (the permission answers, say).
        self._background_task(self.prompts.cancel_all(request.session_id), "acp cancel")


def _absolute(method: str, cwd: str) -> str:
    if not os.path.isabs(cwd):
        raise ParamsError(f"{method}: invalid params: cwd: must be an absolute path, got {cwd!r}")
    return os.path.normpath(cwd)
