"""What the LSP front end sends: the attrs types of its results and `$/progress`
reports (docs/protocol.md), and how the domain's values become them. protocol.py's one
converter writes them; a field marked `OMIT` is sent only when it is set.
"""

from __future__ import annotations

from typing import Any, Literal

import attrs

from dave_lsp.backends.history import History
from dave_lsp.permissions.rules import Rule
from dave_lsp.review.changes import ChangeSet, FileChange
from dave_lsp.review.diff import MAX_DIFF_BYTES, MAX_SIDE_BYTES, cut_diff
from dave_lsp.review.proposals import Proposal
from dave_lsp.review.revert import RevertResult
from dave_lsp.session.results import SessionInfo
from dave_lsp.session.rewind import Rewound

# A field with this metadata is left out of the message while it holds its default.
OMIT = {"omit_if_default": True}


# -- review of changes: what `dave/changes`, `dave/revertChanges` and a turn's result
# say of the domain's change sets (review/).


@attrs.frozen
class FileChangeSummary:
    """The entry of a turn result's `changes`."""

    path: str
    status: str
    added: int
    removed: int
    binary: bool = attrs.field(default=False, metadata=OMIT)
    truncated: bool = attrs.field(default=False, metadata=OMIT)


@attrs.frozen
class FileChangeDetail:
    """The entry of `dave/changes` `files`: whole texts within MAX_SIDE_BYTES."""

    path: str
    status: str
    added: int
    removed: int
    before: str | None
    after: str | None
    diff: str
    binary: bool = attrs.field(default=False, metadata=OMIT)
    truncated: bool = attrs.field(default=False, metadata=OMIT)


@attrs.frozen
class ChangesResult:
    session_id: str
    turn: int | None
    files: list[FileChangeDetail]


@attrs.frozen
class ConflictInfo:
    path: str
    message: str


@attrs.frozen
class RevertChangesResult:
    reverted: list[str]
    conflicts: list[ConflictInfo]


@attrs.frozen
class RewindResult:
    turn: int
    restored: list[str]
    conflicts: list[ConflictInfo]


@attrs.frozen
class ForkResult:
    session_id: str


def change_summary(change: FileChange) -> FileChangeSummary:
    return FileChangeSummary(
        change.path,
        change.status,
        change.added,
        change.removed,
        binary=change.binary,
        truncated=not change.kept,
    )


def change_detail(change: FileChange, cwd: str) -> FileChangeDetail:
    texts = change.texts()
    diff, cut = cut_diff(change.diff(cwd), MAX_DIFF_BYTES)
    too_big = texts is not None and max(len(t.encode("utf-8")) for t in texts) > MAX_SIDE_BYTES
    before = after = None
    if texts is not None and not too_big and not cut:
        before = texts[0] if change.before is not None else None
        after = texts[1] if change.after is not None else None
    return FileChangeDetail(
        change.path,
        change.status,
        change.added,
        change.removed,
        before,
        after,
        diff,
        binary=change.binary,
        truncated=not change.kept or too_big or cut,
    )


def changes_result(session_id: str, change_set: ChangeSet | None) -> ChangesResult:
    """The `dave/changes` result (no turn and no files when nothing was kept)."""
    if change_set is None:
        return ChangesResult(session_id, None, [])
    files = [change_detail(change, change_set.cwd) for change in change_set.files]
    return ChangesResult(change_set.session_id, change_set.turn, files)


def revert_result(result: RevertResult) -> RevertChangesResult:
    conflicts = [ConflictInfo(c.path, c.message) for c in result.conflicts]
    return RevertChangesResult(list(result.reverted), conflicts)


def rewind_result(rewound: Rewound) -> RewindResult:
    conflicts = [ConflictInfo(c.path, c.message) for c in rewound.conflicts]
    return RewindResult(rewound.turn, list(rewound.restored), conflicts)


# -- `$/progress`: a query's reports (docs/protocol.md). `kind` and `type` say which, and
# come first, as they always have.


@attrs.frozen
class Begin:
    kind: Literal["begin"] = attrs.field(default="begin", kw_only=True)
    title: str = "Dave"
    cancellable: bool = True


@attrs.frozen
class End:
    kind: Literal["end"] = attrs.field(default="end", kw_only=True)


@attrs.frozen
class TextReport:
    """Coalesced text of the answer (`token`) or of the model's thinking."""

    kind: Literal["report"] = attrs.field(default="report", kw_only=True)
    type: str  # "token" or "thinking"
    text: str


@attrs.frozen
class ErrorReport:
    kind: Literal["report"] = attrs.field(default="report", kw_only=True)
    type: Literal["error"] = attrs.field(default="error", kw_only=True)
    message: str


@attrs.frozen
class ToolUseReport:
    kind: Literal["report"] = attrs.field(default="report", kw_only=True)
    type: Literal["toolUse"] = attrs.field(default="toolUse", kw_only=True)
    tool_use_id: str
    tool_name: str
    input: dict[str, Any]
    message: str
    parent_tool_use_id: str | None = attrs.field(default=None, metadata=OMIT)


@attrs.frozen
class ToolResultReport:
    kind: Literal["report"] = attrs.field(default="report", kw_only=True)
    type: Literal["toolResult"] = attrs.field(default="toolResult", kw_only=True)
    tool_use_id: str
    tool_name: str
    summary: str
    is_error: bool
    parent_tool_use_id: str | None = attrs.field(default=None, metadata=OMIT)


