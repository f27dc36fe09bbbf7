"""What a session's backend calls back during a turn: the permission callback
(`backends.base.PermissionAsker`: the policy decides, for the running turn) and the tool
observer (`backends.base.ToolObserver`: the turn's review of file changes), and the
keeping of a turn's changes when it ends.

It knows its session only through `Hooked`, which the actor (actor.py) satisfies.
"""

from __future__ import annotations

from typing import Any, Protocol

from dave_lsp.backends.base import PermissionAnswer, mode_after
from dave_lsp.permissions.policy import PermissionPolicy, ToolRequest
from dave_lsp.permissions.rules import Suggestion
from dave_lsp.review.review import Review
from dave_lsp.session.settings import Settings
from dave_lsp.session.turn import QueryJob


class Hooked(Protocol):
    """The session the hooks serve (its settings and review change when a spare is
    put to use, so they are read at each call)."""

    @property
    def session_id(self) -> str: ...

    current: QueryJob | None
    closing: bool
    settings: Settings
    review: Review


class BackendHooks:
    """The backend's view of its session while a turn runs."""

    def __init__(self, session: Hooked, policy: PermissionPolicy) -> None:
        self._session = session
        self._policy = policy

    async def before_tool(
        self, tool_use_id: str, tool_name: str, tool_input: dict[str, Any]
    ) -> None:
        await self._session.review.before_tool(tool_name, tool_input)

    async def after_tool(self, tool_use_id: str, tool_name: str) -> str | None:
        return await self._session.review.after_tool(tool_use_id)

    async def ask(
        self,
        tool_use_id: str,
        tool_name: str,
        tool_input: dict[str, Any],
        suggestions: list[Suggestion],
        parent_tool_use_id: str | None = None,
    ) -> PermissionAnswer:
        """The backend's permission callback: the policy decides, for the running turn."""
        session = self._session
        job = session.current
        if job is None or job.cancel_requested or session.closing:
            return PermissionAnswer(
                allow=False, reason="The request was cancelled.", interrupt=True
            )
        job.produced = True  # the model asked for a tool: this turn is under way
        request = ToolRequest(tool_use_id, tool_name, tool_input, suggestions, parent_tool_use_id)
        settings = session.settings
        config = settings.config
        decision = await self._policy.decide(
            session.session_id,
            config.cwd,
            settings.record.rules,
            request,
            job.sink,
            config.files,
            mode=config.permission_mode,
            env=config.env,
            editor=config.editor,
            trusted=config.trusted,
        )
        if decision.new_rule is not None:
            settings.add_rule(decision.new_rule)
        if decision.edit is not None:
            session.review.accept_edit(tool_use_id, decision.edit)
        mode = mode_after(tool_name, decision.answer)
        if mode is not None:
            # The CLI leaves plan mode on an approval: remember where it goes, as
            # dave/setPermissionMode would.
            settings.configure(permission_mode=mode, model=None)
        return decision.answer

    async def finish_changes(self, job: QueryJob, *, succeeded: bool) -> None:
        """Keep the turn's file changes and put them on the job. Turns are numbered in
        the session's order; one that failed after changing files counts too, so its
        changes are not overwritten by the next turn's."""
        settings = self._session.settings
        # The tools it ran, when known: a turn of reads only needs no second checkpoint.
        tools = [result.tool_name for result in job.tool_results] if succeeded else None
        change_set = await self._session.review.finish_turn(settings.record.turns + 1, tools)
        if change_set is None:
            return
        job.changes = list(change_set.files)
        if not succeeded:
            settings.count_failed_turn()
