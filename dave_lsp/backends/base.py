"""The seam between a session actor and the model client it owns.

A `BackendSession` is owned by exactly one `SessionActor` task: `open`, `query` and
`close` are only ever called from that task. `interrupt` may be called from another
task while `query` runs, and must make `query` finish soon (raising TurnCancelled);
`commands` may be called from another task too (it only asks the live client).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Protocol

import attrs

from dave_lsp.events import Event
from dave_lsp.permissions.rules import Suggestion
from dave_lsp.tools.editor import EditorTools, FileTools


@attrs.frozen
class ChatMessage:
    """One turn of the editor's transcript (`messages` in dave/query)."""

    role: str  # "user" | "assistant"
    content: str


@attrs.frozen
class Attachment:
    """An image sent with a prompt (`dave/query` `attachments`), checked already."""

    media_type: str
    data: str  # base64


@attrs.frozen
class PermissionAnswer:
    """The user's (or a rule's) answer to a permission request."""

    allow: bool
    reason: str = ""
    updated_input: dict[str, Any] | None = None
    interrupt: bool = False
    # The permission mode the session switches to with this allow (an approved plan).
    set_mode: str | None = None


def mode_after(tool_name: str, answer: PermissionAnswer) -> str | None:
    """The permission mode a session is in after `answer`, when the answer changes it;
    None: unchanged. Approving a plan (ExitPlanMode) leaves plan mode, as the CLI does:
    for the mode the user chose with the approval, else `default`. The one place this is
    decided: the session layer and the Claude backend both ask it."""
    if tool_name == "ExitPlanMode" and answer.allow:
        return answer.set_mode or "default"
    return None


# Called by a backend when the model wants to run a tool: (tool_use_id, tool_name,
# input, the backend's suggestions for "allow always", the Agent tool use whose
# subagent asks or None) -> the answer. The session layer applies the rules and emits
# the permission events.
PermissionAsker = Callable[
    [str, str, dict[str, Any], list[Suggestion], str | None], Awaitable[PermissionAnswer]
]


class ToolObserver(Protocol):
    """The session's hooks around a tool the backend runs (file tools at least: Write,
    Edit, MultiEdit, NotebookEdit), in every permission mode."""

    async def before_tool(
        self, tool_use_id: str, tool_name: str, tool_input: dict[str, Any]
    ) -> None:
        """The tool is about to run (after any permission was given)."""
        ...

    async def after_tool(self, tool_use_id: str, tool_name: str) -> str | None:
        """The tool ran; returns text the model is to be told with its result, if any."""
        ...


@attrs.frozen
class SessionConfig:
    """What a backend session needs to start; fixed for the session's life."""

    session_id: str
    cwd: str
    model: str | None
    permission_mode: str
    env: dict[str, str]
    backend: str = "claude"
    # That backend's initializationOptions group (registry.py: its `options_type`).
    backend_options: object = None
    request_timeout_seconds: float | None = None
    # The editor's read-only tools the model may use (tools/editor.py), if the client
    # offers any.
    editor: EditorTools | None = None
    # The backend's own conversation id to continue (Claude: `resume`).
    resume: str | None = None
    # With `resume`: continue a copy of that conversation holding only its first this
    # many turns, the original untouched (dave/rewind, dave/fork; Claude: a fork resumed
    # at the last message of that turn). None: all of it, in place.
    resume_turns: int | None = None
    # MCP servers the client asked for (ACP's session/new `mcpServers`), by name, in
    # the Claude SDK's `McpServerConfig` shape.
    mcp_servers: dict[str, Any] = attrs.field(factory=dict)
    # File tools in place of the backend's Read/Write/Edit (an ACP client's file
    # system: acp/files.py), when the client offers one.
    files: FileTools | None = None
    # The folder is trusted (trust.py): the backend may load its project settings
    # (Claude Code's hooks, MCP servers, env). Untrusted: the user's own settings only.
    trusted: bool = False
    # More folders whose files count as inside the session (ACP's additionalDirectories:
    # absolute; the CLI's `add_dirs`).
    additional_directories: tuple[str, ...] = ()

    @property
    def folders(self) -> tuple[str, ...]:
        """The session's folders: its cwd, then the additional ones."""
        return (self.cwd, *self.additional_directories)


class BackendSession(Protocol):
    """One conversation with one model client."""

    @property
    def alive(self) -> bool:
        """False once the backend can no longer serve queries (its process died);
        the actor then closes it and opens it again for the next query."""
        ...

    async def open(self, warm_up: bool = False) -> str | None:
        """Connect; raise BackendError with an actionable message on failure.

        `warm_up` says nobody waits on this open (a spare, an explicit new session): a
        backend may then do ahead of time work that a first query would pay for.

        Returns a line for the user when something changed on the way (for example the
        conversation to resume was gone and a new one started), else None.
        """
        ...

    async def configure(self, *, permission_mode: str | None, model: str | None) -> None:
        """Change the permission mode or model of the live client, keeping the conversation."""
        ...

    def query(
        self,
        prompt: str,
        transcript: Sequence[ChatMessage],
        direct: Callable[[Event], None] | None = None,
        attachments: Sequence[Attachment] = (),
    ) -> AsyncIterator[Event]:
        """Send the prompt (with its images) and yield the turn's events, ending with Done.

        `transcript` is the editor's earlier conversation, oldest first; a backend uses it
        only while it holds no conversation of its own (the protocol's first-query rule).
        A backend may hand an event to `direct` instead of yielding it, where that saves
        work per token and keeps the events in order; the caller treats both alike.
        Raises BackendError on failure and TurnCancelled after `interrupt`.
        """
        ...

    async def interrupt(self) -> None:
        """Ask the running turn to stop; safe to call when nothing runs."""
        ...

    async def commands(self) -> list[dict[str, str]]:
        """The backend's slash commands, `{name, description, argumentHint}` ([]: none)."""
        ...

    async def close(self) -> None:
        """Release everything the session holds (processes, history)."""
        ...


BackendFactory = Callable[[SessionConfig, PermissionAsker, ToolObserver | None], BackendSession]
