"""One tool call of an OpenAI backend's turn, the tool loop's step: reported, let through
or refused by the permission mode (permissions/modes.py), else asked through the
session's permission callback, run, and answered in the turn's trail.

The editor's tools only read, and run unasked. An MCP server's tool (mcp_tools.py) has
an effect the mode cannot judge: it asks (bypassPermissions lets it through, plan mode
refuses it), unless it is annotated read-only, which runs unasked as Read does in the
session's folder. A built-in or MCP tool the mode lets through still asks when the
user's settings rules speak of it (a deny or ask rule: the policy applies it). An
allowed file edit runs between the observer's hooks, so the session snapshots the file
first and lands the user's edited version after. A running tool or permission question
is a task `interrupt` can cancel.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final, TypeVar

import attrs

from dave_lsp.backends.base import PermissionAnswer, PermissionAsker, SessionConfig, ToolObserver
from dave_lsp.backends.common import one_line
from dave_lsp.backends.openai import tools
from dave_lsp.backends.openai.mcp_tools import McpTool, McpTools
from dave_lsp.backends.openai.messages import Trail
from dave_lsp.backends.openai.stream import Call, Turn, arguments
from dave_lsp.events import (
    BackendError,
    Event,
    PermissionResolved,
    Status,
    ToolResult,
    ToolUse,
    TurnCancelled,
)
from dave_lsp.permissions import modes, settings_rules
from dave_lsp.tools import catalog
from dave_lsp.tools.editor import EditorToolError
from dave_lsp.tools.summaries import describe_tool_use, format_tool_summary

T = TypeVar("T")

BASH_STATUS_INTERVAL: Final = 0.5
"""Seconds between two `status` lines of a running command's output."""


async def call_tool(
    turn: Turn,
    call: Call,
    trail: Trail,
    config: SessionConfig,
    ask: PermissionAsker,
    observer: ToolObserver | None,
    mcp: McpTools | None = None,
) -> AsyncIterator[Event]:
    """Report, permit, run and answer one tool call; its result joins `trail`."""
    cwd = config.cwd
    call_input, bad_arguments = arguments(call)
    yield ToolUse(call.id, call.name, call_input, describe_tool_use(call.name, call_input, cwd))
    editor = config.editor
    mcp_tool = mcp.find(call.name) if mcp is not None else None
    if bad_arguments:
        output = tools.Output(bad_arguments, is_error=True)
    elif (
        call.name not in tools.BUILTIN
        and not tools.is_editor_tool(call.name, editor)
        and mcp_tool is None
    ):
        why = mcp.missing(call.name) if mcp is not None else ""
        output = tools.Output(f"No such tool: {call.name}. {why}".strip(), is_error=True)
    else:
        verdict = _verdict(call, call_input, config, mcp_tool)
        if (
            verdict == "allow"
            and (call.name in tools.BUILTIN or mcp_tool is not None)
            and await asyncio.to_thread(
                settings_rules.speaks, call.name, call_input, cwd, config.env, config.trusted
            )
        ):
            verdict = "ask"  # the user's deny or ask rule: the policy applies it
        if verdict == "allow":
            yield PermissionResolved(f"auto-{call.id}", "allow", "mode")
            answer = PermissionAnswer(allow=True)
        elif verdict == "deny":
            yield PermissionResolved(f"auto-{call.id}", "deny", "mode")
            answer = PermissionAnswer(allow=False, reason=tools.PLAN_MODE_REASON)
        else:
            answer = await interruptible(turn, ask(call.id, call.name, call_input, [], None))
            if not answer.allow and answer.interrupt:
                if turn.cancelled:
                    raise TurnCancelled()
                raise BackendError(f"the turn was stopped: {answer.reason or 'denied'}")
        if answer.allow:
            call_input = answer.updated_input or call_input
            work = _run(turn, call, call_input, config, observer, mcp)
            output = await interruptible(turn, work)
        else:
            output = tools.Output(_denied(answer.reason), is_error=True)
    summary = format_tool_summary(
        call.name, call_input, output.text, output.structured, cwd, output.is_error
    )
    trail.answer(call.id, output.text)
    yield ToolResult(call.id, call.name, summary, output.is_error)


def _verdict(
    call: Call, call_input: dict[str, Any], config: SessionConfig, mcp_tool: McpTool | None
) -> modes.Verdict:
    """What the mode says before any rule: the editor's tools only read; an MCP tool
    asks unless the mode bypasses permissions or the tool is annotated read-only (plan
    mode refuses the others); a built-in tool is the mode gate's."""
    mode = config.permission_mode
    if mcp_tool is not None:
        if mode == modes.BYPASS or mcp_tool.read_only:
            return "allow"
        return "deny" if mode == modes.PLAN else "ask"
    if call.name not in tools.BUILTIN:
        return "allow"
    target = catalog.target_of(call.name, call_input)
    return modes.gate(call.name, target, mode, config.folders)


async def interruptible(turn: Turn, work: Awaitable[T]) -> T:
    """Await `work` as a task `interrupt` can cancel; its cancel is TurnCancelled."""
    task = asyncio.ensure_future(work)
    turn.task = task
    try:
        return await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if turn.cancelled and (current is None or not current.cancelling()):
            raise TurnCancelled() from None
        raise
    finally:
        turn.task = None


async def _run(
    turn: Turn,
    call: Call,
    call_input: dict[str, Any],
    config: SessionConfig,
    observer: ToolObserver | None,
    mcp: McpTools | None = None,
) -> tools.Output:
    """Run an allowed tool (`mcp`: the MCP servers, when it is one of theirs); file tools
    between the observer's hooks, so the session snapshots the file first and lands the
    user's edited version after."""
    if observer is not None:  # every tool: the session's checkpoint is taken first
        await observer.before_tool(call.id, call.name, call_input)
    observer = observer if call.name in catalog.FILE_EDITS else None
    files = config.files
    mcp_tool = mcp.find(call.name) if mcp is not None else None
    if mcp is not None and mcp_tool is not None:
        output = await mcp.call(mcp_tool, call_input)
    elif call.name == catalog.BASH and files is not None and catalog.BASH in files.replaces:
        # The client's terminal runs it (ACP: acp/terminals.py), where the user sees it.
        try:
            output = tools.Output(await files.call(call.name, call_input, config.cwd))
        except EditorToolError as exc:
            output = tools.Output(str(exc), is_error=True)
    else:
        output = await tools.run(
            call.name,
            call_input,
            config.cwd,
            config.env,
            config.editor,
            _status_lines(turn) if call.name == catalog.BASH else None,
            config.additional_directories,
        )
    if observer is not None and not output.is_error:
        told = await observer.after_tool(call.id, call.name)
        if told:
            output = attrs.evolve(output, text=f"{output.text}\n\n{told}")
    return output


def _status_lines(turn: Turn) -> Callable[[str], None] | None:
    """A running command's output as `status` lines (the protocol has no report for a
    tool's progress; `message` on a status report is its status-bar line), at most one
    per BASH_STATUS_INTERVAL."""
    direct = turn.direct
    if direct is None:
        return None
    last = 0.0

    def show(text: str) -> None:
        nonlocal last
        now = time.monotonic()
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if lines and now - last >= BASH_STATUS_INTERVAL and not turn.cancelled:
            last = now
            direct(Status("working", f"Bash: {one_line(lines[-1], 100)}"))

    return show


def _denied(reason: str) -> str:
    reason = reason.strip()
    if not reason:
        return "The user denied this tool use."
    return reason if reason.startswith("The ") else f"The user denied this tool use: {reason}"
