"""ACP's `session/list`: the sessions the state directory remembers, newest first, as
the schema's `SessionInfo` (id, folder, additional directories, title, last activity).
"""

from __future__ import annotations

import os
from typing import Any

from dave_lsp.session.manager import SessionManager


def session_list(manager: SessionManager, cwd: str | None) -> dict[str, Any]:
    """The `session/list` answer; `cwd`: only the sessions of that folder."""
    # The records hold the additional directories (SessionInfo, LSP mode's, does not).
    folders = {record.session_id: record.additional_directories for record in manager.store.all()}
    sessions = [
        {
            "sessionId": info.session_id,
            "cwd": info.cwd,
            "additionalDirectories": folders.get(info.session_id) or None,
            "title": info.title or None,
            "updatedAt": info.last_active_at,
        }
        for info in manager.list()
        if cwd is None or os.path.normpath(cwd) == os.path.normpath(info.cwd)
    ]
    return {"sessions": [{k: v for k, v in s.items() if v is not None} for s in sessions]}
