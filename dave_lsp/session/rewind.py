"""Rewind and fork: a session taken back to the moment before one of its turns began
(`dave/rewind`), and a new session that continues one's first turns (`dave/fork`).

Rewind runs on the session's actor between its queries (actor.exclusive), so no turn
changes files or the conversation meanwhile; a rewind asked while a turn runs is
refused (cancel it first). The files the dropped turns changed are restored with the
review's revert, newest turn first, under its rule (a file changed since is a conflict,
left as it is); their change sets are forgotten, and the next query is turn `turn`
again. The conversation is cut in one of two ways:

- a backend that keeps its conversation itself (the OpenAI backend: `HeldConversation`)
  is cut in place, when it is live;
- otherwise the record says how many turns the backend's next start keeps
  (`SessionRecord.resume_turns`, the Claude backend's fork of its conversation, cut
  after that turn: backends/claude/cut.py) and the live backend is closed.

A fork is a new record beside the original's, with the same folder, backend, mode,
model and rules, holding the original's conversation id and `resume_turns`, so nothing
starts until it is queried and the original is untouched; a live held conversation is
copied into the fork's backend. Both work on evicted sessions and after a restart.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import attrs

from dave_lsp import events as ev
from dave_lsp.backends.history import Message
from dave_lsp.review.change_store import ChangeStore
from dave_lsp.review.revert import Conflict, revert
from dave_lsp.rpc import ParamsError
from dave_lsp.session.actor import SessionActor, exclusive
from dave_lsp.session.store import SessionRecord, SessionStore, now_iso

Find = Callable[[str], SessionActor | None]


@runtime_checkable
class HeldConversation(Protocol):
    """A live backend that holds its conversation itself (`OpenAISession`); its
    `conversation` has `first(turns)`, the conversation after its first turns."""

    @property
    def conversation(self) -> Any: ...

    def restore(self, conversation: Any) -> None: ...


@attrs.frozen
class Rewound:
    """What `dave/rewind` answers: the next query's turn, the files restored, and the
    ones left as they are."""

    turn: int
    restored: tuple[str, ...]
    conflicts: tuple[Conflict, ...]


class Rewinds:
    """Rewind and fork, by sessionId."""

    def __init__(self, *, find: Find, store: SessionStore, changes: ChangeStore) -> None:
        self._find = find  # the live actor, reviving one the store remembers
        self._store = store
        self._changes = changes

    async def rewind(self, session_id: str, turn: int, files: bool = True) -> Rewound:
        """Take the session back to before `turn` began (see the module docstring)."""
        actor = self._session(session_id)
        _check_turn(session_id, actor.record.turns, turn)
        if actor.current is not None:
            raise ev.BackendError(
                f"session {session_id} is running a turn; cancel it (or let it end), then rewind"
            )
        outcome: list[Rewound | BaseException] = []

        async def work() -> bool:
            try:
                # Checked again: a query sent just before may have run since.
                _check_turn(session_id, actor.record.turns, turn)
                outcome.append(await self._restore(session_id, turn, files))
                return self._cut(actor, turn - 1)
            except Exception as exc:  # handed to the caller: the actor goes on
                outcome.append(exc)
                return False

        live = actor.backend is not None
        await exclusive(actor, work)
        if not outcome:
            raise ev.BackendError(f"session {session_id} was deleted before it was rewound")
        if isinstance(outcome[0], BaseException):
            raise outcome[0]
        if live and actor.backend is None and not actor.closing:
            # A live session stays live: its backend starts again now, on the cut
            # conversation, so the next query does not wait for it.
            actor.warm()
        return outcome[0]

    async def _restore(self, session_id: str, turn: int, files: bool) -> Rewound:
        """Revert the change sets of `turn` and later, newest first, and forget them."""
        reverted: list[str] = []
        conflicts: list[Conflict] = []
        if files:
            for kept in reversed(await asyncio.to_thread(self._changes.turns, session_id)):
                if kept < turn:
                    break
                change_set = await asyncio.to_thread(self._changes.load, session_id, kept)
                if change_set is not None:
                    result = await asyncio.to_thread(revert, change_set)
                    reverted.extend(result.reverted)
                    conflicts.extend(result.conflicts)
        await asyncio.to_thread(self._changes.drop_turns, session_id, turn)
        refused = {conflict.path for conflict in conflicts}
        restored = tuple(dict.fromkeys(p for p in reverted if p not in refused))
        return Rewound(turn, restored, tuple(conflicts))

    def _cut(self, actor: SessionActor, keep: int) -> bool:
        """Cut the conversation after turn `keep`; whether the backend is to be closed
        (its next start then resumes the cut)."""
        backend = actor.backend
        if isinstance(backend, HeldConversation):
            # Continued as a copy (its id reported by the next turn); until then a new
            # backend (a restart) continues the record's conversation cut here.
            backend.restore(backend.conversation.first(keep))
            actor.settings.rewind(keep, cut=True)
            return False
        actor.settings.rewind(keep, cut=True)
        return True

    async def fork(self, session_id: str, turn: int | None = None) -> str:
        """A new session continuing this one's turns 1..`turn` (default: all); its id."""
        source = self._session(session_id)
        record = source.record
        keep = record.turns if turn is None else turn
        if turn is not None:
            _check_turn(session_id, record.turns, turn)
        fork_id = str(uuid.uuid4())
        now = now_iso()
        fork = attrs.evolve(
            record,
            session_id=fork_id,
            created_at=now,
            last_active_at=now,
            turns=keep,
            title=f"{record.title} (fork)" if record.title else "",
            cost_usd=0.0,
            rules=list(record.rules),
            additional_directories=list(record.additional_directories),
            backend_session_id=record.backend_session_id if keep else "",
            resume_turns=keep if keep and record.backend_session_id else None,
            forked_from={"sessionId": session_id, "turn": keep},
        )
        held = source.backend
        conversation = held.conversation if isinstance(held, HeldConversation) else None
        await asyncio.to_thread(self._store.save, fork)
        if conversation is not None:
            await self._hand_over(fork, conversation.first(keep))
        return fork_id

    async def _hand_over(self, fork: SessionRecord, conversation: Any) -> None:
        """The fork's backend, started now, continues a copy of the held conversation."""
        actor = self._find(fork.session_id)
        if actor is None:
            return
        await actor.warm()

        async def work() -> bool:
            backend = actor.backend
            if isinstance(backend, HeldConversation):
                backend.restore(conversation)
            return False

        await exclusive(actor, work)

    def _session(self, session_id: str) -> SessionActor:
        actor = self._find(session_id)
        if actor is None:
            raise ParamsError(f"no session {session_id}")
        return actor


def first_turns(messages: list[Message], turns: int | None) -> list[Message]:
    """A session's messages as its next query continues them: up to the prompt of turn
    `turns + 1` when it was rewound or forked and not queried since (`resume_turns`),
    since its backend's record still holds what that query's start leaves out."""
    if turns is None:
        return messages
    prompts = [i for i, message in enumerate(messages) if _prompt(message)]
    return messages[: prompts[turns]] if turns < len(prompts) else messages


def _prompt(message: Message) -> bool:
    kinds = {block.get("type") for block in message.blocks}
    return message.role == "user" and "tool_result" not in kinds and bool(kinds & {"text", "image"})


def _check_turn(session_id: str, turns: int, turn: int) -> None:
    """ParamsError naming the turns that exist, for one that does not."""
    if 1 <= turn <= turns:
        return
    have = f"turns 1 to {turns}" if turns > 1 else "turn 1" if turns == 1 else "no turns yet"
    raise ParamsError(f"turn: session {session_id} has {have}; there is no turn {turn}")
