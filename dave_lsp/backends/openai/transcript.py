"""The OpenAI backend's conversation on disk, so it outlives the server (a restart, an
eviction) as Claude Code's transcripts do: `dave/history`, a query without the
editor's `messages`, ACP's `session/load`, and `dave/rewind`/`dave/fork` read it back.

One JSONL file per conversation, `<stateDir>/openai/<hash>.jsonl`, named by a hash of
the conversation's id (the session's `backendSessionId`, which a client may name: no id
reaches the file system), 0600 in a 0700 folder. Each line is one record:

- `{"message": {...}}`: a chat-completions message (the editor's transcript that
  seeded the conversation, the model's tool calls, a tool's result, an answer);
- `{"message": {...}, "turn": true}`: the user's prompt that starts a turn;
- `{"end": true}`: the turn before it is complete.

The session appends as its turn goes (after each round of tool calls, and when the
turn ends), each batch of whole lines in one `write` to a file opened for appending: a
crash leaves at most a last line without its newline, which reading drops. A turn the
server never finished (no `end`) is closed on reading as the session closes a failed
one: its completed tool rounds kept, an unanswered call answered as never run, and a
note; a turn with no tool round is dropped, as a failed turn leaves no trace. A cut
(`dave/rewind`) or a copy (`dave/fork`, or a resume of the first turns) writes a whole
file atomically (fsio.write_atomic).

Bounds, as Claude Code bounds what its transcripts hold: a message's text is cut at
Read's bound (`READ_MAX_BYTES` characters) with a note, and when the file would pass
`MAX_BYTES`, it is rewritten with its oldest turns shortened (their tool rounds and
images dropped, the prompt and the final answer cut to `SHORT_CHARS`) until it fits,
so the turns keep their numbers. Transcripts not written to for the user's Claude Code
`cleanupPeriodDays` (default 30, as the CLI cleans its own) are deleted when this
process first opens a session. A file over `READ_LIMIT`, or a broken record before
its last line, is not read: the log says why and the session starts afresh (a new
conversation, in a new file; the old one is left for the user to look at).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import attrs

from dave_lsp import paths
from dave_lsp.backends.base import SessionConfig
from dave_lsp.backends.openai.history import Conversation
from dave_lsp.backends.openai.tools import READ_MAX_BYTES
from dave_lsp.fsio import write_atomic

log = logging.getLogger(__name__)

FOLDER: Final = "openai"
MAX_BYTES: Final = 8 * 1024 * 1024
READ_LIMIT: Final = 2 * MAX_BYTES
SHORT_CHARS: Final = 2000
CUT_OFF: Final = "[the turn was cut off: dave-lsp stopped before it ended]"
# Its own words, not messages.py's: this module imports nothing that imports the openai
# package (dave/history reads it in a thread, and a second thread importing that package
# while the session's import runs finds it half made).
NEVER_ANSWERED: Final = "[cut off] dave-lsp stopped before this tool's result was kept."

CLEANUP_DAYS: Final = 30  # Claude Code's default `cleanupPeriodDays`

Message = dict[str, Any]

_pruned: set[Path] = set()  # the folders this process has cleaned up


@attrs.frozen
class Loaded:
    """A transcript read back: the conversation (no leading system prompt: the session
    puts its own first), whether reading repaired it (then it is written again whole),
    or why it could not be read ("" when it could)."""

    conversation: Conversation | None
    repaired: bool = False
    problem: str = ""


@attrs.frozen
class Resumed:
    """What a session continues: the conversation (None: a new one) and its id, and a
    line for the user when the transcript could not be read."""

    conversation_id: str
    conversation: Conversation | None
    notice: str | None = None


def new_id() -> str:
    """A new conversation's id (the session's `backendSessionId`)."""
    return f"openai-{uuid.uuid4()}"


def folder(env: Mapping[str, str]) -> Path:
    """Where the transcripts of a session run with `env` live."""
    return paths.state_dir(env) / FOLDER


def path_of(root: Path, conversation_id: str) -> Path:
    digest = hashlib.sha256(conversation_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return root / f"{digest}.jsonl"


def exists(root: Path, conversation_id: str) -> bool:
    return bool(conversation_id) and path_of(root, conversation_id).is_file()


def load(root: Path, conversation_id: str) -> Loaded:
    """The conversation `conversation_id`'s file holds (None: no file, or `problem`)."""
    path = path_of(root, conversation_id)
    try:
        size = path.stat().st_size
        if size > READ_LIMIT:
            return Loaded(None, problem=f"{size} bytes, over the {READ_LIMIT} read back")
        data = path.read_bytes()
    except FileNotFoundError:
        return Loaded(None)
    except OSError as exc:
        return Loaded(None, problem=f"unreadable ({exc.strerror or exc})")
    return _parse(data)


