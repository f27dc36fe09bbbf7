"""Capacity: how many backend processes live, the warm spares, and who gives a slot up.

At most `maxLiveSessions` processes live, spares included. A spare takes free slots
only and never evicts a session; when a session needs a slot, an unused spare gives
its slot up first, then the least recently used idle session is evicted (its state is
kept and it resumes on its next query). A working session, or one waiting on the user,
is never evicted: if every one is busy, the new one runs over the limit until one goes
idle. Sessions idle for `idleTimeoutSeconds` are evicted by a reaper.

The pool knows its members only through `Member` (actor.SessionActor satisfies it)
and is handed the live sessions and a spare factory, so nothing here imports the
session layer: the arrows only go down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, Generic, Protocol, TypeVar

log = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT = 5.0


class Member(Protocol):
    """What the pool needs of a session."""

    @property
    def holds_process(self) -> bool:
        """Its backend process is live or starting."""
        ...

    @property
    def evictable(self) -> bool:
        """Live, idle, and nobody waits on it."""
        ...

    @property
    def last_active(self) -> float: ...

    def evict(self) -> asyncio.Future[None]:
        """Close its backend, keeping its state; done when the process is gone."""
        ...

    async def shutdown(self) -> None: ...


M = TypeVar("M", bound=Member)


class ProcessPool(Generic[M]):
    """The process slots of one server."""

    def __init__(
        self,
        *,
        max_live: int,
        prewarm: int,
        live: Callable[[], Iterable[M]],
        make_spare: Callable[[], M] | None,
    ) -> None:
        self.max_live = max_live
        self.prewarm = prewarm if make_spare is not None else 0
        self.spares: list[M] = []
        # Spares are refilled from the `refill_after`-th new session on (ACP: 2, so a
        # client that opens one session per agent process runs one CLI: docs/acp.md).
        self.refill_after = 1
        self._made = 0  # new sessions
        # A first session made before the first spare was up (codecompanion sends
        # session/new right after initialize) holds spares back as adopting one does.
        self._held = False
        self._live = live
        self._make_spare = make_spare
        self._reaper: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._closed = False

    def processes(self, excluding: M | None = None) -> int:
        """Backend processes held or being started: live sessions' and every spare's."""
        held = sum(1 for m in self._live() if m is not excluding and m.holds_process)
        return held + len(self.spares)

    async def make_room(self, requester: M | None) -> None:
        """Free a slot for `requester` within the limit (None: no one in particular,
        the pool is only brought back within it): an unused spare goes first, then the
        least recently used idle sessions."""
        if requester in self.spares:
            return
        while self.processes(excluding=requester) >= self.max_live:
            if self.spares:
                spare = self.spares.pop()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.shield(spare.shutdown()), SHUTDOWN_TIMEOUT)
                continue
            idle = sorted(
                (m for m in self._live() if m is not requester and m.evictable),
                key=lambda m: m.last_active,
            )
            if not idle:
                log.warning(
                    "maxLiveSessions (%d) exceeded: every live session is busy", self.max_live
                )
                return
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(idle[0].evict()), SHUTDOWN_TIMEOUT)

    def make_room_later(self, member: M | None) -> None:
        """`make_room` in the background (a spare just became a session, a turn ended)."""
        self.background(self.make_room(member), "make room")

    def ensure_spares(self, reserved: int = 0) -> None:
        """Top the spares up to `prewarm`, in free slots only (`reserved`: slots taken
        by processes about to start)."""
        if self._closed or self._make_spare is None:
            return
        if self._held and self._made < self.refill_after:
            return
        while len(self.spares) < self.prewarm and self.processes() + reserved < self.max_live:
            self.spares.append(self._make_spare())

    def replace_spares(self, stale: Callable[[M], bool]) -> None:
        """Shut down the spares `stale` picks (made for a folder whose trust changed
        since) and start new ones once they are gone, so the limit holds meanwhile."""
        old = [spare for spare in self.spares if stale(spare)]
        if not old:
            return
        self.spares = [spare for spare in self.spares if spare not in old]

        async def replace() -> None:
            await asyncio.gather(
                *(asyncio.wait_for(asyncio.shield(s.shutdown()), SHUTDOWN_TIMEOUT) for s in old),
                return_exceptions=True,
            )
            self.ensure_spares()

        self.background(replace(), "replace spares")

    def session_made(self, spare: M | None) -> Callable[[], None] | None:
        """Count a new session (`spare`: the one it adopted); what to call after its
        first answer (the refill), if anything. The first session that finds no spare
        held back for it refills now, for the next one (its own process is about to
        start: its slot is reserved)."""
        self._made += 1
        self._held = self._held or (spare is None and self._made == 1 < self.refill_after)
        if spare is None and self._made == self.refill_after > 1:
            self.ensure_spares(reserved=1)
        return self.ensure_spares if self._made >= self.refill_after else None

    def take_spare(self, fits: Callable[[M], bool]) -> M | None:
        for spare in self.spares:
            if fits(spare):
                self.spares.remove(spare)
                return spare
        return None

    def start_reaper(self, idle_seconds: float | None) -> None:
        if idle_seconds and self._reaper is None:
            self._reaper = asyncio.create_task(self._reap(idle_seconds), name="idle reaper")

    async def _reap(self, idle_seconds: float) -> None:
        period = max(0.2, min(30.0, idle_seconds / 3))
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            for member in list(self._live()):
                if member.evictable and now - member.last_active >= idle_seconds:
                    member.evict()

    def background(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        """Run `coro` as a task kept alive until it ends."""
        task = asyncio.create_task(coro, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def close(self) -> list[M]:
        """Stop the reaper and the spares' top-up; returns the spares to shut down."""
        self._closed = True
        if self._reaper is not None:
            self._reaper.cancel()
        spares, self.spares = self.spares, []
        return spares
