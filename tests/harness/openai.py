"""The OpenAI backend on the shipped fake model, for tests through the LSP server: the
`initializationOptions` that put a server's sessions on it."""

from __future__ import annotations

from typing import Any

from dave_lsp.testing import FakeModelServer

# The key the backend needs to start; the fake model takes any.
KEY = {"OPENAI_API_KEY": "sk-fake-for-tests"}


def openai_options(fake_model: FakeModelServer, **extra: Any) -> dict[str, Any]:
    """Options for the `server` fixture whose sessions run the OpenAI backend against the
    fake model's chat completions; `extra` adds options (or replaces these)."""
    return {
        "backend": "openai",
        "model": "fake-model",
        "openai": {"baseUrl": fake_model.url + "/v1"},
        "env": dict(KEY),
        **extra,
    }
