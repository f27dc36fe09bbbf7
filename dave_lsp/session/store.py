"""What the server remembers about each session across restarts.

One small JSON file per session under `$XDG_STATE_HOME/dave-lsp/sessions/` (default
`~/.local/state/dave-lsp/sessions/`), written atomically (a temp file, then rename),
so two servers writing different sessions never lose each other's updates and a crash
never leaves half a file. The file is named by a hash of the sessionId, which may
hold any characters.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import attrs

from dave_lsp.fsio import write_atomic
from dave_lsp.paths import default_state_dir
from dave_lsp.permissions import rules as allow_rules
from dave_lsp.permissions.rules import Rule

log = logging.getLogger(__name__)


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@attrs.define
class SessionRecord:
    session_id: str
    backend: str
    cwd: str
    model: str | None
    permission_mode: str
    backend_session_id: str = ""
    created_at: str = attrs.field(factory=now_iso)
    last_active_at: str = attrs.field(factory=now_iso)
    turns: int = 0
    title: str = ""
    # What the session's turns cost, in US dollars, so far.
    cost_usd: float = 0.0
    # What the user allowed always in this session (permissions/rules.py).
    rules: list[Rule] = attrs.field(factory=list)
    # The session's extra folders (ACP's additionalDirectories), kept for load/resume.
    additional_directories: list[str] = attrs.field(factory=list)
    # After dave/rewind or dave/fork: the backend continues only the first this many
    # turns of `backend_session_id` (SessionConfig.resume_turns); None once a turn ran.
    resume_turns: int | None = None
    # A fork's origin, {"sessionId", "turn"} (dave/fork).
    forked_from: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        data = attrs.asdict(self, recurse=False)
        data["rules"] = [rule.to_json() for rule in self.rules]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SessionRecord:
        names = {f.name for f in attrs.fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        values["rules"] = allow_rules.load(values.get("rules"), str(values.get("session_id")))
        return cls(**values)


class SessionStore:
    """Session records on disk; every method is safe to call when the disk fails."""

    def __init__(self, state_dir: Path | None) -> None:
        self.root = (state_dir or default_state_dir()) / "sessions"

    def _path(self, session_id: str) -> Path:
        digest = hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        return self.root / f"{digest}.json"

    def load(self, session_id: str) -> SessionRecord | None:
        try:
            data = json.loads(self._path(session_id).read_text("utf-8"))
            record = SessionRecord.from_json(data)
        except (OSError, ValueError, TypeError):
            return None
        return record if record.session_id == session_id else None

    def save(self, record: SessionRecord) -> None:
        try:
            data = json.dumps(record.to_json()).encode()
            write_atomic(self._path(record.session_id), data, prefix=".tmp-", suffix=".json")
        except OSError as exc:
            log.warning("could not save session %s: %s", record.session_id, exc)

    def delete(self, session_id: str) -> None:
        with contextlib.suppress(OSError):
            self._path(session_id).unlink()

    def all(self) -> list[SessionRecord]:
        records = []
        try:
            files = sorted(self.root.glob("*.json"))
        except OSError:
            return []
        for path in files:
            try:
                records.append(SessionRecord.from_json(json.loads(path.read_text("utf-8"))))
            except (OSError, ValueError, TypeError):
                continue
        return records
