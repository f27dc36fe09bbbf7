"""The session layer in-process: `SessionManager`, its actors and the process pool, with
the scripted fake backend in place of a model client (dave_lsp/testing/fake_backend.py).

What an editor would see is asserted: results, errors, the events of a query and the
session list; and what a process count would see: which sessions' backends opened and
closed. The end-to-end tests run the same paths with the real CLI."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from dave_lsp import events as ev
from dave_lsp.session.manager import SessionManager
from dave_lsp.testing.fake_backend import Crash, FakeModel, Say, Wait
from tests.harness.inprocess import (
    SOON,
    Events,
    ask,
    eventually,
    quick_shutdown,
    result,
    running,
)


@pytest.fixture(autouse=True)
def _quick(monkeypatch: pytest.MonkeyPatch) -> None:
    quick_shutdown(monkeypatch)


def states(manager: SessionManager) -> dict[str, str]:
    """The session list an editor gets (`dave/listSessions`): state by sessionId."""
    return {info.session_id: info.state for info in manager.list()}


async def test_queries_on_one_session_run_one_at_a_time_in_order(tmp_path: Path) -> None:
    model = FakeModel()
    model.script("first", Say("one "), Wait("first"), Say("done"))
    async with running(tmp_path, model) as manager:
        first = ask(manager, "s", "first")
        second = ask(manager, "s", "second")
        third = ask(manager, "s", "third")
        await asyncio.wait_for(model.reached("first"), SOON)
        assert model.prompts == [("s", "first")]  # the others wait their turn
        assert states(manager) == {"s": "working"}
        # Another session runs meanwhile.
        assert (await result(ask(manager, "t", "other"))).text == "echo: other"
        model.release("first")
        assert (await result(first)).text == "one done"
        assert (await result(second)).text == "echo: second"
        assert (await result(third)).text == "echo: third"
        assert [p for s, p in model.prompts if s == "s"] == ["first", "second", "third"]
        assert model.opened == ["s", "t"]  # one backend per session, kept between turns
        assert states(manager) == {"s": "idle", "t": "idle"}


async def test_a_full_queue_refuses_the_next_query(tmp_path: Path) -> None:
    model = FakeModel()
    model.script("wait", Wait("go"))
    async with running(tmp_path, model, max_queued_queries=1) as manager:
        running_job = ask(manager, "s", "wait")
        await asyncio.wait_for(model.reached("go"), SOON)
        queued = ask(manager, "s", "queued")
        with pytest.raises(ev.BackendError, match="already has 1 queries waiting"):
            ask(manager, "s", "one too many")
        model.release("go")
        await result(running_job)
        assert (await result(queued)).text == "echo: queued"


async def test_cancel_of_a_queued_query_drops_it_before_it_reaches_the_model(
    tmp_path: Path,
) -> None:
    model = FakeModel()
    model.script("wait", Wait("go"))
    async with running(tmp_path, model) as manager:
        first = ask(manager, "s", "wait")
        queued = ask(manager, "s", "never sent")
        await asyncio.wait_for(model.reached("go"), SOON)
        await manager.cancel(queued)
        with pytest.raises(ev.TurnCancelled, match="before it started"):
            await result(queued)
        model.release("go")
        await result(first)
        assert (await result(ask(manager, "s", "next"))).text == "echo: next"
        assert [p for _, p in model.prompts] == ["wait", "next"]


async def test_cancel_of_a_turn_that_stops_keeps_its_backend(tmp_path: Path) -> None:
    model = FakeModel()
    model.script("long", Say("partial"), Wait("never"))
    async with running(tmp_path, model) as manager:
        job = ask(manager, "s", "long")
        await asyncio.wait_for(model.reached("never"), SOON)
        await manager.cancel(job)
        with pytest.raises(ev.TurnCancelled):
            await result(job)
        assert job.failure().partial_text == "partial"  # the error's data
        assert (await result(ask(manager, "s", "next"))).text == "echo: next"
        assert model.opened == ["s"] and model.closed == []


async def test_cancel_abandons_a_stuck_turn_and_the_next_query_runs(tmp_path: Path) -> None:
    model = FakeModel()
    model.script("hang", Say("partial"), Wait("never", stuck=True))
    async with running(tmp_path, model) as manager:
        job = ask(manager, "s", "hang")
        await asyncio.wait_for(model.reached("never"), SOON)
        await manager.cancel(job)
        with pytest.raises(ev.TurnCancelled):
            await result(job)
        assert job.failure().partial_text == "partial"
        assert model.closed == ["s"]  # the stuck backend is let go...
        assert (await result(ask(manager, "s", "next"))).text == "echo: next"
        assert model.opened == ["s", "s"]  # ...and a fresh one answers the next query
        assert states(manager) == {"s": "idle"}


async def test_eviction_closes_the_least_recently_used_backend_and_reopens_it(
    tmp_path: Path,
) -> None:
    model = FakeModel()
    async with running(tmp_path, model, max_live_sessions=2) as manager:
        await result(ask(manager, "a", "1"))
        await result(ask(manager, "b", "1"))
        await result(ask(manager, "a", "2"))  # a is used more recently than b now
        await result(ask(manager, "c", "1"))
        assert model.closed == ["b"]
        assert sorted(model.live()) == ["a", "c"]
        assert states(manager) == {"a": "idle", "b": "evicted", "c": "idle"}
        # b's next query opens its backend again (a is the least recently used now).
        assert (await result(ask(manager, "b", "2"))).text == "echo: 2"
        assert model.closed == ["b", "a"]
        assert model.opened == ["a", "b", "c", "b"]
        assert sorted(model.live()) == ["b", "c"]


async def test_a_working_session_is_never_evicted(tmp_path: Path) -> None:
    model = FakeModel()
    model.script("wait", Wait("go"), Say("finished"))
    async with running(tmp_path, model, max_live_sessions=1) as manager:
        busy = ask(manager, "a", "wait")
        await asyncio.wait_for(model.reached("go"), SOON)
        # Every live session is busy: the new one runs over the limit.
        assert (await result(ask(manager, "b", "1"))).text == "echo: 1"
        assert model.closed == []
        model.release("go")
        assert (await result(busy)).text == "finished"


async def test_the_idle_reaper_closes_idle_backends_only(tmp_path: Path) -> None:
    model = FakeModel()
    model.script("wait", Wait("go"))
    async with running(tmp_path, model, idle_timeout_seconds=0.3) as manager:
        manager.start_background()
        await result(ask(manager, "idle", "1"))
        busy = ask(manager, "busy", "wait")
        await asyncio.wait_for(model.reached("go"), SOON)
        await eventually(lambda: model.closed == ["idle"])
        await asyncio.sleep(0.5)  # over the timeout again: the working session stays
        assert model.closed == ["idle"]
        assert states(manager) == {"idle": "evicted", "busy": "working"}
        model.release("go")
        await result(busy)
        assert (await result(ask(manager, "idle", "2"))).text == "echo: 2"
        assert model.opened == ["idle", "busy", "idle"]


async def test_a_backend_that_crashes_mid_turn_fails_the_query_and_the_next_opens_a_new_one(
    tmp_path: Path,
) -> None:
    model = FakeModel()
    model.script("boom", Say("partial "), Crash("the process ended unexpectedly"))
    async with running(tmp_path, model) as manager:
        sink = Events()
        job = ask(manager, "s", "boom", sink)
        with pytest.raises(ev.BackendError, match="the process ended unexpectedly"):
            await result(job)
        assert sink.text() == "partial "  # what streamed before it died stays
        assert model.closed == ["s"]
        assert (await result(ask(manager, "s", "next"))).text == "echo: next"
        assert model.opened == ["s", "s"]


async def test_a_backend_that_died_while_idle_is_replaced_for_the_next_query(
    tmp_path: Path,
) -> None:
    model = FakeModel()
    async with running(tmp_path, model) as manager:
        await result(ask(manager, "s", "1"))
        model.kill("s")
        assert (await result(ask(manager, "s", "2"))).text == "echo: 2"
        assert model.opened == ["s", "s"]


async def test_a_backend_that_cannot_start_fails_every_waiting_query(tmp_path: Path) -> None:
    model = FakeModel()
    model.fail_open = "the model client could not start: no key"
    async with running(tmp_path, model) as manager:
        sink = Events()
        first = ask(manager, "s", "1", sink)
        second = ask(manager, "s", "2")
        for job in (first, second):
            with pytest.raises(ev.BackendError, match="could not start: no key"):
                await result(job)
        assert [e.state for e in sink.of(ev.Status)] == ["connecting"]
        model.fail_open = None  # fixed: the next query starts it
        assert (await result(ask(manager, "s", "3"))).text == "echo: 3"


async def test_delete_while_a_turn_runs_cancels_it_and_what_waits(tmp_path: Path) -> None:
    model = FakeModel()
    model.script("long", Wait("never"))
    async with running(tmp_path, model) as manager:
        job = ask(manager, "s", "long")
        queued = ask(manager, "s", "after")
        await asyncio.wait_for(model.reached("never"), SOON)
        assert await manager.delete("s") is True
        with pytest.raises(ev.TurnCancelled):
            await result(job)
        with pytest.raises(ev.TurnCancelled, match="deleted"):
            await result(queued)
        assert model.closed == ["s"]
        assert [p for _, p in model.prompts] == ["long"]
        assert states(manager) == {}
        assert await manager.delete("s") is False


async def test_a_new_session_takes_the_warm_spare_and_a_spare_gives_its_slot_up_first(
    tmp_path: Path,
) -> None:
    model = FakeModel()
    async with running(tmp_path, model, prewarm=1, max_live_sessions=2) as manager:
        manager.start_background()
        await eventually(lambda: len(model.opened) == 1)
        (spare,) = model.opened  # a spare keeps the id it was opened under
        assert spare.startswith("spare-")
        assert (await result(ask(manager, "a", "1"))).text == "echo: 1"
        # The session's backend is the spare's: nothing was opened for the query. After
        # the session's first answer a new spare fills the free slot.
        await eventually(lambda: len(model.opened) == 2)
        assert model.opened[0] == spare and "a" not in model.opened
        new_spare = model.opened[1]
        assert new_spare.startswith("spare-")
        # A session the spare does not fit (another model) takes the spare's slot, not
        # the idle session's.
        other = manager.submit("b", "1", [], Events(), model="other-model")
        assert (await result(other)).text == "echo: 1"
        assert model.closed == [new_spare]
        assert sorted(model.live()) == sorted([spare, "b"])
