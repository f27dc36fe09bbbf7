"""The permission policy and its broker in-process, reached the way a backend reaches
them: the scripted fake backend (dave_lsp/testing/fake_backend.py) asks for a tool
through its session's `ask` callback.

What the editor sees (the permission events of the query, its result or error) and what
the model is told (the answer its tool use got) are asserted."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from dave_lsp import events as ev
from dave_lsp.permissions.policy import NO_PROGRESS_REASON, UnknownRequest
from dave_lsp.session.manager import SessionManager
from dave_lsp.testing.fake_backend import Ask, FakeModel
from tests.harness.inprocess import SOON, Events, ask, result, running

TESTS = Ask("Bash", {"command": "npm test"})


def settings(tmp_path: Path, allow: list[str] = [], deny: list[str] = []) -> None:  # noqa: B006
    """The user's Claude Code settings (in the test's HOME: harness/inprocess.py)."""
    folder = tmp_path / "home" / ".claude"
    folder.mkdir(parents=True, exist_ok=True)
    permissions = {"allow": allow, "deny": deny}
    (folder / "settings.json").write_text(json.dumps({"permissions": permissions}))


async def answered(manager: SessionManager, sink: Events, decision: str) -> ev.PermissionRequested:
    """Answer the query's permission request as the user, once it is asked."""
    request = await asyncio.wait_for(sink.next(ev.PermissionRequested), SOON)
    manager.policy.broker.answer(request.request_id, decision)
    return request


async def test_an_unanswered_request_is_denied_with_interrupt_at_the_timeout(
    tmp_path: Path,
) -> None:
    model = FakeModel()
    model.script("run the tests", TESTS)
    async with running(tmp_path, model, permission_timeout_seconds=0.2) as manager:
        sink = Events()
        job = ask(manager, "s", "run the tests", sink)
        with pytest.raises(ev.BackendError, match=r"within 0\.2 s"):
            await result(job)
        (request,) = sink.of(ev.PermissionRequested)
        assert request.tool_name == "Bash" and "npm test" in request.message
        (resolved,) = sink.of(ev.PermissionResolved)
        assert (resolved.request_id, resolved.decision, resolved.by) == (
            request.request_id,
            "deny",
            "cancel",
        )
        ((_, answer),) = model.answers
        assert not answer.allow and answer.interrupt
        assert "permissionTimeoutSeconds" in answer.reason
        with pytest.raises(UnknownRequest):  # a late answer finds nothing pending
            manager.policy.broker.answer(request.request_id, "allow")


async def test_cancel_denies_the_pending_request_and_ends_the_turn(tmp_path: Path) -> None:
    model = FakeModel()
    model.script("run the tests", TESTS)
    async with running(tmp_path, model) as manager:
        sink = Events()
        job = ask(manager, "s", "run the tests", sink)
        request = await asyncio.wait_for(sink.next(ev.PermissionRequested), SOON)
        assert [i.state for i in manager.list()] == ["needsInput"]
        await manager.cancel(job)
        with pytest.raises(ev.TurnCancelled):
            await result(job)
        resolved = sink.of(ev.PermissionResolved)
        assert [(r.request_id, r.decision, r.by) for r in resolved] == [
            (request.request_id, "deny", "cancel")
        ]
        ((_, answer),) = model.answers
        assert not answer.allow and answer.interrupt
        with pytest.raises(UnknownRequest, match="may have been cancelled"):
            manager.policy.broker.answer(request.request_id, "allow")
        assert [i.state for i in manager.list()] == ["idle"]


async def test_allow_always_adds_a_rule_that_allows_the_next_use(tmp_path: Path) -> None:
    model = FakeModel()
    model.script("run the tests", TESTS)
    async with running(tmp_path, model) as manager:
        first = Events()
        job = ask(manager, "s", "run the tests", first)
        request = await answered(manager, first, "allowAlways")
        assert request.allow_always is not None
        assert request.allow_always.rule == "Bash(npm test)"
        await result(job)
        assert [(r.decision, r.by, r.rule) for r in first.of(ev.PermissionResolved)] == [
            ("allow", "user", "Bash(npm test)")
        ]

        second = Events()
        await result(ask(manager, "s", "run the tests", second))
        assert second.of(ev.PermissionRequested) == []  # not asked again
        assert [(r.decision, r.by, r.rule) for r in second.of(ev.PermissionResolved)] == [
            ("allow", "rule", "Bash(npm test)")
        ]
        assert [answer.allow for _, answer in model.answers] == [True, True]
        ok = [r for r in second.of(ev.ToolResult) if not r.is_error]
        assert len(ok) == 1  # the tool ran


