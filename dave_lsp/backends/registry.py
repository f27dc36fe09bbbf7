"""Which backend a session gets: the name in initializationOptions to its factory."""

from __future__ import annotations

from dave_lsp.backends.base import BackendFactory, BackendSession, PermissionAsker, SessionConfig

BACKENDS = ("claude", "openai")  # the first is the default


def _claude(config: SessionConfig, ask: PermissionAsker) -> BackendSession:
    from dave_lsp.backends.claude import ClaudeSession

    return ClaudeSession(config, ask)


def _openai(config: SessionConfig, ask: PermissionAsker) -> BackendSession:
    from dave_lsp.backends.openai_compat import OpenAISession

    return OpenAISession(config, ask)


FACTORIES: dict[str, BackendFactory] = {"claude": _claude, "openai": _openai}
