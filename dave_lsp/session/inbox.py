"""A session actor's inbox: the commands it takes and the queue they wait in.

Queries and commands wait in one queue, so they run in arrival order; at most
`max_queued` queries wait (the protocol's limit). Only the actor takes from it
(actor.py); other tasks put in it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import attrs

from dave_lsp import events as ev
from dave_lsp.session.turn import QueryJob


@attrs.frozen
class Warm:
    """Connect the backend now (and warm it up), so the first query does not wait."""

    done: asyncio.Future[None]


@attrs.frozen
class Evict:
    """Close the backend, keeping the session's state for its next query. With `work`
    (dave/rewind, dave/fork): run it first, and close the backend only if it says so."""

    done: asyncio.Future[None]
    work: Callable[[], Awaitable[bool]] | None = None


@attrs.frozen
class Configure:
    """Change the mode or model, of the live client too, keeping the conversation."""

    done: asyncio.Future[None]
    permission_mode: str | None = None
    model: str | None = None


class Shutdown:
    """The last item an actor takes: it closes its backend and ends."""


Command = Warm | Evict | Configure
Item = QueryJob | Command | Shutdown
SHUTDOWN = Shutdown()


class Inbox:
    """An actor's queue: queries (at most `max_queued` waiting) and commands, in order."""

    def __init__(self, max_queued: int) -> None:
        self._queue: asyncio.Queue[Item] = asyncio.Queue()
        self._max_queued = max_queued
        self._waiting = 0

    def put_query(self, job: QueryJob, session_id: str) -> None:
        if self._waiting >= self._max_queued:
            raise ev.BackendError(
                f"session {session_id} already has {self._max_queued} queries waiting; "
                "wait for them to finish or cancel one"
            )
        self._waiting += 1
        self._queue.put_nowait(job)

    def put(self, item: Command | Shutdown) -> None:
        self._queue.put_nowait(item)

    async def get(self) -> Item:
        item = await self._queue.get()
        if isinstance(item, QueryJob):
            self._waiting -= 1
        return item

    def empty(self) -> bool:
        return self._queue.empty()

    def fail_queries(self, exc: ev.BackendError) -> None:
        """A connect failure fails every query waiting, as the protocol says; the
        commands stay, in their order."""
        kept: list[Item] = []
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if isinstance(item, QueryJob):
                item.fail(ev.BackendError(str(exc)))
                self._waiting -= 1
                item.close()
            else:
                kept.append(item)
        for item in kept:
            self._queue.put_nowait(item)

    def drop_all(self) -> None:
        """The session is being deleted: waiting queries fail, commands are done."""
        while not self._queue.empty():
            match self._queue.get_nowait():
                case QueryJob() as job:
                    job.fail(ev.TurnCancelled("the session was deleted"))
                    job.close()
                case Shutdown():
                    pass
                case command if not command.done.done():
                    command.done.set_result(None)
        self._waiting = 0
