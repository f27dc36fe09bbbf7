"""The wire protocol's types (docs/protocol.md), method names, and the converter.

Params are structured strictly: a number is not silently a string, and every error
names the field (`sessionId: expected a string`), because the message goes to a
person who has to fix their client.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

import attrs
import cattrs

from dave_lsp import rpc
from dave_lsp.lsp import outgoing
from dave_lsp.review.changes import FileChange
from dave_lsp.session import results

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
REWIND = "dave/rewind"
FORK = "dave/fork"
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
    REWIND,
    FORK,
]

# What both front ends share lives in rpc.py; named here too, so that the LSP front
# end finds its whole protocol in this module.
INVALID_PARAMS = rpc.INVALID_PARAMS
INVALID_REQUEST = rpc.INVALID_REQUEST
METHOD_NOT_FOUND = rpc.METHOD_NOT_FOUND
REQUEST_CANCELLED = rpc.REQUEST_CANCELLED
REQUEST_FAILED = rpc.REQUEST_FAILED
SERVER_NOT_INITIALIZED = rpc.SERVER_NOT_INITIALIZED
ParamsError = rpc.ParamsError
PermissionMode = rpc.PermissionMode
camel = rpc.camel
describe_error = rpc.describe_error
Position = rpc.Position
Range = rpc.Range
ActiveFile = rpc.ActiveFile
Mention = rpc.Mention
QueryContext = rpc.QueryContext
AttachmentParam = rpc.AttachmentParam

MAX_SESSION_ID = 256

T = TypeVar("T")


@attrs.frozen
class WireMessage:
    role: Literal["user", "assistant"]
    content: str


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
class RewindParams:
    session_id: str
    turn: int
    files: bool = True


@attrs.frozen
class ForkParams:
    session_id: str
    turn: int | None = None


# A session's summary and a turn's result are the session layer's own types, already in
# the wire's shape: named here as this protocol's.
SessionInfo = results.SessionInfo
ToolResultInfo = results.ToolResultInfo
QueryResult = results.QueryResult


def make_converter() -> cattrs.Converter:
    """The protocol's one converter: rpc.py's strict camelCase converter, with the
    protocol's arrays checked to be arrays, and a turn's `FileChange`s sent as their
    summaries (outgoing.py); optional fields of what goes out are sent only when set."""
    conv = rpc.make_converter(WireMessage, HunkParam, Mention, AttachmentParam)
    conv.register_unstructure_hook(
        FileChange, lambda change: conv.unstructure(outgoing.change_summary(change))
    )
    return conv


converter = make_converter()


def structure(params: Any, cls: type[T]) -> T:
    """Structure `params` as `cls` or raise ParamsError with a one-line message. The
    messages name no method: the server's `dave_method` puts it before each, once."""
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise ParamsError("params must be an object")
    try:
        value = converter.structure(params, cls)
    except (cattrs.BaseValidationError, TypeError, ValueError, KeyError) as exc:
        raise ParamsError(f"invalid params: {describe_error(exc)}") from None
    if isinstance(getattr(value, "session_id", None), str):
        check_session_id(value.session_id)  # type: ignore[attr-defined]
    return value


def check_session_id(session_id: str) -> None:
    if not session_id:
        raise ParamsError("invalid params: sessionId: must not be empty")
    if len(session_id) > MAX_SESSION_ID:
        raise ParamsError(
            f"invalid params: sessionId: at most {MAX_SESSION_ID} characters "
            f"(got {len(session_id)})"
        )


def answers(raw: dict[str, Any] | None) -> dict[str, str | list[str]] | None:
    """AskUserQuestion's answers: each a label, labels, or the user's own words."""
    if raw is None:
        return None
    for question, value in raw.items():
        labels = value if isinstance(value, list) else [value]
        if not all(isinstance(label, str) for label in labels):
            raise ParamsError(
                f"invalid params: answers.{question}: expected a string or an array of strings"
            )
    return raw


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
