"""The permission-mode gate: what a session's mode lets a built-in tool use do before any
rule is asked, the decision Claude Code's CLI makes for its own tools.

Both places that decide it for a tool the CLI does not run call `gate`: the OpenAI
backend for the tools it runs itself (backends/openai/tools.py), and the ACP client's
file tools, which the CLI sees as MCP tools and would always ask for
(acp/files.ClientFiles.runs_unasked). What is not let through here goes to the
permission policy, which applies the settings and session rules and asks the user.

- `bypassPermissions`: everything runs.
- A read-only tool on a path in the session's folders (its cwd and additional
  directories) runs, in every mode; elsewhere it asks.
- `plan`: anything else is refused.
- `acceptEdits`: a file edit in the session's folder runs, unless the file makes code run
  later (.git/hooks, .envrc, .mcp.json, ...: the mode is for edits the user reviews
  later, not for code); everything else asks.
- `default`: everything else asks.
"""

from __future__ import annotations

from typing import Final, Literal

from dave_lsp import paths
from dave_lsp.permissions.rules import runs_code_later
from dave_lsp.tools.catalog import FILE_EDITS, READ_ONLY

BYPASS: Final = "bypassPermissions"
PLAN: Final = "plan"
ACCEPT_EDITS: Final = "acceptEdits"

Verdict = Literal["allow", "ask", "deny"]


def gate(
    tool_name: str,
    target: str | None,
    mode: str,
    folders: str | tuple[str, ...],
    *,
    guarded_reads: bool = False,
) -> Verdict:
    """What `mode` says about one tool use: run it without asking, ask (the policy then
    applies the rules), or refuse it. `target` is the path the use names (catalog's
    `target_of`: "" is the session's folder), None when it must name one and does not
    (it asks). `folders` are the session's (SessionConfig.folders: its cwd first, then
    ACP's additionalDirectories), or the one folder: inside any is inside the session.
    With `guarded_reads`, a read of a file that makes code run later asks too, as the
    ACP client's Read always has (those files often hold secrets: .env*)."""
    if mode == BYPASS:
        return "allow"
    if isinstance(folders, str):
        folders = (folders,)
    if target is None:
        return "ask"
    if tool_name in READ_ONLY:
        allowed = _editable(target, folders) if guarded_reads else paths.inside_any(target, folders)
        return "allow" if allowed else "ask"
    if mode == PLAN:
        return "deny"
    if mode == ACCEPT_EDITS and tool_name in FILE_EDITS:
        return "allow" if _editable(target, folders) else "ask"
    return "ask"


def _editable(target: str, folders: tuple[str, ...]) -> bool:
    """Whether `target` lies in one of the session's folders (links followed) and is not
    a file that makes code run later (named by its parts below that folder)."""
    real = paths.real(target, folders[0])
    return any(
        paths.inside(real, folder) and not runs_code_later(real, folder) for folder in folders
    )
