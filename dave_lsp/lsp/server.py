"""The pygls server: thin handlers that structure params, call the session manager,
and turn its events and outcomes into `$/progress` reports, results and errors.

Every `dave/*` handler is registered through `dave_method`, which structures its
params, requires initialization and maps the errors it raises to error codes, in one
place (`rpc_error_for`). No backend logic lives here; see session/manager.py and backends/.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import threading
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcException
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol, lsp_method
from pygls.uris import to_fs_path

from dave_lsp import PROTOCOL_VERSION, __version__
from dave_lsp import events as ev
from dave_lsp.backends import registry
from dave_lsp.backends.base import ChatMessage
from dave_lsp.config import InitOptions, parse_options
from dave_lsp.logs import attach_client_log, redact, redact_values
from dave_lsp.lsp import outgoing
from dave_lsp.lsp import protocol as proto
from dave_lsp.lsp.progress import ProgressSink
from dave_lsp.permissions.policy import PermissionBroker, Reply, UnknownRequest
from dave_lsp.review.revert import HunkRef
from dave_lsp.session.manager import SessionManager, build_manager
from dave_lsp.session.turn import TurnFailure
from dave_lsp.tools import editor as editor_tools
from dave_lsp.tools.editor import EditorTools
from dave_lsp.trust import TrustError

log = logging.getLogger(__name__)


# Control characters and line breaks, escaped: an error message stays one line whatever
# the ids or texts it quotes hold.
_ONE_LINE = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, 0x85)} | {
    0x0A: "\\n",
    0x0D: "\\r",
    0x09: "\\t",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}


def rpc_error(code: int, message: str, data: Any = None) -> JsonRpcException:
    # Errors quote what backends print (a CLI's stderr, say): never with a secret in it.
    message = redact(message).translate(_ONE_LINE)
    return JsonRpcException(code=code, message=message, data=data)


class DaveProtocol(LanguageServerProtocol):
    """Adds `capabilities.experimental.dave`, which pygls has no option for."""

    @lsp_method(lsp.INITIALIZE)
    def lsp_initialize(self, params: lsp.InitializeParams) -> Any:
        result = yield from super().lsp_initialize(params)
        result.capabilities.experimental = {
            "dave": {
                "version": PROTOCOL_VERSION,
                "backends": registry.names(),
                "methods": proto.METHODS,
            }
        }
        return result

    def structure_message(self, data: dict[str, Any]) -> Any:
        try:
            return super().structure_message(data)
        except JsonRpcException as exc:
            # pygls logs a request whose params do not fit its LSP type and answers
            # nothing, so the client would wait forever: answer it.
            method, msg_id = data.get("method"), data.get("id")
            if isinstance(method, str) and msg_id is not None:
                detail = proto.describe_error(exc.__cause__) if exc.__cause__ else "invalid"
                error = rpc_error(proto.INVALID_PARAMS, f"{method}: invalid params: {detail}")
                self._send_response(msg_id, error=error.to_response_error())
            raise


class DaveServer(LanguageServer):
    """The server object handlers receive; holds the sessions once initialized."""

    def __init__(self) -> None:
        super().__init__(
            "dave-lsp",
            __version__,
            protocol_cls=DaveProtocol,
            converter_factory=proto.rpc_converter,
            text_document_sync_kind=lsp.TextDocumentSyncKind.None_,
        )
        self.options = InitOptions()
        self.broker = PermissionBroker()
        self._manager: SessionManager | None = None
        # Query tasks by work-done token, for window/workDoneProgress/cancel.
        self.token_tasks: dict[str | int, asyncio.Task[Any]] = {}
        # Ends the stdio loop that cli.py runs, when set.
        self.stop_event = threading.Event()

    @property
    def manager(self) -> SessionManager:
        if self._manager is None:
            raise rpc_error(
                proto.SERVER_NOT_INITIALIZED,
                "the server is not initialized; send initialize first",
            )
        return self._manager

    def setup(self, params: lsp.InitializeParams) -> None:
        if self._manager is not None:
            # LSP allows one initialize; a second would orphan the first's sessions.
            raise rpc_error(
                proto.INVALID_REQUEST,
                "the server is already initialized; restart it to change initializationOptions",
            )
        try:
            options, unknown = parse_options(params.initialization_options)
        except proto.ParamsError as exc:
            raise rpc_error(proto.INVALID_PARAMS, str(exc)) from None
        self.options = options
        redact_values(options.env)
        if unknown:
            log.warning("ignoring unknown initializationOptions: %s", ", ".join(unknown))
        folders = params.workspace_folders or []
        default_cwd = (
            options.cwd
            or (_uri_path(folders[0].uri) if folders else None)
            or (_uri_path(params.root_uri) if params.root_uri else None)
            or os.getcwd()
        )
        editor = self._editor_tools(params.capabilities)
        self._manager = build_manager(options, self.broker, default_cwd, editor)

    def _editor_tools(self, capabilities: lsp.ClientCapabilities) -> EditorTools | None:
        """The tools the client offers (`experimental.dave.editorTools`), or None."""
        experimental = capabilities.experimental
        dave = experimental.get("dave") if isinstance(experimental, dict) else None
        offered = dave.get("editorTools") if isinstance(dave, dict) else None
        if not isinstance(offered, list) or not offered:
            return None
        unknown = [o for o in offered if o not in editor_tools.CAPABILITIES]
        if unknown:
            log.warning("ignoring unknown editorTools: %s", ", ".join(map(str, unknown)))
        tools = EditorTools([o for o in offered if isinstance(o, str)], self._ask_client)
        return tools if tools.capabilities else None

    async def _ask_client(self, method: str, params: Any) -> Any:
        return await self.protocol.send_request_async(method, params)

    def start_background(self) -> None:
        if self._manager is not None:
            self._manager.start_background()

    def client_supports_progress(self) -> bool:
        window = self.client_capabilities.window
        return bool(window and window.work_done_progress)

    async def close_sessions(self) -> None:
        if self._manager is not None:
            await self._manager.close_all()


def _uri_path(uri: str) -> str | None:
    path: str | None = to_fs_path(uri)
    return path


server = DaveServer()


@server.feature(lsp.INITIALIZE)
def initialize(ls: DaveServer, params: lsp.InitializeParams) -> None:
    ls.setup(params)
    level = ls.options.log_level
    attach_client_log(ls, level)


@server.feature(lsp.INITIALIZED)
def initialized(ls: DaveServer, _: lsp.InitializedParams) -> None:
    ls.start_background()


@server.feature(lsp.SHUTDOWN)
async def shutdown(ls: DaveServer, *_: Any) -> None:
    await ls.close_sessions()


@server.feature(lsp.EXIT)
async def exit_(ls: DaveServer, *_: Any) -> None:
    # pygls calls sys.exit() right after this; end every backend process first.
    await ls.close_sessions()


@server.feature(lsp.WINDOW_WORK_DONE_PROGRESS_CANCEL)
def cancel_progress(ls: DaveServer, params: lsp.WorkDoneProgressCancelParams) -> None:
    task = ls.token_tasks.get(params.token)
    if task is not None:
        task.cancel()


async def _progress_sender(
    ls: DaveServer, token: str | int | None
) -> tuple[Callable[[dict[str, Any]], None] | None, str | int | None]:
    """A function that sends one `$/progress` value, or None when the client has no way
    to receive them (no token given and no window.workDoneProgress)."""
    if token is None:
        if not ls.client_supports_progress():
            return None, None
        token = f"dave-{uuid.uuid4()}"
        try:
            await ls.work_done_progress.create_async(token)
        except Exception as exc:
            log.warning("the client refused a progress token: %s", exc)
            return None, None

    def send(value: dict[str, Any]) -> None:
        ls.protocol.notify(lsp.PROGRESS, lsp.ProgressParams(token=token, value=value))

    return send, token


def rpc_error_for(exc: Exception, data: Any = None) -> JsonRpcException:
    """The protocol's error for what a handler raised (the one place codes are chosen)."""
    match exc:
        case JsonRpcException():
            return exc
        case proto.ParamsError():
            return rpc_error(proto.INVALID_PARAMS, str(exc))
        case ev.TurnCancelled():
            return rpc_error(proto.REQUEST_CANCELLED, str(exc), data)
        case ev.BackendError():
            return rpc_error(proto.REQUEST_FAILED, str(exc), data)
    raise exc


