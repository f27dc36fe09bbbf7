"""Every backend describes itself here, once: its name on the wire, the module and class
that implement it, its `initializationOptions` group, whether it holds a process, where
its conversations are read back from, and what of the folder and the client it uses.

Nothing else names a backend: the options parser, the session pool, `initialize`'s
capabilities, `dave/history`, ACP's file tools and trust question, and
`dave-lsp chat --backend` all read this table. A new backend is one
entry here (with its options class) and its own module; see docs/architecture.md.

The implementing modules are imported only when a session needs one (the Claude SDK
takes a second to import), so this module stays light enough for `initialize`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, TypeVar, cast

import attrs

from dave_lsp.backends.base import BackendSession, PermissionAsker, SessionConfig, ToolObserver

if TYPE_CHECKING:
    from dave_lsp.backends.history import HistoryModule


@attrs.frozen
class ClaudeOptions:
    """`initializationOptions.claude`."""

    cli_path: str | None = None


@attrs.frozen
class OpenAIOptions:
    """`initializationOptions.openai`."""

    base_url: str | None = None  # else OPENAI_BASE_URL
    api_key_env: str = "OPENAI_API_KEY"
    system_prompt: str | None = None
    # Offer the model tools (Read, Write, Edit, Bash, Glob, Grep, the editor's); false
    # for a model that cannot call them.
    tools: bool = True
    # Model requests one turn may make before it is stopped (each tool round is one).
    max_steps: int = 25


@attrs.frozen
class BackendSpec:
    """One backend: how to make its sessions and what it needs."""

    name: str  # `backend` on the wire, and the key of its initializationOptions group
    module: str
    class_name: str
    options_type: type[Any]
    # Whether each live session holds a process, and so counts against maxLiveSessions
    # and is worth keeping a warm spare of.
    holds_process: bool
    # The module that reads a session's conversation back (a `HistoryModule`,
    # backends/history.py): as `dave/history` entries, and for ACP's `session/load`.
    history: str
    # Whether it loads a trusted folder's own settings (Claude Code's hooks, MCP servers,
    # env), so an untrusted folder's first prompt is worth a trust question (ACP).
    loads_folder_settings: bool = False
    # Whether a client's file system can stand in for its Read/Write/Edit
    # (`SessionConfig.files`, ACP); else its file tools run on disk.
    client_file_tools: bool = False

    def load(self) -> type[Any]:
        """The implementing class (importing its module on first use)."""
        cls: type[Any] = getattr(importlib.import_module(self.module), self.class_name)
        return cls

    def factory(
        self, config: SessionConfig, ask: PermissionAsker, observer: ToolObserver | None = None
    ) -> BackendSession:
        session: BackendSession = self.load()(config, ask, observer)
        return session

    def history_module(self) -> HistoryModule:
        """Its history module (imported on first use; `_CHECKED` below has mypy check
        that each agrees with `HistoryModule`)."""
        return cast("HistoryModule", importlib.import_module(self.history))


BACKENDS: dict[str, BackendSpec] = {
    spec.name: spec
    for spec in (
        BackendSpec(
            "claude",
            "dave_lsp.backends.claude.session",
            "ClaudeSession",
            ClaudeOptions,
            holds_process=True,
            history="dave_lsp.backends.claude.history",
            loads_folder_settings=True,
            client_file_tools=True,
        ),
        BackendSpec(
            "openai",
            "dave_lsp.backends.openai.session",
            "OpenAISession",
            OpenAIOptions,
            holds_process=False,
            history="dave_lsp.backends.openai.history",
        ),
    )
}
DEFAULT_BACKEND = "claude"
T = TypeVar("T")


def names() -> list[str]:
    return list(BACKENDS)


def check_name(name: str) -> str:
    """`name` if it is a backend, else ValueError naming the choices."""
    if name not in BACKENDS:
        raise ValueError(f"must be one of {', '.join(BACKENDS)}")
    return name


def options_of(config: SessionConfig, cls: type[T]) -> T:
    """The session's options for a backend of options type `cls` (its defaults when the
    config was built without them, as tests and direct constructions do)."""
    options = config.backend_options
    return options if isinstance(options, cls) else cls()


if TYPE_CHECKING:
    from dave_lsp.backends.claude import history as _claude_history
    from dave_lsp.backends.openai import history as _openai_history

    # mypy checks each backend's history module against the protocol here.
    _CHECKED: tuple[HistoryModule, ...] = (_claude_history, _openai_history)