async def test_a_denied_tool_tells_the_model_why_and_the_turn_goes_on(tmp_path: Path) -> None:
    model = FakeModel()
    model.script("run the tests", TESTS)
    async with running(tmp_path, model) as manager:
        sink = Events()
        job = ask(manager, "s", "run the tests", sink)
        await answered(manager, sink, "deny")
        assert (await result(job)).stop_reason == "end_turn"
        ((_, answer),) = model.answers
        assert not answer.allow and not answer.interrupt
        (tool_result,) = sink.of(ev.ToolResult)
        assert tool_result.is_error


async def test_plan_mode_asks_for_a_tool_with_an_effect_whatever_the_rules(
    tmp_path: Path,
) -> None:
    settings(tmp_path, allow=["Bash(npm test)", "Read"])
    model = FakeModel()
    model.script("run the tests", TESTS)
    model.script("read", Ask("Read", {"file_path": str(tmp_path / "notes.txt")}))
    async with running(tmp_path, model, permission_mode="plan") as manager:
        sink = Events()
        job = ask(manager, "s", "run the tests", sink)
        await answered(manager, sink, "deny")  # asked, though a setting allows it
        await result(job)
        # A tool with no effect is still allowed by the setting.
        reading = Events()
        await result(ask(manager, "s", "read", reading))
        assert reading.of(ev.PermissionRequested) == []
        assert [(r.decision, r.by, r.rule) for r in reading.of(ev.PermissionResolved)] == [
            ("allow", "settings", "Read")
        ]
        # Out of plan mode the setting allows the command too.
        await manager.configure("s", permission_mode="default")
        default = Events()
        await result(ask(manager, "s", "run the tests", default))
        assert default.of(ev.PermissionRequested) == []
        assert [(r.decision, r.by) for r in default.of(ev.PermissionResolved)] == [
            ("allow", "settings")
        ]


async def test_a_settings_deny_rule_wins_over_every_allow(tmp_path: Path) -> None:
    settings(tmp_path, allow=["Bash"], deny=["Bash(rm:*)"])
    model = FakeModel()
    model.script("clean", Ask("Bash", {"command": "rm -rf build"}))
    model.script("run the tests", TESTS)
    async with running(tmp_path, model, permission_mode="bypassPermissions") as manager:
        sink = Events()
        await result(ask(manager, "s", "clean", sink))
        assert sink.of(ev.PermissionRequested) == []
        assert [(r.decision, r.by, r.rule) for r in sink.of(ev.PermissionResolved)] == [
            ("deny", "settings", "Bash(rm:*)")
        ]
        ((_, answer),) = model.answers
        assert not answer.allow and "Bash(rm:*)" in answer.reason
        # The allow rule still allows what the deny rule does not cover.
        allowed = Events()
        await result(ask(manager, "s", "run the tests", allowed))
        assert [(r.decision, r.by) for r in allowed.of(ev.PermissionResolved)] == [
            ("allow", "settings")
        ]


async def test_a_query_the_editor_cannot_answer_is_denied_without_asking(
    tmp_path: Path,
) -> None:
    model = FakeModel()
    model.script("run the tests", TESTS)
    async with running(tmp_path, model) as manager:
        sink = Events(can_ask=False)  # no progress token
        await result(ask(manager, "s", "run the tests", sink))
        assert sink.of(ev.PermissionRequested) == []
        ((_, answer),) = model.answers
        assert not answer.allow and answer.reason == NO_PROGRESS_REASON


async def test_deleting_the_session_denies_its_pending_request(tmp_path: Path) -> None:
    model = FakeModel()
    model.script("run the tests", TESTS)
    async with running(tmp_path, model) as manager:
        sink = Events()
        job = ask(manager, "s", "run the tests", sink)
        request = await asyncio.wait_for(sink.next(ev.PermissionRequested), SOON)
        assert await manager.delete("s") is True
        with pytest.raises(ev.TurnCancelled):
            await result(job)
        assert [(r.request_id, r.decision, r.by) for r in sink.of(ev.PermissionResolved)] == [
            (request.request_id, "deny", "cancel")
        ]
        ((_, answer),) = model.answers
        assert not answer.allow and answer.interrupt
