"""The wire protocol's types (docs/protocol.md), method names, and the converter.

Params are structured strictly: a number is not silently a string, and every error
names the field (`sessionId: expected a string`), because the message goes to a
person who has to fix their client.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from dave_lsp.events import Usage

VERSION = 1

QUERY = "dave/query"
PERMISSION = "dave/permission"
DELETE_SESSION = "dave/deleteSession"
NEW_SESSION = "dave/newSession"
LIST_SESSIONS = "dave/listSessions"
SET_PERMISSION_MODE = "dave/setPermissionMode"
SET_MODEL = "dave/setModel"
LIST_COMMANDS = "dave/listCommands"
LIST_RULES = "dave/listRules"
REMOVE_RULE = "dave/removeRule"
CHANGES = "dave/changes"
REVERT_CHANGES = "dave/revertChanges"
HISTORY = "dave/history"
TRUST_FOLDER = "dave/trustFolder"
FOLDER_TRUST = "dave/folderTrust"
METHODS = [
    QUERY,
    PERMISSION,
    DELETE_SESSION,
    NEW_SESSION,
    LIST_SESSIONS,
    SET_PERMISSION_MODE,
    SET_MODEL,
    LIST_RULES,
    REMOVE_RULE,
    LIST_COMMANDS,
    CHANGES,
    REVERT_CHANGES,
    HISTORY,
    TRUST_FOLDER,
    FOLDER_TRUST,
]
PermissionMode = Literal["default", "acceptEdits", "plan", "bypassPermissions"]

# JSON-RPC / LSP error codes the protocol uses.
INVALID_PARAMS = -32602
METHOD_NOT_FOUND = -32601
INVALID_REQUEST = -32600
SERVER_NOT_INITIALIZED = -32002
REQUEST_CANCELLED = -32800
REQUEST_FAILED = -32803

MAX_SESSION_ID = 256

T = TypeVar("T")


class ParamsError(ValueError):
    """Params that do not fit the protocol; the message names the field."""


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


@attrs.frozen
class WireMessage:
    role: Literal["user", "assistant"]
    content: str


@attrs.frozen
class Position:
    line: int
    character: int


@attrs.frozen
class Range:
    start: Position
    end: Position


@attrs.frozen
class ActiveFile:
    path: str
    language_id: str | None = None
    selection: Range | None = None
    selected_text: str | None = None


@attrs.frozen
class Mention:
    path: str
    start_line: int | None = None
    end_line: int | None = None


@attrs.frozen
class QueryContext:
    """The editor's context with a prompt (session/context.py renders it)."""

    active_file: ActiveFile | None = None
    mentions: list[Mention] = attrs.field(factory=list)


@attrs.frozen
class AttachmentParam:
    type: Literal["image"]
    media_type: str
    data: str


@attrs.frozen
class QueryParams:
    session_id: str
    prompt: str
    messages: list[WireMessage] = attrs.field(factory=list)
    work_done_token: str | int | None = None
    cwd: str | None = None
    model: str | None = None
    context: QueryContext | None = None
    attachments: list[AttachmentParam] = attrs.field(factory=list)


@attrs.frozen
class PermissionParams:
    request_id: str
    decision: Literal["allow", "allowAlways", "deny"]
    reason: str = ""
    updated_input: dict[str, Any] | None = None
    # The whole file as the user accepted it after editing the proposal.
    edited_content: str | None = None
    # AskUserQuestion's answers, by question: a label, labels, or the user's words.
    answers: dict[str, Any] | None = None
    # The session's mode after an approved plan (ExitPlanMode).
    permission_mode: PermissionMode | None = None


@attrs.frozen
class DeleteSessionParams:
    session_id: str


@attrs.frozen
class NewSessionParams:
    session_id: str | None = None
    cwd: str | None = None
    model: str | None = None
    permission_mode: PermissionMode | None = None
    backend: str | None = None  # checked against the backend registry by the handler
    resume: str | None = None


@attrs.frozen
class SetPermissionModeParams:
    session_id: str
    mode: PermissionMode


