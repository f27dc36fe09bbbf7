"""The references that use claude-agent-sdk directly, in this process, with the same
options dave-lsp's Claude backend gives it (see dave_lsp/backends/claude/session.py)."""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from claude_agent_sdk import (
    ClaudeAgentOptions,
    ClaudeSDKClient,
    PermissionResultAllow,
    ResultMessage,
    ToolPermissionContext,
    query,
)
from claude_agent_sdk.types import StreamEvent


async def _allow(
    _name: str, tool_input: dict[str, Any], _context: ToolPermissionContext
) -> PermissionResultAllow:
    return PermissionResultAllow(updated_input=tool_input)


def options(env: dict[str, str], cwd: str, *, with_callback: bool = True) -> ClaudeAgentOptions:
    """What dave-lsp's ClaudeSession passes, minus what only a server needs."""
    stderr: deque[str] = deque(maxlen=20)
    return ClaudeAgentOptions(
        system_prompt={"type": "preset", "preset": "claude_code"},
        include_partial_messages=True,
        permission_mode="default",
        cwd=cwd,
        env=dict(env),
        can_use_tool=_allow if with_callback else None,
        stderr=stderr.append,
    )


def _text_delta(message: object) -> str | None:
    if not isinstance(message, StreamEvent) or message.parent_tool_use_id is not None:
        return None
    event = message.event
    if event.get("type") != "content_block_delta":
        return None
    delta = event.get("delta") or {}
    return str(delta.get("text", "")) if delta.get("type") == "text_delta" else None


class Turn:
    """Timings of one turn, seconds from sending the prompt."""

    def __init__(self) -> None:
        self.first_token = float("nan")
        self.last_token = float("nan")
        self.result = float("nan")
        self.text: list[str] = []
        self.pid: int | None = None


class DirectClient:
    """One connected ClaudeSDKClient: one CLI process, one conversation."""

    def __init__(self, env: dict[str, str], cwd: str) -> None:
        self.client = ClaudeSDKClient(options(env, cwd))

    async def connect(self) -> None:
        await self.client.connect()

    @property
    def pid(self) -> int | None:
        process = getattr(getattr(self.client, "_transport", None), "_process", None)
        pid = getattr(process, "pid", None)
        return pid if isinstance(pid, int) else None

    async def turn(self, prompt: str) -> Turn:
        out = Turn()
        start = time.perf_counter()
        await self.client.query(prompt)
        async for message in self.client.receive_response():
            text = _text_delta(message)
            if text is not None:
                now = time.perf_counter() - start
                if not out.text:
                    out.first_token = now
                out.last_token = now
                out.text.append(text)
            elif isinstance(message, ResultMessage):
                out.result = time.perf_counter() - start
                if message.is_error:
                    raise RuntimeError(f"direct SDK turn failed: {message.result}")
        return out

    async def close(self) -> None:
        await self.client.disconnect()


async def one_shot(prompt: str, env: dict[str, str], cwd: str) -> Turn:
    """`query()` with a new CLI process for this one message; timed to its result."""
    out = Turn()
    start = time.perf_counter()
    stream = query(prompt=prompt, options=options(env, cwd, with_callback=False))
    try:
        async for message in stream:
            text = _text_delta(message)
            if text is not None:
                if not out.text:
                    out.first_token = time.perf_counter() - start
                out.text.append(text)
            elif isinstance(message, ResultMessage):
                out.result = time.perf_counter() - start
                if message.is_error:
                    raise RuntimeError(f"one-shot query failed: {message.result}")
    finally:
        close = getattr(stream, "aclose", None)
        if close is not None:
            await close()
    return out
