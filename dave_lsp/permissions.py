"""The permission broker: pending permission requests, keyed by `requestId`.

A backend's permission callback registers a request and awaits its future;
`dave/permission` resolves it. Cancel, delete and exit resolve every pending request
of a session as a deny with interrupt, so a waiting model never hangs.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import attrs

from dave_lsp.backends.base import PermissionAnswer


class UnknownRequest(LookupError):
    """`dave/permission` named a request that is not pending."""


@attrs.define
class PendingPermission:
    request_id: str
    session_id: str
    tool_name: str
    future: asyncio.Future[tuple[PermissionAnswer, str, bool]]


class PermissionBroker:
    """Every pending permission request of the server."""

    def __init__(self) -> None:
        self._pending: dict[str, PendingPermission] = {}
        self._answered: set[str] = set()

    def register(self, session_id: str, tool_name: str) -> PendingPermission:
        request = PendingPermission(
            request_id=str(uuid.uuid4()),
            session_id=session_id,
            tool_name=tool_name,
            future=asyncio.get_running_loop().create_future(),
        )
        self._pending[request.request_id] = request
        return request

    def forget(self, request_id: str) -> None:
        self._pending.pop(request_id, None)

    def answer(
        self,
        request_id: str,
        decision: str,
        reason: str = "",
        updated_input: dict[str, Any] | None = None,
    ) -> PendingPermission:
        """Resolve a request from the user's answer; raise UnknownRequest if not pending."""
        request = self._pending.pop(request_id, None)
        if request is None or request.future.done():
            if request_id in self._answered:
                raise UnknownRequest(f"permission request {request_id} was already answered")
            raise UnknownRequest(
                f"no pending permission request {request_id}; it may have been cancelled"
            )
        self._answered.add(request_id)
        allow = decision in ("allow", "allowAlways")
        answer = PermissionAnswer(
            allow=allow,
            reason=reason if not allow else "",
            updated_input=updated_input if allow else None,
        )
        request.future.set_result((answer, "user", decision == "allowAlways"))
        return request

    def deny_session(self, session_id: str, reason: str) -> int:
        """Deny every pending request of a session, with interrupt; returns how many."""
        denied = 0
        for request in [r for r in self._pending.values() if r.session_id == session_id]:
            self._pending.pop(request.request_id, None)
            if not request.future.done():
                request.future.set_result(
                    (PermissionAnswer(allow=False, reason=reason, interrupt=True), "cancel", False)
                )
                denied += 1
        return denied

    def pending_for(self, session_id: str) -> int:
        return sum(1 for r in self._pending.values() if r.session_id == session_id)
