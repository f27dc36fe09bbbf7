"""A session's config options: the model (category `model`) and the permission mode
(category `mode`), as `configOptions` in session/new, load and resume answer them
(schema.config_options).

`session/set_config_option` sets either, and `session/set_mode` (kept for clients
without config options) the mode, through the manager's `configure`, the session
layer's one place for settings (as `dave/setPermissionMode` and `dave/setModel`). A
change the client did not ask for by `session/set_config_option`, a `session/set_mode`
or a plan approved into another mode (updates.py, beside its `current_mode_update`),
sends `config_option_update` with every option as it is now.
"""

from __future__ import annotations

from typing import Any

from dave_lsp import events as ev
from dave_lsp.acp import outgoing as out
from dave_lsp.acp import schema
from dave_lsp.acp.schema import acp
from dave_lsp.acp.transport import Connection, RpcError
from dave_lsp.acp.updates import UPDATE
from dave_lsp.rpc import INTERNAL_ERROR, RESOURCE_NOT_FOUND, ParamsError
from dave_lsp.session.manager import SessionManager

# Each config option's id, and the `configure` setting it is.
SETTINGS = {"model": "model", "mode": "permission_mode"}


class SessionConfigs:
    """`session/set_mode`, `session/set_config_option` and `config_option_update`."""

    def __init__(self, conn: Connection, manager: SessionManager) -> None:
        self.conn = conn
        self.manager = manager

    async def set_mode(self, params: Any) -> Any:
        request = schema.parse("session/set_mode", params, acp.SetSessionModeRequest)
        _check_mode("session/set_mode", "modeId", request.mode_id)
        await self._configure(
            "session/set_mode", request.session_id, permission_mode=request.mode_id
        )
        self.announce(request.session_id)
        return out.Empty()

    async def set_config_option(self, params: Any) -> Any:
        method = "session/set_config_option"
        request = schema.parse(method, params, acp.SetSessionConfigOptionSelectRequest)
        setting = SETTINGS.get(request.config_id)
        if setting is None:
            raise ParamsError(
                f"{method}: invalid params: configId: no option {request.config_id!r}; "
                f"the options are: {', '.join(SETTINGS)}"
            )
        if setting == "permission_mode":
            _check_mode(method, "value", request.value)
        await self._configure(method, request.session_id, **{setting: request.value})
        return out.SetConfigOptionResponse(self.options(request.session_id))

    def options(self, session_id: str, mode: str | None = None) -> list[out.SelectConfigOption]:
        """The session's config options now (with `mode` for its mode when given)."""
        config = self.manager.find(session_id)
        if config is None:
            return []
        return schema.config_options(mode or config.permission_mode, config.model)

    def announce(self, session_id: str, mode: str | None = None) -> None:
        """`config_option_update`: every option as it is now (the mode `mode` when the
        session layer has not taken it yet: a plan approved a moment ago)."""
        options = self.options(session_id, mode)
        if options:
            body = out.ConfigOptionUpdate(options)
            self.conn.notify(UPDATE, schema.update(session_id, body))

    async def _configure(self, method: str, session_id: str, **change: str) -> None:
        try:
            known = await self.manager.configure(session_id, **change)
        except ev.BackendError as exc:
            raise RpcError(INTERNAL_ERROR, f"{method}: {exc}") from None
        if not known:
            raise RpcError(RESOURCE_NOT_FOUND, f"{method}: no session {session_id}")


def _check_mode(method: str, field: str, mode: str) -> None:
    if mode not in schema.MODE_IDS:
        raise ParamsError(
            f"{method}: invalid params: {field}: {mode!r} is not one of "
            + ", ".join(sorted(schema.MODE_IDS))
        )
