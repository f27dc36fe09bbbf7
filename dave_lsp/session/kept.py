"""What a session keeps, for the front ends to read back: each turn's file changes (and
reverting them), its conversation (from its backend's own record), and its allow-always
rules. Reading never starts a backend.

It finds sessions through the two look-ups the manager hands it (manager.py), and
reaches no further into the manager.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

import attrs

from dave_lsp.backends import history as conversation
from dave_lsp.permissions.rules import Rule
from dave_lsp.review.change_store import ChangeStore
from dave_lsp.review.changes import ChangeSet
from dave_lsp.review.revert import HunkRef, RevertResult, revert
from dave_lsp.rpc import ParamsError
from dave_lsp.session.actor import SessionActor
from dave_lsp.session.store import SessionStore

Find = Callable[[str], SessionActor | None]


class Kept:
    """Changes, revert, history and rules, by sessionId."""

    def __init__(
        self,
        *,
        find: Find,
        live: Find,
        store: SessionStore,
        changes: ChangeStore,
        env: Mapping[str, str],
    ) -> None:
        self._find = find  # the live actor, reviving one the store remembers
        self._live = live  # the live actor only
        self._store = store
        self._changes = changes
        self._env = env  # the server's, for a session that is not live

    def rules(self, session_id: str) -> list[Rule] | None:
        """The session's allow-always rules; None for an unknown session."""
        actor = self._find(session_id)
        return None if actor is None else list(actor.record.rules)

    def remove_rule(self, session_id: str, rule: str) -> bool | None:
        """Remove one rule; whether it was there, or None for an unknown session."""
        actor = self._find(session_id)
        return None if actor is None else actor.settings.remove_rule(rule)

    async def changes(self, session_id: str, turn: int | None) -> ChangeSet | None:
        """A turn's changes (default: the last turn that changed files); ParamsError
        for an unknown session or a turn with none kept."""
        if self._find(session_id) is None:
            raise ParamsError(f"no session {session_id}")
        change_set = await asyncio.to_thread(self._changes.load, session_id, turn)
        if change_set is None and turn is not None:
            kept = await asyncio.to_thread(self._changes.turns, session_id)
            raise ParamsError(
                f"session {session_id} has no changes kept for turn {turn}"
                + (f"; turns with changes: {', '.join(map(str, kept))}" if kept else "")
            )
        return change_set

    async def revert(
        self,
        session_id: str,
        turn: int | None,
        paths: list[str] | None,
        hunks: list[HunkRef] | None,
    ) -> RevertResult:
        """Restore what a turn changed (never over a file changed since)."""
        change_set = await self.changes(session_id, turn)
        if change_set is None:
            return RevertResult((), ())
        return await asyncio.to_thread(revert, change_set, paths, hunks)

    async def history(self, session_id: str) -> conversation.History:
        """The session's conversation, from its backend's own record; ParamsError for an
        unknown session. A remembered session is read, not revived: nothing starts."""
        live = self._live(session_id)
        record = live.record if live is not None else self._store.load(session_id)
        if record is None:
            raise ParamsError(f"no session {session_id}")
        backend = live.backend if live is not None else None
        # Copied here, on the loop: the actor's task may change it while the file is read.
        chat = list(backend.history) if isinstance(backend, conversation.ChatHistory) else None
        query = conversation.HistoryQuery(
            record.backend,
            record.backend_session_id,
            record.cwd,
            live.config.env if live is not None else self._env,
            record.turns,
            chat,
        )
        found = await asyncio.to_thread(conversation.read, query)
        if record.resume_turns is not None and chat is None:
            # Rewound or forked, and not queried since: the backend's record still holds
            # the turns its next start leaves out (session/rewind.py).
            return attrs.evolve(found, entries=_first_turns(found.entries, record.resume_turns))
        return found


def _first_turns(entries: list[conversation.Entry], turns: int) -> list[conversation.Entry]:
    """The entries up to the prompt of turn `turns + 1`."""
    prompts = [i for i, entry in enumerate(entries) if entry.get("role") == "user"]
    return entries[: prompts[turns]] if turns < len(prompts) else entries