@attrs.frozen
class SetModelParams:
    session_id: str
    model: str | None


@attrs.frozen
class NoParams:
    """A method that takes no params (any given are ignored)."""


@attrs.frozen
class ListCommandsParams:
    session_id: str | None = None


@attrs.frozen
class ListRulesParams:
    session_id: str


@attrs.frozen
class RemoveRuleParams:
    session_id: str
    rule: str


@attrs.frozen
class ChangesParams:
    session_id: str
    turn: int | None = None


@attrs.frozen
class HistoryParams:
    session_id: str


@attrs.frozen
class TrustFolderParams:
    path: str
    trusted: bool


@attrs.frozen
class FolderTrustParams:
    path: str


@attrs.frozen
class HunkParam:
    path: str
    index: int


@attrs.frozen
class RevertChangesParams:
    session_id: str
    turn: int | None = None
    paths: list[str] | None = None
    hunks: list[HunkParam] | None = None


@attrs.frozen
class SessionInfo:
    session_id: str
    state: Literal["idle", "working", "needsInput", "evicted"]
    backend: str
    cwd: str
    model: str | None
    permission_mode: str
    created_at: str
    last_active_at: str
    turns: int
    title: str
    backend_session_id: str
    cost_usd: float = 0.0


@attrs.frozen
class ToolResultInfo:
    tool_use_id: str
    tool_name: str
    summary: str
    is_error: bool


@attrs.frozen
class QueryResult:
    session_id: str
    text: str
    stop_reason: str
    tool_results: list[ToolResultInfo]
    usage: Usage
    cost_usd: float
    duration_ms: int
    backend_session_id: str
    # The files this turn's file tools changed (changes.FileChange.summary_json()).
    changes: list[dict[str, Any]] = attrs.field(factory=list)


def _strict(kind: type, label: str) -> Any:
    def hook(value: Any, _: Any) -> Any:
        # bool is an int in Python; a JSON true is never a valid number here.
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise TypeError(f"expected {label}")
        return value

    return hook


def _token(value: Any, _: Any) -> str | int:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise TypeError("expected a string or an integer")
    return value


