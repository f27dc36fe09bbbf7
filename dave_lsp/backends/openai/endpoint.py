"""Where an OpenAI backend's endpoint is and how it is reached: the base URL
(`openai.baseUrl`, else OPENAI_BASE_URL), the API key (the variable `openai.apiKeyEnv`
names), both looked up first in `initializationOptions.env`, then in the server's
environment; the client with its timeouts; and the URL as it may be shown.

A key is required because the official client requires one; local servers that ignore
keys (Ollama, llama.cpp) accept any non-empty value. The key is remembered by `logs` like
every secret, so no message or log shows it.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

import openai

from dave_lsp import logs
from dave_lsp.backends.base import SessionConfig
from dave_lsp.backends.openai.stream import CONNECT_TIMEOUT_SECONDS, DEFAULT_TIMEOUT_SECONDS
from dave_lsp.backends.registry import OpenAIOptions
from dave_lsp.events import BackendError


def connect(config: SessionConfig, settings: OpenAIOptions) -> tuple[openai.AsyncOpenAI, str]:
    """Check the settings and build the client; the client and the API key. No request
    is sent."""
    url = base_url(config, settings)
    if not url:
        raise BackendError(
            "no OpenAI-compatible endpoint configured: set initializationOptions.openai.baseUrl"
            " or OPENAI_BASE_URL (e.g. http://localhost:11434/v1 for Ollama)"
        )
    if settings.max_steps < 1:
        raise BackendError("initializationOptions.openai.maxSteps must be at least 1")
    key_env = settings.api_key_env or "OPENAI_API_KEY"
    key = env(config, key_env)
    if not key:
        named = (
            "or name another with openai.apiKeyEnv"
            if key_env == "OPENAI_API_KEY"
            else "named by openai.apiKeyEnv"
        )
        raise BackendError(
            f"set the environment variable {key_env} ({named})"
            " in initializationOptions.env or the server's environment;"
            " any non-empty value works for local servers such as Ollama"
        )
    logs.remember_secret(key)
    total = timeout_seconds(config)
    client = openai.AsyncOpenAI(
        base_url=url,
        api_key=key,
        timeout=openai.Timeout(total, connect=min(total, CONNECT_TIMEOUT_SECONDS)),
        # A retry would replay a turn the user may already be reading, and hides the
        # real error behind a long wait; the user retries instead.
        max_retries=0,
    )
    return client, key


def env(config: SessionConfig, name: str) -> str | None:
    """A variable of initializationOptions.env, else of the server's environment."""
    value = config.env.get(name)
    return value if value is not None else os.environ.get(name)


def base_url(config: SessionConfig, settings: OpenAIOptions) -> str:
    return (settings.base_url or env(config, "OPENAI_BASE_URL") or "").strip()


def timeout_seconds(config: SessionConfig) -> float:
    configured = config.request_timeout_seconds
    return configured if configured and configured > 0 else DEFAULT_TIMEOUT_SECONDS


def display_url(config: SessionConfig, settings: OpenAIOptions) -> str:
    """The base URL without credentials or query, safe to show."""
    raw = base_url(config, settings)
    try:
        parts = urlsplit(raw)
    except ValueError:
        return raw
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", "")) or raw
