"""What the front ends ask of the sessions' model clients, beyond a query: connecting one
ahead of its first prompt, closing one, staying within `maxLiveSessions`, the slash
commands, and folder trust (which decides what a client loads when it starts).

It is handed the manager's sessions, its pool and trust store, and a way to find a
session and to make a throwaway actor (manager.py); it reaches no further.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from dave_lsp.config import InitOptions
from dave_lsp.session.actor import SessionActor
from dave_lsp.session.pool import ProcessPool
from dave_lsp.trust import FolderCheck, TrustStore
from dave_lsp.trust import check as check_folder


class Clients:
    """The sessions' model clients, by sessionId."""

    def __init__(
        self,
        *,
        sessions: dict[str, SessionActor],
        pool: ProcessPool[SessionActor],
        options: InitOptions,
        trust: TrustStore,
        find: Callable[[str], SessionActor | None],
        temporary: Callable[[], SessionActor],
    ) -> None:
        self._sessions = sessions  # the manager's own: live sessions only
        self._pool = pool
        self._options = options
        self._trust = trust
        self._find = find  # the live actor, reviving one the store remembers
        self._temporary = temporary  # an actor of the default backend, for one question
        # Sessions whose client is being connected ahead (`warm_ahead`).
        self._warming: set[str] = set()

    def connected(self, session_id: str) -> bool:
        """Whether the session's model client is connected."""
        actor = self._sessions.get(session_id)
        return actor is not None and actor.backend is not None

    def warm_ahead(self, session_id: str) -> asyncio.Future[None] | None:
        """Connect a session's client ahead of its first prompt when a process slot is
        free; None when there is none (the first prompt connects it then, evicting an
        idle session). The warm-ups under way count: a burst of new sessions would
        otherwise start every client at once, before any counts as live, past
        maxLiveSessions."""
        actor = self._sessions.get(session_id)
        if actor is None:
            return None
        live = self._pool.processes() + len(self._warming)
        if actor.backend is None and live >= self._options.max_live_sessions:
            return None
        self._warming.add(session_id)
        done = actor.warm()
        done.add_done_callback(lambda _: self._warming.discard(session_id))
        return done

    async def evict(self, session_id: str) -> None:
        """Close a live session's client; its record stays for its next query."""
        actor = self._sessions.get(session_id)
        if actor is not None:
            await actor.evict()

    def keep_within_limit(self, session_id: str) -> None:
        """Back within maxLiveSessions once sessions are idle again, in the background
        (the pool lets a busy moment run over the limit and does not come back by
        itself)."""
        self._pool.make_room_later(self._sessions.get(session_id))

    async def commands(self, session_id: str | None) -> list[dict[str, str]]:
        """The slash commands of the session's backend or, without a known session, of a
        live client of the default backend (a warm spare first); with none live, a
        client started for the question and closed after it."""
        actor = self._find(session_id) if session_id else None
        if actor is None:
            live = [*self._pool.spares, *self._sessions.values()]
            backend = self._options.backend
            actor = next((a for a in live if a.backend and a.config.backend == backend), None)
        temporary = None
        if actor is None:
            actor = temporary = self._temporary()
        try:
            if actor.backend is None:
                await actor.warm()
            return await actor.backend.commands() if actor.backend is not None else []
        finally:
            if temporary is not None:
                await temporary.shutdown()

    async def set_trust(self, path: str, trusted: bool) -> tuple[str, bool]:
        """Remember (or take back) the trust of a folder; its normalized path and whether
        it is trusted now (one of `trustedFolders` stays so). TrustError for a bad path.
        Spares made with the other trust are replaced; live sessions change at their
        next turn (SessionActor._turn)."""
        where = await asyncio.to_thread(self._trust.remember, path, trusted)
        self._pool.replace_spares(
            lambda spare: spare.config.trusted != self._trust.is_trusted(spare.config.cwd)
        )
        return where, self._trust.is_trusted(where)

    async def folder_trust(self, path: str) -> tuple[FolderCheck, bool]:
        """What `path`'s settings would run, and whether it is trusted; TrustError for a
        path that is not a folder's."""
        found = await asyncio.to_thread(check_folder, path)
        return found, self._trust.is_trusted(found.path)
