"""ACP's `session/list`: the sessions the state directory remembers, newest first, as
the schema's `SessionInfo` (id, folder, additional directories, title, last activity).
"""

from __future__ import annotations

import os

from dave_lsp.acp import outgoing as out
from dave_lsp.session.manager import SessionManager


def session_list(manager: SessionManager, cwd: str | None) -> out.ListSessionsResponse:
    """The `session/list` answer; `cwd`: only the sessions of that folder."""
    # The records hold the additional directories (SessionInfo, LSP mode's, does not).
    folders = {record.session_id: record.additional_directories for record in manager.store.all()}
    return out.ListSessionsResponse(
        [
            out.SessionInfo(
                info.session_id,
                info.cwd,
                list(folders.get(info.session_id) or ()) or None,
                info.title or None,
                info.last_active_at,
            )
            for info in manager.list()
            if cwd is None or os.path.normpath(cwd) == os.path.normpath(info.cwd)
        ]
    )
