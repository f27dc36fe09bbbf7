"""What the ACP front end sends: the attrs types of its `session/update` bodies, its
answers to the client's requests, and its own requests (`session/request_permission`,
`elicitation/create`, the client's fs and terminals), each named and spelled as ACP's
schema names it (docs/acp.md).

The transport writes them through this module's one converter (`unstructure`):
camelCase on the wire, and a field marked `OMIT` is sent only when it is set, so the
wire is what the plain dicts before these types were. A chunk of text goes out per
16 ms of a turn: its types are slotted and their unstructure functions are generated
once, so a chunk costs about 1.5x what its dict did (docs/architecture.md).
"""

from __future__ import annotations

from typing import Any, Literal

import attrs
import cattrs

from dave_lsp import rpc

# A field with this metadata is left out of the message while it holds its default.
OMIT = {"omit_if_default": True}
# Each message kind's discriminator (`sessionUpdate`, `type`) is its first field, a
# keyword with its kind as default: written first, as it always was, and never passed.


# -- content -----------------------------------------------------------------------


@attrs.frozen
class TextBlock:
    """A `ContentBlock` of text."""

    type: Literal["text"] = attrs.field(default="text", kw_only=True)
    text: str


@attrs.frozen
class Content:
    """`ToolCallContent` `content`: a content block on a tool call."""

    type: Literal["content"] = attrs.field(default="content", kw_only=True)
    content: TextBlock


@attrs.frozen
class Diff:
    """`ToolCallContent` `diff`; `oldText` is null (sent) for a new file."""

    type: Literal["diff"] = attrs.field(default="diff", kw_only=True)
    path: str
    new_text: str
    old_text: str | None


@attrs.frozen
class Terminal:
    """`ToolCallContent` `terminal`: the client shows the terminal's output."""

    type: Literal["terminal"] = attrs.field(default="terminal", kw_only=True)
    terminal_id: str


ToolCallContent = Content | Diff | Terminal


@attrs.frozen
class Location:
    path: str


# -- session/update bodies -----------------------------------------------------------


ChunkKind = Literal["agent_message_chunk", "agent_thought_chunk", "user_message_chunk"]


@attrs.frozen
class ContentChunk:
    """`agent_message_chunk`, `agent_thought_chunk` or `user_message_chunk` (one shape,
    the spec's `ContentChunk`, under three kinds); a message's chunks share its id."""

    session_update: ChunkKind
    content: TextBlock
    message_id: str | None = attrs.field(default=None, metadata=OMIT)


@attrs.frozen
class ToolCall:
    """`tool_call`: a tool use, as the model asked for it."""

    session_update: Literal["tool_call"] = attrs.field(default="tool_call", kw_only=True)
    tool_call_id: str
    title: str
    kind: str
    status: str
    raw_input: dict[str, Any]
    locations: list[Location]


@attrs.frozen
class ToolCallUpdate:
    """`tool_call_update`: only what changed (its status, its content)."""

    session_update: Literal["tool_call_update"] = attrs.field(
        default="tool_call_update", kw_only=True
    )
    tool_call_id: str
    status: str | None = attrs.field(default=None, metadata=OMIT)
    content: list[ToolCallContent] | None = attrs.field(default=None, metadata=OMIT)


@attrs.frozen
class Cost:
    amount: float
    currency: str


@attrs.frozen
class UsageUpdate:
    session_update: Literal["usage_update"] = attrs.field(default="usage_update", kw_only=True)
    used: int
    size: int
    cost: Cost


@attrs.frozen
class CurrentModeUpdate:
    session_update: Literal["current_mode_update"] = attrs.field(
        default="current_mode_update", kw_only=True
    )
    current_mode_id: str


@attrs.frozen
class SelectOption:
    value: str
    name: str
    description: str | None = attrs.field(default=None, metadata=OMIT)


@attrs.frozen
class SelectConfigOption:
    """A session config option of type `select` (the model, the mode)."""

    id: str
    name: str
    category: str
    type: Literal["select"] = attrs.field(default="select", kw_only=True)
    current_value: str
    options: list[SelectOption]


@attrs.frozen
class ConfigOptionUpdate:
    session_update: Literal["config_option_update"] = attrs.field(
        default="config_option_update", kw_only=True
    )
    config_options: list[SelectConfigOption]


@attrs.frozen
class SessionInfoUpdate:
    session_update: Literal["session_info_update"] = attrs.field(
        default="session_info_update", kw_only=True
    )
    title: str
    updated_at: str


@attrs.frozen
class CommandInput:
    hint: str


@attrs.frozen
class AvailableCommand:
    name: str
    description: str
    input: CommandInput | None = attrs.field(default=None, metadata=OMIT)


@attrs.frozen
class AvailableCommandsUpdate:
    session_update: Literal["available_commands_update"] = attrs.field(
        default="available_commands_update", kw_only=True
    )
    available_commands: list[AvailableCommand]


SessionUpdate = (
    ContentChunk
    | ToolCall
    | ToolCallUpdate
    | UsageUpdate
    | CurrentModeUpdate
    | ConfigOptionUpdate
    | SessionInfoUpdate
    | AvailableCommandsUpdate
)


@attrs.frozen
class SessionNotification:
    """The params of `session/update`."""

    session_id: str
    update: SessionUpdate


# -- the agent's requests to the client ------------------------------------------------


@attrs.frozen
class PermissionOption:
    option_id: str
    name: str
    kind: str


