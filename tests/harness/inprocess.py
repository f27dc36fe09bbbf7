"""The session layer in the test's own event loop: a `SessionManager` whose sessions run
the scripted fake backend (dave_lsp/testing/fake_backend.py), a sink that keeps the
events a front end would report, and helpers to wait on what an editor would see."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest

from dave_lsp import events as ev
from dave_lsp.config import InitOptions
from dave_lsp.permissions.policy import PermissionBroker
from dave_lsp.session.manager import SessionManager, build_manager
from dave_lsp.session.results import QueryResult
from dave_lsp.session.turn import QueryJob
from dave_lsp.testing.fake_backend import FakeModel, FakeOptions, registered

E = TypeVar("E", bound=ev.Event)

# How long a test waits on anything that should happen at once.
SOON = 5.0


class Events:
    """A query's sink (lsp/progress.EventSink): every event, in order."""

    def __init__(self, can_ask: bool = True) -> None:
        self.can_ask = can_ask
        self.events: list[ev.Event] = []

    def emit(self, event: ev.Event) -> None:
        self.events.append(event)

    def of(self, kind: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, kind)]

    def text(self) -> str:
        return "".join(e.text for e in self.of(ev.Token))

    async def next(self, kind: type[E]) -> E:
        """The first event of `kind`, once one came."""
        await eventually(lambda: self.of(kind))
        return self.of(kind)[0]


async def eventually(check: Callable[[], Any], timeout: float = SOON) -> None:
    """Wait until `check()` is truthy."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {check}")
        await asyncio.sleep(0.01)


@asynccontextmanager
async def running(
    tmp_path: Path, model: FakeModel, **options: Any
) -> AsyncIterator[SessionManager]:
    """A manager, built as the front ends build theirs, whose default backend is the fake
    playing `model`; `options` are `InitOptions` fields. No spares unless asked; HOME and
    the Claude config dir are the test's (`tmp_path/home/.claude`), so no settings of the
    machine's user apply."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    with registered():
        init = InitOptions(
            **{
                "backend": "fake",
                "prewarm": 0,
                "env": {"HOME": str(home), "CLAUDE_CONFIG_DIR": str(home / ".claude")},
                "backend_options": {"fake": FakeOptions(model)},
                "state_dir": str(tmp_path / "state"),
                **options,
            }
        )
        manager = build_manager(init, PermissionBroker(), str(tmp_path))
        try:
            yield manager
        finally:
            await manager.close_all()


def ask(
    manager: SessionManager, session_id: str, prompt: str, sink: Events | None = None
) -> QueryJob:
    """Queue `prompt` on the session, as `dave/query` does."""
    return manager.submit(session_id, prompt, [], sink or Events())


async def result(job: QueryJob) -> QueryResult:
    """The query's result (or its error raised), as `dave/query` answers."""
    return await asyncio.wait_for(asyncio.shield(job.future), SOON)


def quick_shutdown(monkeypatch: pytest.MonkeyPatch) -> None:
    """Give a stuck backend up in 0.2 s rather than 5 (SHUTDOWN_TIMEOUT, wherever the
    session layer reads it), so a test of it stays quick."""
    for name, module in list(sys.modules.items()):
        if name.startswith("dave_lsp.session") and hasattr(module, "SHUTDOWN_TIMEOUT"):
            monkeypatch.setattr(module, "SHUTDOWN_TIMEOUT", 0.2)
