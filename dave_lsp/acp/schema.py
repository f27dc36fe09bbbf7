"""ACP's wire shapes for dave-lsp.

Incoming params are parsed with the schema types of the `agent-client-protocol`
package (pydantic models generated from ACP's schema.json), so field names and
unions are the spec's; a mismatch is a one-line `ParamsError` naming the field.
Outgoing messages are built here as the attrs types of acp/outgoing.py (a pydantic
model per coalesced text chunk would cost the stream more than the JSON does), which
the transport writes through that module's one converter. The tests check every
message against the same schema types and against the official TypeScript SDK's
validators.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any, TypeVar

import pydantic
from acp import schema as acp

from dave_lsp import paths
from dave_lsp.acp import outgoing as out
from dave_lsp.acp.transport import RpcError
from dave_lsp.review.proposals import Proposal
from dave_lsp.rpc import INTERNAL_ERROR, ParamsError

PROTOCOL_VERSION = 1

M = TypeVar("M", bound=pydantic.BaseModel)


def parse(method: str, params: Any, model: type[M]) -> M:
    """`params` as `model`; ParamsError naming the first field that does not fit."""
    try:
        return model.model_validate(params if params is not None else {})
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "params"
        raise ParamsError(f"{method}: invalid params: {where}: {first['msg']}") from None


# -- permission modes and tool kinds ------------------------------------------------

MODES: list[out.SessionMode] = [
    out.SessionMode("default", "Default", "Ask before edits and commands"),
    out.SessionMode("acceptEdits", "Accept edits", "Edit files without asking"),
    out.SessionMode("plan", "Plan", "Read and plan; change nothing"),
    out.SessionMode("bypassPermissions", "Bypass permissions", "Run every tool without asking"),
]
MODE_IDS = frozenset(m.id for m in MODES)

# The Claude Code model aliases a client can pick from; the current model is added
# when it is not one of them.
MODELS: list[tuple[str, str]] = [
    ("default", "Default (Claude Code's choice)"),
    ("sonnet", "Sonnet"),
    ("opus", "Opus"),
    ("haiku", "Haiku"),
]

_KINDS = {
    "Read": "read",
    "NotebookRead": "read",
    "Write": "edit",
    "Edit": "edit",
    "MultiEdit": "edit",
    "NotebookEdit": "edit",
    "Bash": "execute",
    "BashOutput": "execute",
    "KillShell": "execute",
    "Grep": "search",
    "Glob": "search",
    "LS": "search",
    "WebFetch": "fetch",
    "WebSearch": "fetch",
    "Task": "think",
    "Agent": "think",
    "ExitPlanMode": "switch_mode",
}
_PATH_KEYS = ("file_path", "notebook_path", "path")


def tool_kind(tool_name: str) -> str:
    return _KINDS.get(tool_name, "other")


def locations(tool_input: dict[str, Any], cwd: str) -> list[out.Location]:
    """The files a tool use touches, absolute, for the client's follow-along."""
    for key in _PATH_KEYS:
        path = tool_input.get(key)
        if isinstance(path, str) and path:
            return [out.Location(paths.absolute(path, cwd))]
    return []


def modes_state(current: str) -> out.SessionModeState:
    return out.SessionModeState(current, MODES)


def model_option(current: str | None) -> out.SelectConfigOption:
    """The session's model as a `select` config option (category model)."""
    value = current or "default"
    options = [out.SelectOption(v, n) for v, n in MODELS]
    if all(v != value for v, _ in MODELS):
        options.insert(0, out.SelectOption(value, value))
    return out.SelectConfigOption("model", "Model", "model", current_value=value, options=options)


def mode_option(current: str) -> out.SelectConfigOption:
    """The session's permission mode as a `select` config option (category mode)."""
    options = [out.SelectOption(m.id, m.name, m.description) for m in MODES]
    return out.SelectConfigOption("mode", "Mode", "mode", current_value=current, options=options)


def config_options(permission_mode: str, model: str | None) -> list[out.SelectConfigOption]:
    """Every config option of a session, as `configOptions` lists them."""
    return [model_option(model), mode_option(permission_mode)]


def session_setup(permission_mode: str, model: str | None) -> out.SessionSetup:
    """What session/load and resume answer (and session/new and fork besides the id:
    `new_session`): the modes (for older clients) and the config options."""
    return out.SessionSetup(modes_state(permission_mode), config_options(permission_mode, model))