P = TypeVar("P")
Handler = Callable[[DaveServer, SessionManager, P], Any]


def dave_method(method: str, params_type: type[P]) -> Callable[[Handler[P]], Handler[P]]:
    """Register `handler(ls, manager, params)` for `method`: params structured as
    `params_type`, initialization required, errors mapped by `rpc_error_for`.

    A `ParamsError` gets the method's name put before its message here, and only here:
    the protocol module, the session layer and the handlers name no method."""

    def failed(exc: Exception) -> JsonRpcException:
        if isinstance(exc, proto.ParamsError):
            exc = proto.ParamsError(f"{method}: {exc}")
        return rpc_error_for(exc)

    def register(handler: Handler[P]) -> Handler[P]:
        if inspect.iscoroutinefunction(handler):

            async def run_async(ls: DaveServer, raw: Any) -> Any:
                manager = ls.manager  # raises if not initialized
                try:
                    return await handler(ls, manager, proto.structure(raw, params_type))
                except (proto.ParamsError, ev.BackendError, ev.TurnCancelled) as exc:
                    raise failed(exc) from None

            server.feature(method)(run_async)
        else:

            def run(ls: DaveServer, raw: Any) -> Any:
                manager = ls.manager  # raises if not initialized
                try:
                    return handler(ls, manager, proto.structure(raw, params_type))
                except (proto.ParamsError, ev.BackendError, ev.TurnCancelled) as exc:
                    raise failed(exc) from None

            server.feature(method)(run)
        return handler

    return register


