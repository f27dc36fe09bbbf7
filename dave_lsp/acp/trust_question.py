"""ACP's folder-trust question: at a session's first prompt, when its folder is untrusted
and the folder's Claude Code settings could run code, the client is asked (through
`session/request_permission`, listing in full what would run) whether to trust it.
"""

from __future__ import annotations

import asyncio
import logging

from dave_lsp.acp import outgoing as out
from dave_lsp.acp import schema
from dave_lsp.acp.schema import acp
from dave_lsp.acp.transport import Connection, RpcError
from dave_lsp.acp.updates import REQUEST_PERMISSION
from dave_lsp.backends import registry
from dave_lsp.backends.base import SessionConfig
from dave_lsp.rpc import ParamsError
from dave_lsp.session.clients import Clients
from dave_lsp.trust import TrustError

log = logging.getLogger(__name__)

# The option of the trust question that trusts the folder: its id is its kind, as
# every permission option's is (schema.permission_options).
TRUST_FOLDER = schema.ALLOW_ALWAYS


class TrustQuestions:
    """Each session's one question whether to trust its folder (its first prompt's)."""

    def __init__(self, conn: Connection, clients: Clients, timeout: float | None) -> None:
        self.conn = conn
        self._clients = clients
        self._timeout = timeout  # permissionTimeoutSeconds
        self._questions: dict[str, asyncio.Task[bool]] = {}

    async def ask(self, config: SessionConfig) -> bool:
        """Ask once per session, at its first prompt, whether to trust its folder, when
        the folder is untrusted and its Claude Code settings could run code (every
        prompt waits for that one answer). False when the client cancelled the question:
        the prompt then ends cancelled."""
        session_id = config.session_id
        if not registry.BACKENDS[config.backend].loads_folder_settings:
            return True  # only Claude Code loads a folder's settings
        question = self._questions.get(session_id)
        if question is None:
            question = asyncio.ensure_future(self._ask(config))
            self._questions[session_id] = question
        return await asyncio.shield(question)

    async def _ask(self, config: SessionConfig) -> bool:
        """The question, listing in full what would run. Allowed: remembered as
        dave/trustFolder remembers, and the session's client reconnects with the
        folder's settings at this turn. Rejected (or unanswerable): it runs without."""
        try:
            found, trusted = await self._clients.folder_trust(config.cwd)
        except TrustError:
            return True  # no folder to trust: the turn says what is wrong with it
        if trusted or not found.runs_code:
            return True
        listing = "\n".join(found.would_run)
        tool_call = out.PermissionToolCall(
            f"trust-{config.session_id}",
            f"Trust this folder's Claude Code settings? {found.summary()}",
            "execute",
            "pending",
            {"folder": found.path, "wouldRun": found.would_run},
            content=[
                schema.text_content(
                    f"{found.path} is not trusted. Trusting it loads its Claude Code "
                    f"settings, which run:\n{listing}"
                )
            ],
        )
        options = [
            schema.option(TRUST_FOLDER, "Trust this folder"),
            schema.option(schema.REJECT, "Run without them"),
        ]
        params = out.RequestPermissionRequest(config.session_id, tool_call, options)
        try:
            result = await asyncio.wait_for(
                self.conn.request(REQUEST_PERMISSION, params),
                self._timeout,
            )
            outcome = schema.parse(
                REQUEST_PERMISSION, result, acp.RequestPermissionResponse
            ).outcome
        except (RpcError, ParamsError, TimeoutError) as exc:
            log.warning("could not ask whether to trust %s: %s", found.path, exc or "no answer")
            return True
        if not isinstance(outcome, acp.AllowedOutcome):
            self._questions.pop(config.session_id, None)  # asked again next prompt
            return False
        if outcome.option_id == TRUST_FOLDER:
            try:
                await self._clients.set_trust(found.path, True)
            except TrustError as exc:
                log.warning("could not trust %s: %s", found.path, exc)
        return True
