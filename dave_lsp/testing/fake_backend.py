"""A backend the test scripts, for driving the session layer in-process.

`FakeBackend` is a `BackendSession` with no process and no model: each turn plays the
steps the test wrote for its prompt (`Say` text, `Wait` on a gate the test releases,
`Ask` a permission through the session's `ask` callback, `Crash`), and a `FakeModel`,
the test's handle, records what a process-counting or model-side observer would see:
which sessions' backends opened and closed, the prompts that reached a model, and the
permission answers the model got. A prompt with no script is answered `echo: <prompt>`.

The test hands its `FakeModel` to the sessions through the backend's options group
(`InitOptions.backend_options["fake"] = FakeOptions(model)`, which `SessionManager` puts
in every `SessionConfig`), and `registered()` adds `SPEC` to the backend registry for
the test's duration, so `SessionManager`, `SessionActor`, `ProcessPool` and
`PermissionPolicy` run exactly as they do with a real backend. tests/test_session_inprocess.py
and tests/test_policy_inprocess.py use it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import attrs

from dave_lsp import events as ev
from dave_lsp.backends import registry
from dave_lsp.backends.base import (
    Attachment,
    ChatMessage,
    PermissionAnswer,
    PermissionAsker,
    SessionConfig,
    ToolObserver,
)
from dave_lsp.backends.history import History, HistoryQuery

# -- what a turn does, step by step ---------------------------------------------------


@attrs.frozen
class Say:
    """Stream a piece of the answer."""

    text: str


@attrs.frozen
class Wait:
    """Wait until the test releases `gate`. An interrupt ends the turn (TurnCancelled),
    unless `stuck`: a stuck turn ignores it, as a backend that hangs does."""

    gate: str
    stuck: bool = False


@attrs.frozen
class Ask:
    """Ask to run a tool and report how it went: a denied tool's result is an error
    carrying the reason; a deny with interrupt stops the turn, as the real backends do."""

    tool_name: str
    tool_input: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class Crash:
    """The backend's process dies: the turn fails and the backend is no longer alive."""

    message: str = "the fake backend's process ended unexpectedly"


Step = Say | Wait | Ask | Crash


# -- the test's handle ------------------------------------------------------------------


class FakeModel:
    """Scripts every fake backend given it, and records what they saw."""

    def __init__(self) -> None:
        self.scripts: dict[str, tuple[Step, ...]] = {}
        # Session ids, in the order their backends opened and closed (a warm spare's
        # backend keeps the `spare-...` id it opened under after a session adopts it).
        self.opened: list[str] = []
        self.closed: list[str] = []
        # (session id, prompt) in the order the turns reached a backend.
        self.prompts: list[tuple[str, str]] = []
        # (tool name, the answer the backend was given), in order.
        self.answers: list[tuple[str, PermissionAnswer]] = []
        # Set to fail every open with this message (a backend that cannot start).
        self.fail_open: str | None = None
        self.backends: list[FakeBackend] = []
        self._gates: dict[str, asyncio.Event] = {}
        self._reached: dict[str, asyncio.Event] = {}

    def script(self, prompt: str, *steps: Step) -> None:
        """What a turn with `prompt` does (ending with a result unless a step ends it)."""
        self.scripts[prompt] = steps

    def live(self) -> list[str]:
        """The sessions whose backend is open now."""
        return [b.session_id for b in self.backends if b.alive]

    def release(self, gate: str) -> None:
        """Let every turn waiting on `gate` go on (and later ones pass it at once)."""
        self._gate(gate).set()

    async def reached(self, gate: str) -> None:
        """Wait until a turn waits on `gate` (the test bounds the wait)."""
        await self._event(self._reached, gate).wait()

    def kill(self, session_id: str) -> None:
        """The process of the session's open backend dies while nothing runs."""
        for backend in self.backends:
            if backend.alive and backend.session_id == session_id:
                backend.dead = True

    def arrive(self, gate: str) -> asyncio.Event:
        """A turn waits on `gate` now; the event the test sets to release it."""
        self._event(self._reached, gate).set()
        return self._gate(gate)

    def _gate(self, name: str) -> asyncio.Event:
        return self._event(self._gates, name)

    @staticmethod
    def _event(events: dict[str, asyncio.Event], name: str) -> asyncio.Event:
        return events.setdefault(name, asyncio.Event())


