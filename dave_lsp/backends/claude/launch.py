"""Starting and stopping a session's Claude Code CLI: its `ClaudeAgentOptions` (mode,
model, folder, environment, which settings load, the MCP servers of the editor's and the
client's tools, the review's hooks around file tools), the checks before it starts,
connecting with errors that say what to do, and disconnecting.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from claude_agent_sdk import (
    ClaudeAgentOptions,
    ClaudeSDKClient,
    CLINotFoundError,
    HookContext,
    HookInput,
    HookJSONOutput,
    HookMatcher,
    SdkMcpTool,
    create_sdk_mcp_server,
)
from claude_agent_sdk.types import CanUseTool, HookEvent, McpServerConfig

from dave_lsp import events as ev
from dave_lsp import trust
from dave_lsp.backends.base import SessionConfig, ToolObserver
from dave_lsp.backends.claude.cut import Cut
from dave_lsp.backends.common import one_line
from dave_lsp.backends.registry import ClaudeOptions
from dave_lsp.tools.catalog import FILE_EDIT_MATCHER
from dave_lsp.tools.editor import EditorToolError, ToolServer

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 60.0
CLOSE_TIMEOUT = 4.0
# Why a client file tool use must not run (the user's deny rule), or None.
Denied = Callable[[str, dict[str, Any]], str | None]


def agent_options(
    config: SessionConfig,
    settings: ClaudeOptions,
    *,
    resume: str | Cut | None,
    hooks: dict[HookEvent, list[HookMatcher]],
    can_use_tool: CanUseTool,
    stderr: Callable[[str], None],
    settings_deny: Denied,
) -> ClaudeAgentOptions:
    return ClaudeAgentOptions(
        system_prompt={"type": "preset", "preset": "claude_code"},
        include_partial_messages=True,
        permission_mode=config.permission_mode,  # type: ignore[arg-type]
        cwd=config.cwd,
        add_dirs=list(config.additional_directories),
        model=config.model,
        cli_path=settings.cli_path,
        env=cli_env(config),
        can_use_tool=can_use_tool,
        stderr=stderr,
        # A Cut (dave/rewind, dave/fork: cut.py) resumes a copy, cut after a message.
        resume=resume.conversation if isinstance(resume, Cut) else resume,
        fork_session=isinstance(resume, Cut),
        resume_session_at=resume.at if isinstance(resume, Cut) else None,
        resume_drops_turn=resume.drops if isinstance(resume, Cut) else None,
        hooks=hooks or None,
        mcp_servers={
            **config.mcp_servers,
            **tool_server(config.editor, config.cwd, folders=config.additional_directories),
            **tool_server(config.files, config.cwd, settings_deny),
        },
        # The client's file tools stand in for these (probed: docs/architecture.md).
        disallowed_tools=list(config.files.replaces) if config.files is not None else [],
        # An untrusted folder's project settings (hooks, .mcp.json servers, env,
        # CLAUDE.md) are not loaded; the user's own ~/.claude ones are (probed:
        # docs/architecture.md). None is the CLI's default: every source.
        setting_sources=None if config.trusted else ["user"],
    )


def review_hooks(observer: ToolObserver) -> dict[HookEvent, list[HookMatcher]]:
    """The session's observer around file tools. The CLI runs these in every permission
    mode (probed: docs/architecture.md). Before every tool (the session's checkpoint is
    taken before any tool runs: review/checkpoints.py); after file tools only, which
    keeps other tools free of that round trip."""

    async def before(
        hook_input: HookInput, tool_use_id: str | None, _context: HookContext
    ) -> HookJSONOutput:
        tool_input = hook_input.get("tool_input")
        await observer.before_tool(
            tool_use_id or "",
            str(hook_input.get("tool_name") or ""),
            dict(tool_input) if isinstance(tool_input, dict) else {},
        )
        return {}

    async def after(
        hook_input: HookInput, tool_use_id: str | None, _context: HookContext
    ) -> HookJSONOutput:
        context = await observer.after_tool(
            tool_use_id or "", str(hook_input.get("tool_name") or "")
        )
        if not context:
            return {}
        return {
            "hookSpecificOutput": {"hookEventName": "PostToolUse", "additionalContext": context}
        }

    return {
        "PreToolUse": [HookMatcher(matcher=None, hooks=[before])],
        "PostToolUse": [HookMatcher(matcher=FILE_EDIT_MATCHER, hooks=[after])],
    }


def cli_env(config: SessionConfig) -> dict[str, str]:
    env = dict(config.env)
    limit = config.request_timeout_seconds
    if limit and "API_TIMEOUT_MS" not in env:
        env["API_TIMEOUT_MS"] = str(int(limit * 1000))
    return env


def preflight(config: SessionConfig) -> None:
    """What the CLI would refuse, said before it starts."""
    if (
        config.permission_mode == "bypassPermissions"
        and hasattr(os, "geteuid")
        and os.geteuid() == 0
        and config.env.get("IS_SANDBOX", os.environ.get("IS_SANDBOX")) != "1"
    ):
        raise ev.BackendError(
            "Claude Code refuses permissionMode bypassPermissions when run as root; "
            "set IS_SANDBOX=1 in initializationOptions.env if this machine is a sandbox, "
            "or use another permission mode"
        )
    if not os.path.isdir(config.cwd):
        raise ev.BackendError(
            f"the session's cwd {config.cwd} is not a directory; pass an existing folder "
            "as cwd in dave/query or initializationOptions"
        )


def not_found(cli_path: str | None) -> str:
    where = f"at {cli_path}" if cli_path else "(the bundled binary is missing)"
    return (
        f"Claude Code CLI not found {where}; set initializationOptions.claude.cliPath "
        "to the `claude` executable, or leave it unset to use the one bundled with "
        "claude-agent-sdk"
    )


def untrusted_notice(cwd: str) -> str | None:
    try:
        return trust.check(cwd).untrusted_notice()
    except trust.TrustError:
        return None


def tool_server(
    server: ToolServer | None,
    cwd: str,
    denied: Denied | None = None,
    folders: tuple[str, ...] = (),
) -> dict[str, McpServerConfig]:
    """A `ToolServer`'s tools as an in-process MCP server of its name (the editor's is
    `editor`, not `ide`: the CLI keeps only two tools of a server by that name); none
    when it offers none. The SDK runs each call as its own task, so a tool waiting on
    the editor blocks nothing. `denied`: why a call must not run (the user's deny rule),
    checked as it runs, since bypassPermissions runs MCP tools without asking."""
    if server is None or not server.specs():
        return {}

    def handler(name: str) -> Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]:
        async def call(args: dict[str, Any]) -> dict[str, Any]:
            reason = await asyncio.to_thread(denied, name, args) if denied else None
            if reason:
                return {"content": [{"type": "text", "text": reason}], "is_error": True}
            try:
                text = await server.call(name, args, cwd, folders)
            except EditorToolError as exc:
                return {"content": [{"type": "text", "text": str(exc)}], "is_error": True}
            return {"content": [{"type": "text", "text": text}]}

        return call

    tools = [
        SdkMcpTool(spec.name, spec.description, spec.input_schema, handler(spec.name))
        for spec in server.specs()
    ]
    name = server.server_name
    return {name: create_sdk_mcp_server(name=name, tools=tools)}


def client_pid(client: ClaudeSDKClient) -> int | None:
    # The SDK does not expose the CLI's PID; its subprocess transport holds it. Used
    # only to make sure the process is gone after close, so a miss is not fatal.
    process = getattr(getattr(client, "_transport", None), "_process", None)
    pid = getattr(process, "pid", None)
    return pid if isinstance(pid, int) else None


async def connect(client: ClaudeSDKClient, stderr: Iterable[str], cli_path: str | None) -> None:
    """Start the client's CLI; BackendError saying what to do when it does not start
    (`stderr`: what the CLI wrote so far)."""
    try:
        await asyncio.wait_for(client.connect(), CONNECT_TIMEOUT)
    except CLINotFoundError:
        raise ev.BackendError(not_found(cli_path)) from None
    except TimeoutError:
        await disconnect(client)
        raise ev.BackendError(
            f"Claude Code did not start within {CONNECT_TIMEOUT:.0f} s; "
            "check claude.cliPath and the server's log"
        ) from None
    except Exception as exc:
        detail = one_line(" ".join(stderr) or str(exc))
        raise ev.BackendError(f"Claude Code failed to start: {detail}") from None


async def disconnect(client: ClaudeSDKClient) -> None:
    try:
        await asyncio.wait_for(client.disconnect(), CLOSE_TIMEOUT)
    except Exception as exc:  # the caller kills the process all the same
        log.debug("disconnect: %s", one_line(str(exc)))