@attrs.frozen
class PermissionToolCall:
    """The tool call a permission request asks about (the spec's `ToolCallUpdate`)."""

    tool_call_id: str
    title: str
    kind: str
    status: str
    raw_input: dict[str, Any]
    locations: list[Location] | None = attrs.field(default=None, metadata=OMIT)
    content: list[ToolCallContent] | None = attrs.field(default=None, metadata=OMIT)


@attrs.frozen
class RequestPermissionRequest:
    session_id: str
    tool_call: PermissionToolCall
    options: list[PermissionOption]


@attrs.frozen
class CreateElicitationRequest:
    """`elicitation/create` of a form (acp/questions.py)."""

    mode: Literal["form"] = attrs.field(default="form", kw_only=True)
    session_id: str
    tool_call_id: str
    message: str
    requested_schema: dict[str, Any]


@attrs.frozen
class ReadTextFileRequest:
    """`fs/read_text_file`: from `line` (1-based), at most `limit` lines."""

    session_id: str
    path: str
    line: int | None = attrs.field(default=None, metadata=OMIT)
    limit: int | None = attrs.field(default=None, metadata=OMIT)


@attrs.frozen
class WriteTextFileRequest:
    session_id: str
    path: str
    content: str


@attrs.frozen
class CreateTerminalRequest:
    session_id: str
    command: str
    args: list[str]
    cwd: str
    output_byte_limit: int


@attrs.frozen
class TerminalRequest:
    """The params of `terminal/output`, `wait_for_exit`, `kill` and `release`."""

    session_id: str
    terminal_id: str


@attrs.frozen
class CancelRequestNotification:
    """`$/cancel_request`: the agent stopped waiting for its request."""

    request_id: int


# -- answers to the client's requests -------------------------------------------------


@attrs.frozen
class Empty:
    """`{}`: the answer of a request that has nothing to say."""


@attrs.frozen
class PromptCapabilities:
    image: bool
    audio: bool
    embedded_context: bool


@attrs.frozen
class McpCapabilities:
    http: bool
    sse: bool


@attrs.frozen
class AgentCapabilities:
    load_session: bool
    prompt_capabilities: PromptCapabilities
    mcp_capabilities: McpCapabilities
    # The session methods beyond new/load/prompt, each `{}` (schema.SESSION_CAPABILITIES).
    session_capabilities: dict[str, Any]


@attrs.frozen
class Implementation:
    name: str
    title: str
    version: str


@attrs.frozen
class AuthMethod:
    """An agent's own auth method (no `type`: the client has nothing to run)."""

    id: str
    name: str
    description: str


@attrs.frozen
class InitializeResponse:
    protocol_version: int
    agent_capabilities: AgentCapabilities
    agent_info: Implementation
    auth_methods: list[AuthMethod]


@attrs.frozen
class SessionMode:
    id: str
    name: str
    description: str


@attrs.frozen
class SessionModeState:
    current_mode_id: str
    available_modes: list[SessionMode]


@attrs.frozen
class SessionSetup:
    """The answer of session/load and session/resume: the modes, for older clients,
    and the config options."""

    modes: SessionModeState
    config_options: list[SelectConfigOption]


@attrs.frozen
class NewSessionResponse:
    """The answer of session/new and session/fork: the new session's id and setup."""

    session_id: str
    modes: SessionModeState
    config_options: list[SelectConfigOption]


@attrs.frozen
class SetConfigOptionResponse:
    config_options: list[SelectConfigOption]


@attrs.frozen
class SessionInfo:
    """An entry of `session/list`."""

    session_id: str
    cwd: str
    additional_directories: list[str] | None = attrs.field(default=None, metadata=OMIT)
    title: str | None = attrs.field(default=None, metadata=OMIT)
    updated_at: str | None = attrs.field(default=None, metadata=OMIT)


@attrs.frozen
class ListSessionsResponse:
    sessions: list[SessionInfo]


@attrs.frozen
class PromptResponse:
    stop_reason: str


# -- dave-lsp's extensions (acp/extensions.py): LSP mode's results under ACP's names.


@attrs.frozen
class Conflict:
    path: str
    message: str


@attrs.frozen
class RewindResponse:
    turn: int
    restored: list[str]
    conflicts: list[Conflict]


@attrs.frozen
class ChangedFile:
    path: str
    status: str
    added: int
    removed: int
    diff: str


@attrs.frozen
class ChangesResponse:
    session_id: str
    turn: int | None  # null (sent) when nothing was kept
    files: list[ChangedFile]


@attrs.frozen
class RevertChangesResponse:
    reverted: list[str]
    conflicts: list[Conflict]


# -- the converter ---------------------------------------------------------------------


def _passed_on(value: dict[str, Any]) -> dict[str, Any]:
    # A tool's input or a JSON schema goes out as it came: not copied member by member.
    return value


def make_converter() -> cattrs.Converter:
    """rpc.py's camelCase converter, which leaves out a field marked `OMIT` while it
    holds its default; a union is written as the class its value is, and objects of
    JSON (`dict[str, Any]`) as they are."""
    conv = rpc.make_converter()
    conv.register_unstructure_hook_func(lambda t: t == dict[str, Any], _passed_on)
    return conv


converter = make_converter()


def unstructure(value: Any) -> Any:
    """An outgoing message as JSON's values; a plain JSON value (an error's data) as
    it is, not copied."""
    return converter.unstructure(value) if attrs.has(type(value)) else value