@dave_method(proto.QUERY, proto.QueryParams)
async def query(ls: DaveServer, manager: SessionManager, params: proto.QueryParams) -> Any:
    send, token = await _progress_sender(ls, params.work_done_token)
    sink = ProgressSink(send, params.session_id)
    sink.begin()
    try:
        job = manager.submit(
            params.session_id,
            params.prompt,
            [ChatMessage(m.role, m.content) for m in params.messages],
            sink,
            cwd=params.cwd,
            model=params.model,
            context=params.context,
            attachments=params.attachments,
        )
    except proto.ParamsError:
        sink.end()
        raise
    except ev.BackendError as exc:
        sink.error(redact(str(exc)))
        sink.end()
        raise rpc_error_for(exc, proto.unstructure(TurnFailure(params.session_id))) from None
    task = asyncio.current_task()
    if token is not None and task is not None:
        ls.token_tasks[token] = task
    try:
        return proto.unstructure(await asyncio.shield(job.future))
    except asyncio.CancelledError:
        await manager.cancel(job)
        cancelled = ev.TurnCancelled("query cancelled; the session keeps its history")
        raise rpc_error_for(cancelled, proto.unstructure(job.failure())) from None
    except (ev.TurnCancelled, ev.BackendError) as exc:
        data = proto.unstructure(job.failure())
        if isinstance(exc, ev.BackendError):
            sink.error(redact(str(exc)))
            if exc.needs_env:
                data["needsEnv"] = exc.needs_env
        raise rpc_error_for(exc, data) from None
    finally:
        sink.end()
        if token is not None:
            ls.token_tasks.pop(token, None)


@dave_method(proto.PERMISSION, proto.PermissionParams)
def permission(ls: DaveServer, _: SessionManager, params: proto.PermissionParams) -> Any:
    reply = Reply(
        params.reason,
        params.updated_input,
        params.edited_content,
        proto.answers(params.answers),
        params.permission_mode,
    )
    try:
        ls.broker.answer(params.request_id, params.decision, reply)
    except UnknownRequest as exc:
        raise proto.ParamsError(str(exc)) from None
    return proto.unstructure(outgoing.Ok())


@dave_method(proto.DELETE_SESSION, proto.DeleteSessionParams)
async def delete_session(
    _: DaveServer, manager: SessionManager, params: proto.DeleteSessionParams
) -> Any:
    return proto.unstructure(outgoing.Deleted(await manager.delete(params.session_id)))


@dave_method(proto.NEW_SESSION, proto.NewSessionParams)
def new_session(_: DaveServer, manager: SessionManager, params: proto.NewSessionParams) -> Any:
    if params.session_id is not None:
        proto.check_session_id(params.session_id)
    if params.backend is not None:
        try:
            registry.check_name(params.backend)
        except ValueError as exc:
            raise proto.ParamsError(f"invalid params: backend: {exc}") from None
    try:
        session_id = manager.new_session(
            params.session_id,
            cwd=params.cwd,
            model=params.model,
            permission_mode=params.permission_mode,
            backend=params.backend,
            resume=params.resume,
        )
    except ValueError as exc:  # a session that exists (a ParamsError is one, too)
        raise proto.ParamsError(str(exc)) from None
    return proto.unstructure(outgoing.NewSessionResult(session_id))


@dave_method(proto.LIST_SESSIONS, proto.NoParams)
def list_sessions(_: DaveServer, manager: SessionManager, __: proto.NoParams) -> Any:
    return proto.unstructure(outgoing.SessionList(manager.list()))


@dave_method(proto.SET_PERMISSION_MODE, proto.SetPermissionModeParams)
async def set_permission_mode(
    _: DaveServer, manager: SessionManager, params: proto.SetPermissionModeParams
) -> Any:
    await _configure(
        manager, proto.SET_PERMISSION_MODE, params.session_id, permission_mode=params.mode
    )
    return proto.unstructure(outgoing.PermissionModeSet(params.session_id, params.mode))