def _float(value: Any, _: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError("expected a number")
    return float(value)


def _dict(value: Any, _: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError("expected an object")
    return value


def _camel_overrides(cls: type) -> dict[str, Any]:
    return {a.name: override(rename=camel(a.name)) for a in attrs.fields(cls)}


def make_converter() -> cattrs.Converter:
    """A converter with strict primitives and camelCase keys for every attrs class."""
    conv = cattrs.Converter(forbid_extra_keys=False)
    conv.register_structure_hook(str, _strict(str, "a string"))
    conv.register_structure_hook(int, _strict(int, "an integer"))
    conv.register_structure_hook(bool, _strict(bool, "true or false"))
    conv.register_structure_hook(float, _float)
    conv.register_structure_hook_func(
        lambda t: t == (str | int | None), lambda v, t: None if v is None else _token(v, t)
    )
    conv.register_structure_hook_func(lambda t: t == dict[str, Any], _dict)
    # cattrs would iterate a string character by character: arrays are checked.
    conv.register_structure_hook_func(lambda t: t == list[WireMessage], _list_of(conv, WireMessage))
    conv.register_structure_hook_func(lambda t: t == list[str], _list_of(conv, str))
    conv.register_structure_hook_func(lambda t: t == list[HunkParam], _list_of(conv, HunkParam))
    conv.register_structure_hook_func(lambda t: t == list[Mention], _list_of(conv, Mention))
    conv.register_structure_hook_func(
        lambda t: t == list[AttachmentParam], _list_of(conv, AttachmentParam)
    )
    conv.register_structure_hook_func(lambda t: t == dict[str, str], _string_map)

    def structure_factory(cls: type) -> Any:
        fields: Any = make_dict_structure_fn(cls, conv, **_camel_overrides(cls))

        def hook(value: Any, kind: Any) -> Any:
            if not isinstance(value, dict):
                raise TypeError("expected an object")
            return fields(value, kind)

        return hook

    def unstructure_factory(cls: type) -> Any:
        return make_dict_unstructure_fn(cls, conv, **_camel_overrides(cls))

    conv.register_structure_hook_factory(attrs.has, structure_factory)
    conv.register_unstructure_hook_factory(attrs.has, unstructure_factory)
    return conv


def _string_map(value: Any, _: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise TypeError("expected an object of strings")
    for key, item in value.items():
        if not isinstance(item, str):
            raise TypeError(f"{key}: expected a string")
    return value


def describe_error(exc: BaseException, path: str = "") -> str:
    """The first problem inside a cattrs error as `field.path: what is wrong`."""
    if isinstance(exc, cattrs.BaseValidationError) and exc.exceptions:
        sub = exc.exceptions[0]
        for note in getattr(sub, "__notes__", []):
            if isinstance(note, cattrs.AttributeValidationNote):
                return describe_error(
                    sub, f"{path}.{camel(note.name)}" if path else camel(note.name)
                )
            if isinstance(note, cattrs.IterableValidationNote):
                return describe_error(sub, f"{path}[{note.index}]")
        return describe_error(sub, path)
    if isinstance(exc, KeyError):
        what = "is required"
    elif "not in literal" in str(exc):
        choices = str(exc).split("Literal[", 1)[-1].rstrip("]").replace("'", "")
        what = f"must be one of {choices}"
    else:
        what = str(exc)
    return f"{path}: {what}" if path else what


def _list_of(conv: cattrs.Converter, item: type) -> Any:
    def hook(value: Any, _: Any) -> list[Any]:
        # cattrs would happily iterate a string character by character.
        if not isinstance(value, list):
            raise TypeError("expected an array")
        items: list[Any] = []
        for index, entry in enumerate(value):
            try:
                items.append(conv.structure(entry, item))
            except Exception as exc:
                exc.add_note(cattrs.IterableValidationNote(f"index {index}", index, item))
                raise cattrs.IterableValidationError("invalid item", [exc], list) from None
        return items

    return hook


converter = make_converter()


def structure(method: str, params: Any, cls: type[T]) -> T:
    """Structure `params` as `cls` or raise ParamsError with a one-line message."""
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise ParamsError(f"{method}: params must be an object")
    try:
        value = converter.structure(params, cls)
    except (cattrs.BaseValidationError, TypeError, ValueError, KeyError) as exc:
        raise ParamsError(f"{method}: invalid params: {describe_error(exc)}") from None
    if isinstance(getattr(value, "session_id", None), str):
        check_session_id(method, value.session_id)  # type: ignore[attr-defined]
    return value


def check_session_id(method: str, session_id: str) -> None:
    if not session_id:
        raise ParamsError(f"{method}: invalid params: sessionId: must not be empty")
    if len(session_id) > MAX_SESSION_ID:
        raise ParamsError(
            f"{method}: invalid params: sessionId: at most {MAX_SESSION_ID} characters "
            f"(got {len(session_id)})"
        )


def unstructure(value: Any) -> Any:
    return converter.unstructure(value)


def _keep_raw(obj: dict[str, Any], cls: type) -> Any:
    # JSON-RPC lets a request omit params; extra members are ignored. Either used to
    # fail here, and the request went unanswered.
    names = {field.name for field in attrs.fields(cls)}
    values = {name: None for name in names & {"params", "result"}}
    values.update((key, value) for key, value in obj.items() if key in names)
    return cls(**values)


def rpc_converter() -> cattrs.Converter:
    """pygls's converter, but params and results of methods it does not know stay plain
    dicts: its default turns them into namedtuples and mangles keys of tool inputs."""
    from lsprotocol import converters
    from pygls.protocol import JsonRPCNotification, JsonRPCRequestMessage, JsonRPCResponseMessage

    conv = converters.get_converter()
    for cls in (JsonRPCRequestMessage, JsonRPCResponseMessage, JsonRPCNotification):
        conv.register_structure_hook(cls, _keep_raw)
    return conv
