"""The permission bridge: the CLI's `can_use_tool` callback, answered by the session
layer's asker (which applies the rules and the mode, and asks the user).

The callback does not ask itself: it puts an `Ask` into the client's inbox and waits,
so the turn sees a tool's `toolUse` before its permission request, in the order the CLI
sent them (docs/architecture.md), and the turn hands it to `PermissionBridge.answer`.
A client's file tools (ACP's `mcp__acp__Write`, ...) are asked under the built-in name
they stand in for, and answered here where the built-in would have run unasked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import attrs
from claude_agent_sdk import (
    PermissionResultAllow,
    PermissionResultDeny,
    PermissionUpdate,
    ToolPermissionContext,
)

from dave_lsp.backends.base import PermissionAnswer, PermissionAsker, SessionConfig, mode_after
from dave_lsp.permissions import settings_rules
from dave_lsp.permissions.rules import Suggestion


@attrs.define
class Ask:
    """A permission callback waiting for the turn's reader to handle it."""

    tool_use_id: str
    tool_name: str
    tool_input: dict[str, Any]
    suggestions: list[Suggestion]
    reply: asyncio.Future[PermissionAnswer]


class PermissionBridge:
    """`can_use_tool` for one session's clients, and the answer to each `Ask`."""

    def __init__(
        self,
        ask: PermissionAsker,
        config: Callable[[], SessionConfig],
        enqueue: Callable[[Ask], None],
        follow_mode: Callable[[str], None],
    ) -> None:
        """`config`: the session's config as it is now; `enqueue`: put an `Ask` into the
        live client's inbox; `follow_mode`: the CLI switched to this permission mode."""
        self._ask = ask
        self._config = config
        self._enqueue = enqueue
        self._follow_mode = follow_mode
        files = config().files
        self._renamed = (
            {f"mcp__{files.server_name}__{n}": n for n in files.replaces} if files else {}
        )

    def session_name(self, name: str) -> str:
        """The tool's name for the session layer: a client file tool is the built-in it
        stands in for (`mcp__acp__Write` is `Write`), so rules, proposals and summaries
        apply as they are."""
        return self._renamed.get(name, name)

    def settings_deny(self, name: str, tool_input: dict[str, Any]) -> str | None:
        """Why the user's settings deny this client file tool use
        (permissions/settings_rules.py), or None."""
        config = self._config()
        found = settings_rules.match(name, tool_input, config.cwd, config.env, config.trusted)
        return settings_rules.denial(found) if found and found.behavior == "deny" else None

    async def can_use_tool(
        self, tool_name: str, tool_input: dict[str, Any], context: ToolPermissionContext
    ) -> PermissionResultAllow | PermissionResultDeny:
        config = self._config()
        files = config.files
        if tool_name in self._renamed and files is not None:
            tool_name = self._renamed[tool_name]
            if files.runs_unasked(
                tool_name, tool_input, config.permission_mode, config.folders
            ) and not await asyncio.to_thread(
                settings_rules.speaks, tool_name, tool_input, config.cwd, config.env, config.trusted
            ):
                # The CLI asks for every MCP tool; the built-in would have run unasked.
                return PermissionResultAllow(updated_input=tool_input)
        reply: asyncio.Future[PermissionAnswer] = asyncio.get_running_loop().create_future()
        self._enqueue(
            Ask(
                context.tool_use_id or "",
                tool_name,
                tool_input,
                [suggestion(update) for update in context.suggestions],
                reply,
            )
        )
        answer = await reply
        if answer.allow:
            updates = None
            follow = mode_after(tool_name, answer)
            if follow is not None:
                self._follow_mode(follow)
            if answer.set_mode is not None:
                mode: Any = answer.set_mode
                updates = [PermissionUpdate(type="setMode", mode=mode, destination="session")]
            return PermissionResultAllow(
                updated_input=answer.updated_input or tool_input, updated_permissions=updates
            )
        return PermissionResultDeny(
            message=answer.reason or "The user denied this tool use.",
            interrupt=answer.interrupt,
        )

    async def answer(
        self, item: Ask, parent: str | None, reader: asyncio.Task[None] | None
    ) -> PermissionAnswer:
        """The user's answer to a permission request, unless the CLI dies first (its
        `reader` ends): then nobody is left to run the tool, and waiting on the user would
        hang the turn. `parent`: the Agent tool use whose subagent asks."""
        answer = PermissionAnswer(allow=False, reason="abandoned", interrupt=True)
        asking = asyncio.ensure_future(
            self._ask(item.tool_use_id, item.tool_name, item.tool_input, item.suggestions, parent)
        )
        try:
            watched: set[asyncio.Future[Any]] = {asking}
            if reader is not None:
                watched.add(reader)
            await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
            if asking.done():
                answer = asking.result()
            else:  # the reader ended: the CLI is gone
                asking.cancel()
                await asyncio.gather(asking, return_exceptions=True)
        finally:
            if not asking.done():
                asking.cancel()
            if not item.reply.done():
                item.reply.set_result(answer)
        return answer


def suggestion(update: Any) -> Suggestion:
    """The CLI's PermissionUpdate (an SDK object, or a dict from older SDKs), neutral."""

    def get(obj: Any, name: str) -> Any:
        return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)

    pairs: list[tuple[str, str | None]] = []
    for rule in get(update, "rules") or []:
        tool = get(rule, "tool_name") or get(rule, "toolName")
        content = get(rule, "rule_content") or get(rule, "ruleContent")
        if isinstance(tool, str):
            pairs.append((tool, content if isinstance(content, str) else None))
    return Suggestion(
        kind=str(get(update, "type") or ""),
        rules=tuple(pairs),
        mode=get(update, "mode"),
        behavior=get(update, "behavior"),
    )