def new_session(session_id: str, permission_mode: str, model: str | None) -> out.NewSessionResponse:
    """What session/new and session/fork answer: the new session's id and setup."""
    setup = session_setup(permission_mode, model)
    return out.NewSessionResponse(session_id, setup.modes, setup.config_options)


# -- authentication ----------------------------------------------------------------

API_KEY = "ANTHROPIC_API_KEY"
# ACP's error for a request that needs authentication first (ErrorCode auth_required).
AUTH_REQUIRED = -32000
# `authMethods` of `initialize`: how the backend authenticates. Both are the agent's own
# (no `type`): the client has nothing to run; `authenticate` checks the method.
AUTH_METHODS: list[out.AuthMethod] = [
    out.AuthMethod(
        "anthropic-api-key",
        API_KEY,
        f"Set {API_KEY} in the agent's env in your client's config",
    ),
    out.AuthMethod(
        "claude-login",
        "Claude Code login",
        "Log in once with `claude /login` in a terminal, as the same user "
        "and with the same HOME as the agent (pass HOME in the agent's env)",
    ),
]


def authenticate(method_id: str, env: dict[str, str]) -> None:
    """`authenticate`: the backend logs itself in, so there is nothing to do but check.
    ParamsError for a method not offered; for the API key, `auth_required` saying where
    to set it when the agent's environment lacks it. The CLI's own login is the CLI's:
    a turn says when it is missing."""
    if method_id not in {m.id for m in AUTH_METHODS}:
        raise ParamsError(
            f"authenticate: invalid params: methodId: {method_id!r} is not one of "
            + ", ".join(m.id for m in AUTH_METHODS)
        )
    if method_id == "anthropic-api-key" and not env.get(API_KEY):
        missing = f"authenticate: {API_KEY} is not set: {where_to_set(API_KEY)}"
        raise RpcError(AUTH_REQUIRED, missing)


def where_to_set(variable: str) -> str:
    """The one line that says which variable to set, and where."""
    return f"set {variable} in the agent's env in your client's config"


def turn_failure(exc: Any) -> tuple[int, str]:
    """A failed turn (`events.BackendError`) as the prompt's error code and one line: for
    a missing or refused key, `auth_required` and where to set the key."""
    text = str(exc)
    variable = getattr(exc, "needs_env", None)
    if not variable:
        return INTERNAL_ERROR, text
    # The backend's hint names no client: say where an ACP client sets it.
    text = text.replace(f" (set {variable} in the backend's environment)", "")
    return AUTH_REQUIRED, f"{text}; {where_to_set(variable)}"


# What `sessionCapabilities` of `initialize` advertises: the session methods beyond
# new/load/prompt that the agent implements.
SESSION_CAPABILITIES: dict[str, Any] = {
    "list": {},
    "resume": {},
    "close": {},
    "delete": {},
    "additionalDirectories": {},
    "fork": {},  # unstable in the spec (acp/extensions.py)
}


# -- session/update ------------------------------------------------------------------


def update(session_id: str, body: out.SessionUpdate) -> out.SessionNotification:
    return out.SessionNotification(session_id, body)


def chunk(kind: out.ChunkKind, text: str, message_id: str | None = None) -> out.ContentChunk:
    """`agent_message_chunk`, `agent_thought_chunk` or `user_message_chunk` of text;
    the chunks of one message share its `messageId`."""
    return out.ContentChunk(kind, out.TextBlock(text), message_id)


def session_info(title: str, updated_at: str) -> out.SessionInfoUpdate:
    """`session_info_update`: the session's title and when it was last active."""
    return out.SessionInfoUpdate(title, updated_at)


def text_content(text: str) -> out.Content:
    return out.Content(out.TextBlock(text))


def diff_content(proposal: Proposal | None) -> list[out.ToolCallContent]:
    """A file tool's proposal as ACP `diff` content (none without its whole text)."""
    if proposal is None or proposal.proposed is None:
        return []
    # A new file has no old text: the spec's `oldText` is then null.
    old_text = proposal.original if proposal.exists else None
    return [out.Diff(proposal.path, proposal.proposed, old_text)]


