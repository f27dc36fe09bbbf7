"""`initializationOptions`: every setting the server takes, fully defaulted.

One attrs class per group, camelCase on the wire, structured with the protocol's
strict converter so a wrong type fails `initialize` with a message naming the field.
"""

from __future__ import annotations

from typing import Any, Literal

import attrs

from dave_lsp.protocol import ParamsError, camel, converter, describe_error

PermissionMode = Literal["default", "acceptEdits", "plan", "bypassPermissions"]
PERMISSION_MODES = ("default", "acceptEdits", "plan", "bypassPermissions")


@attrs.frozen
class ClaudeOptions:
    cli_path: str | None = None


@attrs.frozen
class OpenAIOptions:
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    system_prompt: str | None = None


@attrs.frozen
class InitOptions:
    backend: Literal["claude", "openai"] = "claude"
    model: str | None = None
    permission_mode: PermissionMode = "default"
    cwd: str | None = None
    claude: ClaudeOptions = ClaudeOptions()
    openai: OpenAIOptions = OpenAIOptions()
    env: dict[str, str] = attrs.field(factory=dict)
    # How many queries may wait behind a running one on the same session.
    max_queued_queries: int = 32
    request_timeout_seconds: float | None = None
    permission_timeout_seconds: float | None = None
    # Bounded processes: at most this many sessions hold a live backend client.
    max_live_sessions: int = 8
    idle_timeout_seconds: float | None = 900
    # Connected spare clients kept ready for new sessions with the default settings.
    prewarm: int = 1
    # Where session records live (default: $XDG_STATE_HOME/dave-lsp).
    state_dir: str | None = None
    # How much of the server's log reaches the client as window/logMessage.
    log_level: Literal["error", "warning", "info", "debug"] = "warning"


def _unknown_keys(raw: dict[str, Any], cls: type, prefix: str = "") -> list[str]:
    known = {camel(f.name): f for f in attrs.fields(cls)}
    unknown = []
    for key, value in raw.items():
        field = known.get(key)
        if field is None:
            unknown.append(prefix + key)
        elif attrs.has(field.type) and isinstance(value, dict):
            unknown += _unknown_keys(value, field.type, f"{prefix}{key}.")
    return unknown


def parse_options(raw: Any) -> tuple[InitOptions, list[str]]:
    """Structure initializationOptions; returns the options and any unknown keys."""
    if raw is None:
        return InitOptions(), []
    if not isinstance(raw, dict):
        raise ParamsError("initializationOptions must be an object")
    try:
        options = converter.structure(raw, InitOptions)
    except Exception as exc:
        raise ParamsError(f"initializationOptions.{describe_error(exc)}") from None
    for name, least in (("max_queued_queries", 1), ("max_live_sessions", 1), ("prewarm", 0)):
        if getattr(options, name) < least:
            raise ParamsError(f"initializationOptions.{camel(name)}: must be at least {least}")
    return options, _unknown_keys(raw, InitOptions)
