"""`initializationOptions`: every setting the server takes, fully defaulted.

One attrs class per group, camelCase on the wire, structured with the protocol's
strict converter so a wrong type fails `initialize` with a message naming the field.
Each backend's group (`claude`, `openai`, ...) and its type come from the backend
registry, so a new backend adds its options there, not here.
"""

from __future__ import annotations

from typing import Any, Literal

import attrs

from dave_lsp import trust
from dave_lsp.backends import registry
from dave_lsp.review.checkpoints import CheckpointOptions
from dave_lsp.rpc import ParamsError, PermissionMode, camel, converter, describe_error


def _default_backend_options() -> dict[str, Any]:
    return {name: spec.options_type() for name, spec in registry.BACKENDS.items()}


@attrs.frozen
class InitOptions:
    backend: str = registry.DEFAULT_BACKEND
    model: str | None = None
    permission_mode: PermissionMode = "default"
    cwd: str | None = None
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
    # The --tcp/--ws transports' secret; dave_lsp/lsp/sockets.py checks it before initialize.
    token: str | None = None
    # How much of the server's log reaches the client as window/logMessage.
    log_level: Literal["error", "warning", "info", "debug"] = "warning"
    # Folders (and everything under them) whose Claude Code project settings load for
    # this run (trust.py); others run with the user's own settings only.
    trusted_folders: list[str] = attrs.field(factory=list)
    # Checkpoints of the session folders before each turn, so Bash's changes are
    # recorded too (review/checkpoints.py): on/off, and the bounds of a folder.
    checkpoints: CheckpointOptions = attrs.field(factory=CheckpointOptions)
    # MCP servers every session gets, by name, in the shapes of ACP's (stdio: command,
    # args, env; http and sse: type, url, headers): Claude Code and the OpenAI agent.
    mcp_servers: dict[str, Any] = attrs.field(factory=dict)
    # Each backend's group by backend name, structured as the registry's options type.
    backend_options: dict[str, Any] = attrs.field(factory=_default_backend_options)


def _unknown_keys(raw: dict[str, Any], cls: type, prefix: str = "") -> list[str]:
    known = {camel(f.name) for f in attrs.fields(cls)} - {"backendOptions"}
    unknown = []
    for key, value in raw.items():
        spec = registry.BACKENDS.get(key) if not prefix else None
        if spec is not None:
            if isinstance(value, dict):
                unknown += _unknown_keys(value, spec.options_type, f"{key}.")
        elif key == "checkpoints" and not prefix and isinstance(value, dict):
            unknown += _unknown_keys(value, CheckpointOptions, "checkpoints.")
        elif key not in known:
            unknown.append(prefix + key)
    return unknown


def parse_options(raw: Any) -> tuple[InitOptions, list[str]]:
    """Structure initializationOptions; returns the options and any unknown keys."""
    if raw is None:
        return InitOptions(), []
    if not isinstance(raw, dict):
        raise ParamsError("initializationOptions must be an object")
    groups = {name: raw[name] for name in registry.BACKENDS if name in raw}
    try:
        options = converter.structure(
            {k: v for k, v in raw.items() if k not in groups and k != "backendOptions"},
            InitOptions,
        )
    except Exception as exc:
        raise ParamsError(f"initializationOptions.{describe_error(exc)}") from None
    try:
        registry.check_name(options.backend)
    except ValueError as exc:
        raise ParamsError(f"initializationOptions.backend: {exc}") from None
    backend_options = dict(options.backend_options)
    for name, value in groups.items():
        try:
            backend_options[name] = converter.structure(value, registry.BACKENDS[name].options_type)
        except Exception as exc:
            raise ParamsError(f"initializationOptions.{describe_error(exc, name)}") from None
    options = attrs.evolve(options, backend_options=backend_options)
    for name, least in (("max_queued_queries", 1), ("max_live_sessions", 1), ("prewarm", 0)):
        if getattr(options, name) < least:
            raise ParamsError(f"initializationOptions.{camel(name)}: must be at least {least}")
    if options.mcp_servers:
        # Imported here: only a client that names servers pays for it at initialize.
        from dave_lsp.backends.openai.mcp_tools import problem

        for name, spec in options.mcp_servers.items():
            if why := problem(name, spec):
                raise ParamsError(f"initializationOptions.mcpServers.{name}: {why}")
    try:
        trust.normalized(options.trusted_folders)
    except trust.TrustError as exc:
        raise ParamsError(f"initializationOptions.trustedFolders{exc}") from None
    return options, _unknown_keys(raw, InitOptions)


def env_pairs(pairs: list[str], env: dict[str, str] | None = None) -> dict[str, str]:
    """`--env KEY=VALUE` flags (of `chat` and `acp`) over `env`; ValueError naming the
    first one that is not KEY=VALUE."""
    merged = dict(env or {})
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--env takes KEY=VALUE, got {pair!r}")
        merged[key] = value
    return merged
