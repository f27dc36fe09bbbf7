"""The pygls server: thin handlers that structure params, call the session manager,
and turn its events and outcomes into `$/progress` reports, results and errors.

No backend logic lives here; see sessions.py and backends/.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from pathlib import Path
from typing import Any

from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcException
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol, lsp_method
from pygls.uris import to_fs_path

from dave_lsp import PROTOCOL_VERSION, __version__
from dave_lsp import events as ev
from dave_lsp import protocol as proto
from dave_lsp.backends.base import ChatMessage
from dave_lsp.backends.registry import BACKENDS, FACTORIES
from dave_lsp.logs import attach_client_log, redact, redact_values
from dave_lsp.options import InitOptions, parse_options
from dave_lsp.permissions import PermissionBroker, UnknownRequest
from dave_lsp.progress import ProgressSink
from dave_lsp.sessions import SessionManager
from dave_lsp.store import SessionStore

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
                "backends": list(BACKENDS),
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
        state_dir = Path(options.state_dir).expanduser() if options.state_dir else None
        self._manager = SessionManager(
            options, FACTORIES, self.broker, default_cwd, SessionStore(state_dir)
        )

    def client_supports_progress(self) -> bool:
        window = self.client_capabilities.window
        return bool(window and window.work_done_progress)

    async def close_sessions(self) -> None:
        if self._manager is not None:
            await self._manager.close_all()


def _uri_path(uri: str) -> str | None:
    return to_fs_path(uri)


server = DaveServer()


@server.feature(lsp.INITIALIZE)
def initialize(ls: DaveServer, params: lsp.InitializeParams) -> None:
    ls.setup(params)
    level = ls.options.log_level
    attach_client_log(ls, level)


@server.feature(lsp.INITIALIZED)
def initialized(ls: DaveServer, _: lsp.InitializedParams) -> None:
    if ls._manager is not None:
        ls._manager.start_background()


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


async def _progress_sender(ls: DaveServer, token: str | int | None) -> Any:
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


@server.feature(proto.QUERY)
async def query(ls: DaveServer, raw: Any) -> Any:
    manager = ls.manager
    params = _structure(proto.QUERY, raw, proto.QueryParams)
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
        )
    except ev.BackendError as exc:
        sink.error(redact(str(exc)))
        sink.end()
        raise rpc_error(
            proto.REQUEST_FAILED,
            str(exc),
            {"sessionId": params.session_id, "partialText": "", "toolResults": []},
        ) from None
    task = asyncio.current_task()
    if token is not None and task is not None:
        ls.token_tasks[token] = task
    try:
        result = await asyncio.shield(job.future)
        return proto.unstructure(result)
    except asyncio.CancelledError:
        await manager.cancel(job)
        raise rpc_error(
            proto.REQUEST_CANCELLED, "query cancelled; the session keeps its history", job.partial()
        ) from None
    except ev.TurnCancelled as exc:
        raise rpc_error(proto.REQUEST_CANCELLED, str(exc), job.partial()) from None
    except ev.BackendError as exc:
        sink.error(redact(str(exc)))
        raise rpc_error(proto.REQUEST_FAILED, str(exc), job.partial()) from None
    finally:
        sink.end()
        if token is not None:
            ls.token_tasks.pop(token, None)


@server.feature(proto.PERMISSION)
def permission(ls: DaveServer, raw: Any) -> Any:
    ls.manager  # noqa: B018 - raises if not initialized
    params = _structure(proto.PERMISSION, raw, proto.PermissionParams)
    try:
        ls.broker.answer(params.request_id, params.decision, params.reason, params.updated_input)
    except UnknownRequest as exc:
        raise rpc_error(proto.INVALID_PARAMS, f"dave/permission: {exc}") from None
    return {"ok": True}


@server.feature(proto.DELETE_SESSION)
async def delete_session(ls: DaveServer, raw: Any) -> Any:
    manager = ls.manager
    params = _structure(proto.DELETE_SESSION, raw, proto.DeleteSessionParams)
    return {"deleted": await manager.delete(params.session_id)}


def _structure(method: str, raw: Any, cls: type[proto.T]) -> proto.T:
    try:
        return proto.structure(method, raw, cls)
    except proto.ParamsError as exc:
        raise rpc_error(proto.INVALID_PARAMS, str(exc)) from None


@server.feature(proto.NEW_SESSION)
def new_session(ls: DaveServer, raw: Any) -> Any:
    manager = ls.manager
    params = _structure(proto.NEW_SESSION, raw, proto.NewSessionParams)
    if params.session_id is not None:
        _check_id(proto.NEW_SESSION, params.session_id)
    try:
        actor = manager.new_session(
            params.session_id,
            cwd=params.cwd,
            model=params.model,
            permission_mode=params.permission_mode,
            backend=params.backend,
            resume=params.resume,
        )
    except ValueError as exc:
        raise rpc_error(proto.INVALID_PARAMS, f"dave/newSession: {exc}") from None
    return {"sessionId": actor.session_id}


@server.feature(proto.LIST_SESSIONS)
def list_sessions(ls: DaveServer, raw: Any) -> Any:
    return {"sessions": [proto.unstructure(info) for info in ls.manager.list()]}


@server.feature(proto.SET_PERMISSION_MODE)
async def set_permission_mode(ls: DaveServer, raw: Any) -> Any:
    manager = ls.manager
    params = _structure(proto.SET_PERMISSION_MODE, raw, proto.SetPermissionModeParams)
    await _configure(
        manager, proto.SET_PERMISSION_MODE, params.session_id, permission_mode=params.mode
    )
    return {"sessionId": params.session_id, "permissionMode": params.mode}


@server.feature(proto.SET_MODEL)
async def set_model(ls: DaveServer, raw: Any) -> Any:
    manager = ls.manager
    params = _structure(proto.SET_MODEL, raw, proto.SetModelParams)
    await _configure(manager, proto.SET_MODEL, params.session_id, model=params.model)
    return {"sessionId": params.session_id, "model": params.model}


@server.feature(proto.LIST_RULES)
def list_rules(ls: DaveServer, raw: Any) -> Any:
    params = _structure(proto.LIST_RULES, raw, proto.ListRulesParams)
    rules = ls.manager.rules(params.session_id)
    if rules is None:
        raise rpc_error(proto.INVALID_PARAMS, f"{proto.LIST_RULES}: no session {params.session_id}")
    return {"rules": [rule.to_json() for rule in rules]}


@server.feature(proto.REMOVE_RULE)
def remove_rule(ls: DaveServer, raw: Any) -> Any:
    params = _structure(proto.REMOVE_RULE, raw, proto.RemoveRuleParams)
    removed = ls.manager.remove_rule(params.session_id, params.rule)
    if removed is None:
        raise rpc_error(
            proto.INVALID_PARAMS, f"{proto.REMOVE_RULE}: no session {params.session_id}"
        )
    return {"removed": removed}


async def _configure(manager: SessionManager, method: str, session_id: str, **change: Any) -> None:
    try:
        known = await manager.configure(session_id, **change)
    except ev.BackendError as exc:
        raise rpc_error(proto.REQUEST_FAILED, f"{method}: {exc}") from None
    if not known:
        raise rpc_error(proto.INVALID_PARAMS, f"{method}: no session {session_id}")


def _check_id(method: str, session_id: str) -> None:
    try:
        proto.check_session_id(method, session_id)
    except proto.ParamsError as exc:
        raise rpc_error(proto.INVALID_PARAMS, str(exc)) from None