def fenced(text: str, language: str = "") -> str:
    """`text` as a markdown code block whose fence is longer than any run of backticks
    in it, so a client that renders markdown shows the text as it is."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{text}\n{fence}"


def asked_in_full(tool_name: str, tool_input: dict[str, Any]) -> list[out.ToolCallContent]:
    """What a permission request asks about, whole, as text content. The title is one
    short line (cut at 120 characters with "…", whitespace folded) and `rawInput` is
    for machines, which a client need not show: the `; curl … | sh` at the end of a
    long command must still be in front of the user."""
    command = tool_input.get("command")
    if tool_name == "Bash" and isinstance(command, str):
        return [text_content(fenced(command, "sh"))]
    return [text_content(fenced(json.dumps(tool_input, indent=2, ensure_ascii=False), "json"))]


def asked_title(title: str, tool_name: str, tool_input: dict[str, Any]) -> str:
    """A permission request's title: `title` (the tool use's one-line description),
    marked shortened ("…") when it stands for a command of several lines, since the
    folded line would read as another command."""
    command = tool_input.get("command")
    if tool_name != "Bash" or not isinstance(command, str) or "\n" not in command.strip():
        return title
    first = command.strip().splitlines()[0].strip()
    return f"Bash {first[:119]}…"


def tool_call(
    tool_call_id: str,
    title: str,
    tool_name: str,
    tool_input: dict[str, Any],
    cwd: str,
    status: str = "pending",
) -> out.ToolCall:
    return out.ToolCall(
        tool_call_id,
        title or tool_name,
        tool_kind(tool_name),
        status,
        tool_input,
        locations(tool_input, cwd),
    )


def asked_tool_call(
    tool_call_id: str, title: str, tool_name: str, tool_input: dict[str, Any], cwd: str
) -> out.PermissionToolCall:
    """The tool call a permission request asks about: `tool_call`'s, pending."""
    return out.PermissionToolCall(
        tool_call_id,
        title or tool_name,
        tool_kind(tool_name),
        "pending",
        tool_input,
        locations(tool_input, cwd),
    )


def tool_call_update(
    tool_call_id: str,
    status: str | None = None,
    content: list[out.ToolCallContent] | None = None,
) -> out.ToolCallUpdate:
    return out.ToolCallUpdate(tool_call_id, status, content)


def commands_update(commands: Sequence[dict[str, str]]) -> out.AvailableCommandsUpdate:
    """The CLI's slash commands (SessionManager.list_commands) as ACP commands."""
    listed = []
    for command in commands:
        name = command.get("name", "").lstrip("/")
        if not name:
            continue
        hint = command.get("argumentHint")
        listed.append(
            out.AvailableCommand(
                name,
                command.get("description") or name,
                out.CommandInput(hint) if hint else None,
            )
        )
    return out.AvailableCommandsUpdate(listed)


# -- permission options ----------------------------------------------------------------

# Each option's id is its kind (avante counts an option as allowing only when its id
# is allow, allow_once or allow_always); the broker's decisions are mapped from them.
ALLOW_ONCE = "allow_once"
ALLOW_ALWAYS = "allow_always"
REJECT = "reject_once"
DECISIONS = {ALLOW_ONCE: "allow", ALLOW_ALWAYS: "allowAlways"}


def option(option_id: str, name: str) -> out.PermissionOption:
    """A permission option whose id is its kind."""
    return out.PermissionOption(option_id, name, option_id)


def permission_options(always_label: str | None) -> list[out.PermissionOption]:
    """Allow once, allow always (named for the rule it adds), reject; each option's id
    is its kind."""
    options = [option(ALLOW_ONCE, "Allow")]
    if always_label:
        options.append(option(ALLOW_ALWAYS, f"Always allow {always_label}"))
    options.append(option(REJECT, "Reject"))
    return options


# An approved plan's options: the kind says how much is allowed from then on, and the
# id is the kind, as for any permission; the mode each approval leaves plan mode for.
PLAN_MODES = {ALLOW_ALWAYS: "acceptEdits", ALLOW_ONCE: "default"}


def plan_options() -> list[out.PermissionOption]:
    return [
        option(ALLOW_ALWAYS, "Yes, and accept edits"),
        option(ALLOW_ONCE, "Yes, and ask before edits"),
        option(REJECT, "No, keep planning"),
    ]


def stop_reason(reason: str) -> str:
    """The session layer's stop reason as ACP's `StopReason`."""
    return {
        "end_turn": "end_turn",
        "max_tokens": "max_tokens",
        "max_turns": "max_turn_requests",
        "refusal": "refusal",
    }.get(reason, "end_turn")


__all__ = ["acp", "parse"]