@attrs.frozen
class FakeOptions:
    """The fake's `initializationOptions` group: the model its sessions play."""

    model: FakeModel = attrs.field(factory=FakeModel)


class FakeBackend:
    """One conversation with the scripted model (backends.base.BackendSession)."""

    def __init__(
        self, config: SessionConfig, ask: PermissionAsker, observer: ToolObserver | None = None
    ) -> None:
        self.config = config
        self._ask = ask
        self.model = registry.options_of(config, FakeOptions).model
        self.model.backends.append(self)
        self.opened = False
        self.closed = False
        self.dead = False
        self._stop = asyncio.Event()

    @property
    def session_id(self) -> str:
        return self.config.session_id

    @property
    def alive(self) -> bool:
        return self.opened and not self.closed and not self.dead

    async def open(self, warm_up: bool = False) -> str | None:
        if self.model.fail_open is not None:
            raise ev.BackendError(self.model.fail_open)
        self.opened = True
        self.model.opened.append(self.session_id)
        return None

    async def configure(self, *, permission_mode: str | None, model: str | None) -> None:
        pass

    async def query(
        self,
        prompt: str,
        transcript: Sequence[ChatMessage],
        direct: Callable[[ev.Event], None] | None = None,
        attachments: Sequence[Attachment] = (),
    ) -> AsyncIterator[ev.Event]:
        if not self.alive:
            raise ev.BackendError("the fake backend's process is gone")
        self._stop.clear()
        self.model.prompts.append((self.session_id, prompt))
        steps = self.model.scripts.get(prompt, (Say(f"echo: {prompt}"),))
        text: list[str] = []
        for number, step in enumerate(steps):
            if self._stop.is_set():
                raise ev.TurnCancelled()
            match step:
                case Say(piece):
                    text.append(piece)
                    yield ev.Token(piece)
                case Wait(gate, stuck):
                    await self._wait(gate, stuck)
                case Ask(tool_name, tool_input):
                    tool_use_id = f"fake-tool-{number}"
                    yield ev.ToolUse(tool_use_id, tool_name, tool_input, tool_name)
                    answer = await self._ask(tool_use_id, tool_name, tool_input, [], None)
                    self.model.answers.append((tool_name, answer))
                    if not answer.allow and answer.interrupt:
                        if self._stop.is_set():
                            raise ev.TurnCancelled()
                        raise ev.BackendError(f"the turn was stopped: {answer.reason or 'denied'}")
                    summary = "done" if answer.allow else answer.reason
                    yield ev.ToolResult(tool_use_id, tool_name, summary, not answer.allow)
                case Crash(message):
                    self.dead = True
                    raise ev.BackendError(message)
        yield ev.Done(
            text="".join(text),
            stop_reason="end_turn",
            usage=ev.Usage(),
            cost_usd=0.0,
            duration_ms=0,
            backend_session_id=f"fake-{self.session_id}",
        )

    async def _wait(self, gate: str, stuck: bool) -> None:
        released = self.model.arrive(gate)
        if stuck:
            await released.wait()
            return
        waits = [asyncio.ensure_future(released.wait()), asyncio.ensure_future(self._stop.wait())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
        if not released.is_set():
            raise ev.TurnCancelled()

    async def interrupt(self) -> None:
        self._stop.set()

    async def commands(self) -> list[dict[str, str]]:
        return []

    async def close(self) -> None:
        if self.opened and not self.closed:
            self.model.closed.append(self.session_id)
        self.closed = True


def read(query: HistoryQuery) -> History:
    """`dave/history` of a fake session (its `BackendSpec.history`): it keeps no record."""
    return History(query.backend, [], "the fake backend keeps no record")


SPEC = registry.BackendSpec(
    "fake", __name__, "FakeBackend", FakeOptions, holds_process=True, history=__name__
)


@contextmanager
def registered(spec: registry.BackendSpec = SPEC) -> Iterator[registry.BackendSpec]:
    """The fake in the backend registry while the block runs (`backend: "fake"`)."""
    registry.BACKENDS[spec.name] = spec
    try:
        yield spec
    finally:
        registry.BACKENDS.pop(spec.name, None)
