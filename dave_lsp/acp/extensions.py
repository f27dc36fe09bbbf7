"""dave-lsp's review and rewind over ACP (docs/acp.md): `session/fork` (unstable in the
spec) and the extension methods `_dave/rewind`, `_dave/changes` and `_dave/revertChanges`,
the LSP mode's `dave/rewind`, `dave/changes` and `dave/revertChanges` under ACP's names
for extensions, with the same params and results. Each is a thin layer over the
manager's `rewinds` and `kept` (session/rewind.py, session/kept.py).
"""

from __future__ import annotations

import os
from typing import Any, Protocol

from dave_lsp.acp import outgoing as out
from dave_lsp.acp import schema
from dave_lsp.acp.content import additional_directories, mcp_servers
from dave_lsp.acp.files import client_tools
from dave_lsp.acp.schema import acp
from dave_lsp.acp.transport import Connection
from dave_lsp.review.changes import ChangeSet, FileChange
from dave_lsp.review.diff import MAX_DIFF_BYTES, cut_diff
from dave_lsp.review.revert import Conflict, HunkRef
from dave_lsp.rpc import ParamsError
from dave_lsp.session.manager import SessionManager


class AgentLike(Protocol):
    """What these handlers need of the agent (agent.py's `Agent`)."""

    manager: SessionManager
    client_capabilities: acp.ClientCapabilities | None


def register(conn: Connection, agent: AgentLike) -> None:
    """Answer these methods on `conn` for `agent`'s sessions."""
    methods = Methods(conn, agent)
    conn.on_request("session/fork", methods.fork)
    conn.on_request("_dave/rewind", methods.rewind)
    conn.on_request("_dave/changes", methods.changes)
    conn.on_request("_dave/revertChanges", methods.revert_changes)


class Methods:
    """The handlers."""

    def __init__(self, conn: Connection, agent: AgentLike) -> None:
        self._conn = conn
        self._agent = agent

    @property
    def _manager(self) -> SessionManager:
        return self._agent.manager

    async def fork(self, params: Any) -> Any:
        """`session/fork {sessionId, cwd, additionalDirectories?, mcpServers?}`: a new
        session holding every turn of this one (dave/fork), set up for this client."""
        request = schema.parse("session/fork", params, acp.ForkSessionRequest)
        source = self._manager.find(request.session_id)
        if source is None:
            raise ParamsError(f"session/fork: no session {request.session_id}")
        if not _same_folder(request.cwd, source.cwd):
            raise ParamsError(
                f"session/fork: cwd must be the session's folder {source.cwd}: a fork "
                "goes on in the folder of the session it continues"
            )
        additional_directories("session/fork", request.additional_directories)
        fork_id = await self._manager.rewinds.fork(request.session_id)
        config = self._manager.find(fork_id)
        assert config is not None  # its record was just saved
        files = client_tools(self._conn, self._agent.client_capabilities, config)
        servers = mcp_servers(request.mcp_servers or [])
        self._manager.attach_client(fork_id, files=files, mcp_servers=servers)
        return schema.new_session(fork_id, config.permission_mode, config.model)

    async def rewind(self, params: Any) -> Any:
        """`_dave/rewind {sessionId, turn, files?}` → `{turn, restored, conflicts}`."""
        session_id, values = _params("_dave/rewind", params, turn=int, files=bool)
        if values.get("turn") is None:
            raise ParamsError("_dave/rewind: turn: required (the turn to go back before)")
        files = values.get("files")
        try:
            rewound = await self._manager.rewinds.rewind(
                session_id, values["turn"], True if files is None else files
            )
        except ParamsError as exc:
            raise ParamsError(f"_dave/rewind: {exc}") from None
        return out.RewindResponse(
            rewound.turn, list(rewound.restored), _conflicts(rewound.conflicts)
        )

    async def changes(self, params: Any) -> Any:
        """`_dave/changes {sessionId, turn?}` → `{sessionId, turn, files: [{path, status,
        added, removed, diff}]}`."""
        session_id, values = _params("_dave/changes", params, turn=int)
        try:
            change_set = await self._manager.kept.changes(session_id, values.get("turn"))
        except ParamsError as exc:
            raise ParamsError(f"_dave/changes: {exc}") from None
        return _changes(session_id, change_set)

    async def revert_changes(self, params: Any) -> Any:
        """`_dave/revertChanges {sessionId, turn?, paths?, hunks?}` → `{reverted,
        conflicts}`."""
        method = "_dave/revertChanges"
        session_id, values = _params(method, params, turn=int, paths=list, hunks=list)
        paths = values.get("paths")
        if paths is not None and not all(isinstance(p, str) for p in paths):
            raise ParamsError(f"{method}: paths: expected an array of strings")
        hunks = None if values.get("hunks") is None else _hunks(method, values["hunks"])
        try:
            result = await self._manager.kept.revert(session_id, values.get("turn"), paths, hunks)
        except ParamsError as exc:
            raise ParamsError(f"{method}: {exc}") from None
        return out.RevertChangesResponse(list(result.reverted), _conflicts(result.conflicts))


def _same_folder(one: str, other: str) -> bool:
    return os.path.normpath(one) == os.path.normpath(other)


def _params(method: str, params: Any, **types: type) -> tuple[str, dict[str, Any]]:
    """The sessionId and the optional fields of `types` (strictly typed: a number is not
    a boolean); ParamsError naming the field."""
    if not isinstance(params, dict):
        raise ParamsError(f"{method}: params must be an object")
    session_id = params.get("sessionId")
    if not isinstance(session_id, str) or not session_id:
        raise ParamsError(f"{method}: sessionId: expected a non-empty string")
    values: dict[str, Any] = {}
    for name, kind in types.items():
        value = params.get(name)
        if value is None:
            continue
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ParamsError(f"{method}: {name}: expected {_KINDS[kind]}")
        values[name] = value
    return session_id, values


_KINDS = {int: "an integer", bool: "a boolean", list: "an array"}


def _hunks(method: str, raw: list[Any]) -> list[HunkRef]:
    hunks = []
    for item in raw:
        path = item.get("path") if isinstance(item, dict) else None
        index = item.get("index") if isinstance(item, dict) else None
        if not isinstance(path, str) or not isinstance(index, int) or isinstance(index, bool):
            raise ParamsError(f"{method}: hunks: expected [{{path, index}}]")
        hunks.append(HunkRef(path, index))
    return hunks


def _conflicts(conflicts: tuple[Conflict, ...]) -> list[out.Conflict]:
    return [out.Conflict(c.path, c.message) for c in conflicts]


def _changes(session_id: str, change_set: ChangeSet | None) -> out.ChangesResponse:
    if change_set is None:
        return out.ChangesResponse(session_id, None, [])
    files = [_file(change, change_set.cwd) for change in change_set.files]
    return out.ChangesResponse(session_id, change_set.turn, files)


def _file(change: FileChange, cwd: str) -> out.ChangedFile:
    diff, _cut = cut_diff(change.diff(cwd), MAX_DIFF_BYTES)
    return out.ChangedFile(change.path, change.status, change.added, change.removed, diff)
