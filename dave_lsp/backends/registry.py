"""Which backend a session gets: the name in initializationOptions to its factory."""

from __future__ import annotations

from dave_lsp.backends.base import BackendFactory, BackendSession, PermissionAsker, SessionConfig
from dave_lsp.options import InitOptions

BACKENDS = ("claude", "openai")


def _claude(config: SessionConfig, ask: PermissionAsker) -> BackendSession:
    from dave_lsp.backends.claude import ClaudeSession

    return ClaudeSession(config, ask)


def _openai(config: SessionConfig, ask: PermissionAsker) -> BackendSession:
    from dave_lsp.backends.openai_compat import OpenAISession

    return OpenAISession(config, ask)


def factory_for(options: InitOptions) -> BackendFactory:
    return _openai if options.backend == "openai" else _claude