@dave_method(proto.SET_MODEL, proto.SetModelParams)
async def set_model(_: DaveServer, manager: SessionManager, params: proto.SetModelParams) -> Any:
    await _configure(manager, proto.SET_MODEL, params.session_id, model=params.model)
    return proto.unstructure(outgoing.ModelSet(params.session_id, params.model))


async def _configure(
    manager: SessionManager, method: str, session_id: str, **change: str | None
) -> None:
    try:
        known = await manager.configure(session_id, **change)
    except ev.BackendError as exc:
        raise ev.BackendError(f"{method}: {exc}") from None
    if not known:
        raise proto.ParamsError(f"no session {session_id}")


@dave_method(proto.LIST_COMMANDS, proto.ListCommandsParams)
async def list_commands(
    _: DaveServer, manager: SessionManager, params: proto.ListCommandsParams
) -> Any:
    commands = await manager.clients.commands(params.session_id)
    return proto.unstructure(outgoing.command_list(commands))


@dave_method(proto.LIST_RULES, proto.ListRulesParams)
def list_rules(_: DaveServer, manager: SessionManager, params: proto.ListRulesParams) -> Any:
    rules = manager.kept.rules(params.session_id)
    if rules is None:
        raise proto.ParamsError(f"no session {params.session_id}")
    return proto.unstructure(outgoing.RuleList(rules))


@dave_method(proto.REMOVE_RULE, proto.RemoveRuleParams)
def remove_rule(_: DaveServer, manager: SessionManager, params: proto.RemoveRuleParams) -> Any:
    removed = manager.kept.remove_rule(params.session_id, params.rule)
    if removed is None:
        raise proto.ParamsError(f"no session {params.session_id}")
    return proto.unstructure(outgoing.Removed(removed))


@dave_method(proto.CHANGES, proto.ChangesParams)
async def changes(_: DaveServer, manager: SessionManager, params: proto.ChangesParams) -> Any:
    change_set = await manager.kept.changes(params.session_id, params.turn)
    return proto.unstructure(outgoing.changes_result(params.session_id, change_set))


@dave_method(proto.REVERT_CHANGES, proto.RevertChangesParams)
async def revert_changes(
    _: DaveServer, manager: SessionManager, params: proto.RevertChangesParams
) -> Any:
    hunks = [HunkRef(h.path, h.index) for h in params.hunks] if params.hunks is not None else None
    result = await manager.kept.revert(params.session_id, params.turn, params.paths, hunks)
    return proto.unstructure(outgoing.revert_result(result))


@dave_method(proto.REWIND, proto.RewindParams)
async def rewind(_: DaveServer, manager: SessionManager, params: proto.RewindParams) -> Any:
    rewound = await manager.rewinds.rewind(params.session_id, params.turn, params.files)
    return proto.unstructure(outgoing.rewind_result(rewound))


@dave_method(proto.FORK, proto.ForkParams)
async def fork(_: DaveServer, manager: SessionManager, params: proto.ForkParams) -> Any:
    session_id = await manager.rewinds.fork(params.session_id, params.turn)
    return proto.unstructure(outgoing.ForkResult(session_id))


@dave_method(proto.HISTORY, proto.HistoryParams)
async def history(_: DaveServer, manager: SessionManager, params: proto.HistoryParams) -> Any:
    found = await manager.kept.history(params.session_id)
    return proto.unstructure(outgoing.history_result(params.session_id, found))


@dave_method(proto.TRUST_FOLDER, proto.TrustFolderParams)
async def trust_folder(
    _: DaveServer, manager: SessionManager, params: proto.TrustFolderParams
) -> Any:
    try:
        path, trusted = await manager.clients.set_trust(params.path, params.trusted)
    except TrustError as exc:
        raise proto.ParamsError(f"invalid params: path: {exc}") from None
    return proto.unstructure(outgoing.TrustFolderResult(path, trusted))


@dave_method(proto.FOLDER_TRUST, proto.FolderTrustParams)
async def folder_trust(
    _: DaveServer, manager: SessionManager, params: proto.FolderTrustParams
) -> Any:
    try:
        found, trusted = await manager.clients.folder_trust(params.path)
    except TrustError as exc:
        raise proto.ParamsError(f"invalid params: path: {exc}") from None
    result = outgoing.FolderTrustResult(found.path, trusted, found.runs_code, found.would_run)
    return proto.unstructure(result)