@attrs.frozen
class AllowAlways:
    """The rule "allow always" would add, and how to say it."""

    rule: str
    label: str


@attrs.frozen
class ProposalInfo:
    """What a file tool would write (`permissionRequest.proposal`): the whole texts only
    when both are known (not binary, not over the size bounds)."""

    path: str
    exists: bool
    original: str | None = attrs.field(default=None, metadata=OMIT)
    proposed: str | None = attrs.field(default=None, metadata=OMIT)
    diff: str = ""
    truncated: bool = attrs.field(default=False, metadata=OMIT)
    binary: bool = attrs.field(default=False, metadata=OMIT)


def proposal_info(proposal: Proposal) -> ProposalInfo:
    whole = proposal.original is not None and proposal.proposed is not None
    return ProposalInfo(
        proposal.path,
        proposal.exists,
        proposal.original if whole else None,
        proposal.proposed if whole else None,
        proposal.diff,
        proposal.truncated,
        proposal.binary,
    )


@attrs.frozen
class PermissionRequestReport:
    kind: Literal["report"] = attrs.field(default="report", kw_only=True)
    type: Literal["permissionRequest"] = attrs.field(default="permissionRequest", kw_only=True)
    request_id: str
    session_id: str
    tool_use_id: str
    tool_name: str
    input: dict[str, Any]
    message: str
    allow_always: AllowAlways | None = attrs.field(default=None, metadata=OMIT)
    proposal: ProposalInfo | None = attrs.field(default=None, metadata=OMIT)
    # AskUserQuestion's questions, ExitPlanMode's plan.
    questions: list[Any] | None = attrs.field(default=None, metadata=OMIT)
    plan: str | None = attrs.field(default=None, metadata=OMIT)
    parent_tool_use_id: str | None = attrs.field(default=None, metadata=OMIT)


@attrs.frozen
class PermissionResolvedReport:
    kind: Literal["report"] = attrs.field(default="report", kw_only=True)
    type: Literal["permissionResolved"] = attrs.field(default="permissionResolved", kw_only=True)
    request_id: str
    decision: str
    by: str
    rule: str | None = attrs.field(default=None, metadata=OMIT)
    edited: bool = attrs.field(default=False, metadata=OMIT)


@attrs.frozen
class StatusReport:
    kind: Literal["report"] = attrs.field(default="report", kw_only=True)
    type: Literal["status"] = attrs.field(default="status", kw_only=True)
    state: str
    message: str | None = attrs.field(default=None, metadata=OMIT)
    attempt: int | None = attrs.field(default=None, metadata=OMIT)
    max_attempts: int | None = attrs.field(default=None, metadata=OMIT)
    retry_in_ms: int | None = attrs.field(default=None, metadata=OMIT)


Report = (
    Begin
    | End
    | TextReport
    | ErrorReport
    | ToolUseReport
    | ToolResultReport
    | PermissionRequestReport
    | PermissionResolvedReport
    | StatusReport
)


# -- the other methods' results (docs/protocol.md), each as its method names it.


@attrs.frozen
class Ok:
    """`dave/permission`: the answer reached its request."""

    ok: bool = True


@attrs.frozen
class Deleted:
    deleted: bool


@attrs.frozen
class NewSessionResult:
    session_id: str


@attrs.frozen
class SessionList:
    sessions: list[SessionInfo]


@attrs.frozen
class PermissionModeSet:
    session_id: str
    permission_mode: str


@attrs.frozen
class ModelSet:
    session_id: str
    model: str | None


@attrs.frozen
class CommandList:
    # As the backend lists them: {name, description, argumentHint}; dave-lsp's own
    # among them, with `source: "dave-lsp"` and the `method` a client carries them out with.
    commands: list[dict[str, str]]


OWN_COMMANDS = [
    {
        "name": "rewind",
        "description": "Go back to before a turn: the files it and later turns changed, "
        "and the conversation",
        "argumentHint": "<turn> [--keep-files]",
        "source": "dave-lsp",
        "method": "dave/rewind",
    },
    {
        "name": "fork",
        "description": "Go on in a new session holding this one's turns up to a turn "
        "(default: all)",
        "argumentHint": "[turn]",
        "source": "dave-lsp",
        "method": "dave/fork",
    },
]


def command_list(backend: list[dict[str, str]]) -> CommandList:
    """dave-lsp's own commands among the backend's, sorted by name (a backend command of
    the same name gives way to dave-lsp's)."""
    own = {command["name"] for command in OWN_COMMANDS}
    listed = [*OWN_COMMANDS, *(c for c in backend if c.get("name") not in own)]
    return CommandList(sorted(listed, key=lambda command: str(command.get("name"))))


@attrs.frozen
class RuleList:
    # Each rule as {rule, label, createdAt}.
    rules: list[Rule]


@attrs.frozen
class Removed:
    removed: bool


@attrs.frozen
class HistoryResult:
    session_id: str
    backend: str
    available: bool
    entries: list[dict[str, Any]]
    # Why the backend has no record (only when it has none).
    reason: str | None = attrs.field(default=None, metadata=OMIT)


@attrs.frozen
class TrustFolderResult:
    path: str
    trusted: bool


@attrs.frozen
class FolderTrustResult:
    path: str
    trusted: bool
    runs_code: bool
    would_run: list[str]


def history_result(session_id: str, found: History) -> HistoryResult:
    return HistoryResult(
        session_id, found.backend, not found.reason, found.entries, found.reason or None
    )
