"""A session's settings: the one place they change, and the one place they convert.

The six settings (id, backend, folder, model, permission mode, the conversation to
resume) have three shapes, each for one reader: `SessionRecord` (store.py) is what is
kept on disk and the one home of the settings that change; `SessionConfig`
(backends/base.py) is what a backend is handed when it starts, derived here from the
record plus what is fixed for the backend's start (env, options, editor and client
tools, trust); `SessionInfo` (the wire's session list) is built from the record by
`info`. Only `Settings` changes them, so the record and the config never disagree.
"""

from __future__ import annotations

from typing import Any, Literal

import attrs

from dave_lsp import events as ev
from dave_lsp.backends.base import SessionConfig
from dave_lsp.permissions.rules import Rule
from dave_lsp.session.results import ForkedFrom, SessionInfo
from dave_lsp.session.store import SessionRecord, SessionStore, now_iso
from dave_lsp.tools.editor import FileTools

SessionState = Literal["idle", "working", "needsInput", "evicted"]


def record_for(config: SessionConfig) -> SessionRecord:
    """The record a new session starts with."""
    return SessionRecord(
        session_id=config.session_id,
        backend=config.backend,
        cwd=config.cwd,
        model=config.model,
        permission_mode=config.permission_mode,
        backend_session_id=config.resume or "",
        additional_directories=list(config.additional_directories),
    )


def settings_of(record: SessionRecord) -> dict[str, Any]:
    """What a remembered session starts with again (SessionManager.new_config's
    arguments): the inverse of `record_for`."""
    return {
        "cwd": record.cwd,
        "model": record.model,
        "permission_mode": record.permission_mode,
        "backend": record.backend,
        "resume": record.backend_session_id or None,
        "additional_directories": record.additional_directories,
    }


def info(record: SessionRecord, state: SessionState) -> SessionInfo:
    """A session as `dave/listSessions` (and ACP's `session/list`) shows it."""
    return SessionInfo(
        session_id=record.session_id,
        state=state,
        backend=record.backend,
        cwd=record.cwd,
        model=record.model,
        permission_mode=record.permission_mode,
        created_at=record.created_at,
        last_active_at=record.last_active_at,
        turns=record.turns,
        title=record.title,
        backend_session_id=record.backend_session_id,
        cost_usd=record.cost_usd,
        forked_from=_forked_from(record),
    )


def _forked_from(record: SessionRecord) -> ForkedFrom | None:
    origin = record.forked_from
    if not isinstance(origin, dict):
        return None
    session_id, turn = origin.get("sessionId"), origin.get("turn")
    if not isinstance(session_id, str) or not isinstance(turn, int):
        return None
    return ForkedFrom(session_id, turn)


class Settings:
    """One session's record and the config derived from it; every change is saved.

    The id, backend and folder never change. The model, the permission mode and the
    conversation to resume live in the record; the config follows it (`_derive`).
    """

    def __init__(self, config: SessionConfig, record: SessionRecord, store: SessionStore) -> None:
        self.record = record
        self._store = store
        self._start = config
        self.config = config
        self._derive()

    def _derive(self) -> None:
        record = self.record
        self.config = attrs.evolve(
            self._start,
            model=record.model,
            permission_mode=record.permission_mode,
            resume=record.backend_session_id or None,
            resume_turns=record.resume_turns if record.backend_session_id else None,
        )

    def save(self) -> None:
        self._store.save(self.record)

    # -- what the user sets ------------------------------------------------------------

    def configure(self, *, permission_mode: str | None, model: str | None) -> None:
        """`dave/setPermissionMode`, `dave/setModel` (and ACP's), and an approved plan."""
        if permission_mode is not None:
            self.record.permission_mode = permission_mode
        if model is not None:
            self.record.model = model
        self._derive()
        self.save()

    def set_trusted(self, trusted: bool) -> bool:
        """Take the folder's trust as it is now; whether it changed."""
        if trusted == self._start.trusted:
            return False
        self._start = attrs.evolve(self._start, trusted=trusted)
        self._derive()
        return True

    def attach_client(
        self, *, files: FileTools | None, mcp_servers: dict[str, Any] | None = None
    ) -> None:
        """The client's file tools (and MCP servers, unless None) for the backend's start."""
        self._start = attrs.evolve(
            self._start,
            files=files,
            mcp_servers=self._start.mcp_servers if mcp_servers is None else mcp_servers,
        )
        self._derive()

    def set_folders(self, additional_directories: tuple[str, ...]) -> bool:
        """Other additional directories (ACP's session/load, resume): the record keeps
        them and the backend's next start gets them; whether they changed."""
        if additional_directories == self._start.additional_directories:
            return False
        self.record.additional_directories = list(additional_directories)
        self._start = attrs.evolve(self._start, additional_directories=additional_directories)
        self._derive()
        self.save()
        return True

    # -- what the turns leave ----------------------------------------------------------

    def remember_turn(self, done: ev.Done, typed: str) -> None:
        """Keep what a restart needs to resume this conversation (and its title)."""
        record = self.record
        record.turns += 1
        record.cost_usd += done.cost_usd
        record.last_active_at = now_iso()
        if done.backend_session_id:
            # A backend opened after an eviction resumes this conversation.
            if done.backend_session_id != record.backend_session_id:
                record.resume_turns = None  # a rewind's or fork's cut is its own now
            record.backend_session_id = done.backend_session_id
            self._derive()
        if not record.title:
            typed = typed.strip()
            record.title = typed.splitlines()[0][:80] if typed else ""
        self.save()

    def rewind(self, turns: int, *, cut: bool) -> None:
        """dave/rewind: the session now holds its first `turns` turns. `cut`: the
        backend's next start continues only those (SessionConfig.resume_turns); none:
        a new conversation."""
        record = self.record
        record.turns = turns
        if cut and not turns:
            record.backend_session_id, record.resume_turns = "", None
        elif cut:
            record.resume_turns = turns if record.backend_session_id else None
        record.last_active_at = now_iso()
        self._derive()
        self.save()

    def count_failed_turn(self) -> None:
        """A turn that failed after changing files counts, so the next one's changes do
        not overwrite its own."""
        self.record.turns += 1
        self.save()

    def add_rule(self, rule: Rule) -> None:
        if all(r.rule != rule.rule for r in self.record.rules):
            self.record.rules.append(rule)
            self.save()

    def remove_rule(self, rule: str) -> bool:
        kept = [r for r in self.record.rules if r.rule != rule]
        if len(kept) == len(self.record.rules):
            return False
        self.record.rules = kept
        self.save()
        return True