def _parse(data: bytes) -> Loaded:
    lines = data.split(b"\n")
    torn = lines.pop() != b""  # the last line of a crashed append: no newline
    messages: list[Message] = []
    starts: list[int] = []
    ended = True
    for number, line in enumerate(lines, 1):
        record = _record(line)
        if record is None:
            return Loaded(None, problem=f"line {number} is not a transcript record")
        if record.get("end") is True:
            ended = True
            continue
        if record.get("turn") is True:
            if not ended:
                messages, starts = _closed(messages, starts)
            starts.append(len(messages))
            ended = False
        messages.append(record["message"])
    repaired = torn or not ended
    if not ended:
        messages, starts = _closed(messages, starts)
    lead = 0
    while (
        lead < len(messages)
        and messages[lead].get("role") == "system"
        and (not starts or lead < starts[0])
    ):
        lead += 1
    return Loaded(Conversation(tuple(messages[lead:]), tuple(s - lead for s in starts)), repaired)


def _record(line: bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    if record.get("end") is True:
        return record
    message = record.get("message")
    return record if isinstance(message, dict) and _well_formed(message) else None


def _well_formed(message: dict[str, Any]) -> bool:
    """Whether `message` has the shape the session and the history reader rely on (the
    file is the user's to edit: a wrong shape is a broken record, not a crash later)."""
    role, content = message.get("role"), message.get("content")
    if role == "tool":
        return isinstance(message.get("tool_call_id"), str) and isinstance(content, str)
    if role == "user" and isinstance(content, list):
        return all(isinstance(part, dict) and isinstance(part.get("type"), str) for part in content)
    if role == "assistant":
        calls = message.get("tool_calls", [])
        return (content is None or isinstance(content, str)) and (
            isinstance(calls, list) and all(_well_formed_call(call) for call in calls)
        )
    return role in ("system", "user") and isinstance(content, str)


def _well_formed_call(call: Any) -> bool:
    function = call.get("function") if isinstance(call, dict) else None
    return (
        isinstance(call, dict)
        and isinstance(call.get("id"), str)
        and isinstance(function, dict)
        and isinstance(function.get("name"), str)
        and isinstance(function.get("arguments", ""), str)
    )


def prune(root: Path, env: Mapping[str, str]) -> None:
    """Delete the transcripts in `root` last written before the user's Claude Code
    `cleanupPeriodDays` (once per folder and process)."""
    if root in _pruned:
        return
    _pruned.add(root)
    cutoff = time.time() - cleanup_days(env) * 86400
    with contextlib.suppress(OSError):
        for path in root.glob("*.jsonl"):
            with contextlib.suppress(OSError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    log.info("deleted the transcript %s (older than cleanupPeriodDays)", path)


def cleanup_days(env: Mapping[str, str]) -> int:
    """`cleanupPeriodDays` of the user's Claude Code settings, else 30."""
    try:
        raw = (paths.claude_config_dir(env) / "settings.json").read_text("utf-8")
        days = json.loads(raw).get("cleanupPeriodDays")
    except (OSError, ValueError, AttributeError):
        return CLEANUP_DAYS
    valid = isinstance(days, int) and not isinstance(days, bool) and days >= 1
    return days if valid else CLEANUP_DAYS


def _closed(messages: list[Message], starts: list[int]) -> tuple[list[Message], list[int]]:
    """The last turn, which never ended, closed as a failed turn is (module docstring)."""
    start = starts[-1]
    if len(messages) == start + 1:  # the prompt alone: as if it was never sent
        return messages[:start], starts[:-1]
    answered = {m.get("tool_call_id") for m in messages[start:] if m.get("role") == "tool"}
    closing = [
        {"role": "tool", "tool_call_id": call.get("id"), "content": NEVER_ANSWERED}
        for m in messages[start:]
        if m.get("role") == "assistant"
        for call in m.get("tool_calls") or []
        if isinstance(call, dict) and call.get("id") not in answered
    ]
    return [*messages, *closing, {"role": "assistant", "content": CUT_OFF}], starts


class Kept:
    """A session's transcript: read back by its first open (`resume`), then kept in step
    with its messages, in the file of the session's conversation id at the time."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.root = folder(env)
        self.resumed = False
        self._file: Transcript | None = None

    def resume(self, config: SessionConfig, base: Sequence[Any]) -> Resumed:
        """The conversation `config.resume` names, after the session's own `base`
        messages (its system prompt); with `config.resume_turns`, a copy of its first
        turns under a new id (the original left as it was). Reads files."""
        self.resumed = True
        prune(self.root, config.env)
        resume, keep = config.resume, config.resume_turns
        found = load(self.root, resume) if resume else Loaded(None)
        if found.conversation is None or not resume:
            if not found.problem:
                return Resumed("", None)  # nothing kept (a session from before transcripts)
            path = path_of(self.root, resume or "")
            log.warning("the transcript %s is not read: %s", path, found.problem)
            return Resumed(
                "",
                None,
                f"This session's earlier conversation could not be read back ({path}:"
                f" {found.problem}); it starts a new conversation.",
            )
        cut = found.conversation if keep is None else found.conversation.first(keep)
        whole = Conversation((*base, *cut.messages), tuple(s + len(base) for s in cut.starts))
        conversation_id = resume if keep is None else new_id()
        if keep is None and not found.repaired:
            self._for(conversation_id).adopt(whole)
        else:
            self._for(conversation_id).rewrite(whole)
        return Resumed(conversation_id, whole)

    def sync(
        self,
        conversation_id: str,
        messages: Sequence[Any],
        starts: Sequence[int],
        *,
        done: bool = False,
    ) -> None:
        """`Transcript.sync` of the conversation's file."""
        self._for(conversation_id).sync(messages, starts, done=done)

    def rewrite(self, conversation_id: str, conversation: Conversation) -> None:
        self._for(conversation_id).rewrite(conversation)

    def _for(self, conversation_id: str) -> Transcript:
        if self._file is None or self._file.conversation_id != conversation_id:
            self._file = Transcript(self.root, conversation_id)
        return self._file


class Transcript:
    """One conversation's file, kept in step with the session's messages. A disk that
    fails is logged, never the turn's failure: the conversation goes on in memory."""

    def __init__(self, root: Path, conversation_id: str) -> None:
        self.root = root
        self.conversation_id = conversation_id
        self.path = path_of(root, conversation_id)
        self._written = 0  # how many of the session's messages the file holds
        self._size = 0

    def sync(self, messages: Sequence[Any], starts: Sequence[int], *, done: bool) -> None:
        """Append `messages` beyond those written (`starts`: where each turn's prompt is);
        `done`: the last turn is complete. `messages` must continue what was written."""
        turn_starts = set(starts)
        lines = []
        for index in range(self._written, len(messages)):
            record: dict[str, Any] = {"message": _bounded(messages[index])}
            if index in turn_starts:
                record["turn"] = True
            lines.append(record)
        if done:
            lines.append({"end": True})
        data = b"".join(_line(record) for record in lines)
        if not data:
            return
        if self._size + len(data) > MAX_BYTES:
            # Shortened to 3/4 of the bound, so the next turns append again.
            whole = Conversation(tuple(messages), tuple(starts))
            self.rewrite(whole, ended=done, room=MAX_BYTES * 3 // 4)
            return
        try:
            self._append(data)
        except OSError as exc:
            log.warning("could not write the transcript %s: %s", self.path, exc)
            return
        self._written = len(messages)
        self._size += len(data)

    def rewrite(
        self, conversation: Conversation, *, ended: bool = True, room: int = MAX_BYTES
    ) -> None:
        """The file holds `conversation` and nothing else (a cut, a copy, a repair, or
        the size bound's shortening: see the module docstring), within `room` bytes."""
        messages, starts = list(conversation.messages), list(conversation.starts)
        data = _whole(messages, starts, ended)
        if len(data) > room:
            data = _fitted(messages, starts, ended, room)
        try:
            _private(self.root)
            write_atomic(self.path, data, 0o600, prefix=".tmp-", suffix=".jsonl")
        except OSError as exc:
            log.warning("could not write the transcript %s: %s", self.path, exc)
            return
        self._written, self._size = len(messages), len(data)

    def adopt(self, conversation: Conversation) -> None:
        """The file holds `conversation` already (read back with nothing to repair)."""
        self._written = len(conversation.messages)
        with contextlib.suppress(OSError):
            self._size = self.path.stat().st_size

    def _append(self, data: bytes) -> None:
        _private(self.root)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, data)  # one write: whole lines, or (a crash) a torn last one
        finally:
            os.close(fd)


def _private(root: Path) -> None:
    root.mkdir(mode=0o700, parents=True, exist_ok=True)


def _line(record: dict[str, Any]) -> bytes:
    return json.dumps(record, ensure_ascii=False).encode("utf-8", "surrogatepass") + b"\n"


def _whole(messages: list[Message], starts: list[int], ended: bool) -> bytes:
    turn_starts = set(starts)
    out = []
    for index, message in enumerate(messages):
        record: dict[str, Any] = {"message": _bounded(message)}
        if index in turn_starts:
            if index != starts[0]:
                out.append(_line({"end": True}))  # the turn before this one
            record["turn"] = True
        out.append(_line(record))
    if starts and ended:
        out.append(_line({"end": True}))
    return b"".join(out)


def _bounded(message: Any) -> Message:
    """The message with its text within Read's bound."""
    content = message.get("content")
    if isinstance(content, str) and len(content) > READ_MAX_BYTES:
        cut = len(content) - READ_MAX_BYTES
        return {**message, "content": f"{content[:READ_MAX_BYTES]}\n[{cut} characters cut]"}
    if isinstance(content, list):
        parts = []
        for part in content:
            text = part.get("text") if isinstance(part, dict) else None
            if isinstance(text, str) and len(text) > READ_MAX_BYTES:
                part = {**part, "text": text[:READ_MAX_BYTES] + "\n[characters cut]"}
            parts.append(part)
        return {**message, "content": parts}
    return dict(message)


def _fitted(messages: list[Message], starts: list[int], ended: bool, room: int) -> bytes:
    """The file with the fewest oldest turns shortened that fits in `room` (all of
    them when nothing fits): a binary search, each probe one serialization."""
    if not starts:  # no turn to shorten
        return _whole(messages, starts, ended)
    low, high = 1, len(starts)
    best = _whole(*_shortened(messages, starts, high), ended)
    while low < high:
        middle = (low + high) // 2
        data = _whole(*_shortened(messages, starts, middle), ended)
        if len(data) <= room:
            high, best = middle, data
        else:
            low = middle + 1
    return best


def _shortened(
    messages: list[Message], starts: list[int], turns: int
) -> tuple[list[Message], list[int]]:
    """The first `turns` turns as their prompt and final answer only, each cut short."""
    out = list(messages[: starts[0]]) if starts else []
    new_starts: list[int] = []
    ends = [*starts[1:], len(messages)]
    for number, (start, end) in enumerate(zip(starts, ends, strict=True)):
        new_starts.append(len(out))
        if number >= turns:
            out.extend(messages[start:end])
            continue
        prompt, answer = messages[start], messages[end - 1]
        out.append({"role": "user", "content": _short(_text_of(prompt))})
        if end - 1 > start and answer.get("role") == "assistant":
            out.append({"role": "assistant", "content": _short(_text_of(answer))})
    return out, new_starts


def _text_of(message: Message) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return "\n\n".join(
            str(p.get("text") or "") for p in content if isinstance(p, dict) and "text" in p
        )
    return content if isinstance(content, str) else ""


def _short(text: str) -> str:
    if len(text) <= SHORT_CHARS:
        return text
    return f"{text[:SHORT_CHARS]}\n[shortened: the transcript keeps {MAX_BYTES} bytes]"
