"""Warming up a Claude Code client connected ahead of need (a prewarm spare, or
`dave/newSession`).

The CLI's first turn of a conversation costs about three follow-ups, most of it work the
CLI does once per process. The warm-up sends a prompt that the session's own
`UserPromptSubmit` hook blocks, so that work is done before the user asks, while nothing
reaches the model and nothing enters the conversation (docs/architecture.md). The CLI
records the blocked prompt in a conversation file, deleted when a client that never ran
a turn closes.

Should a CLI let the prompt through (a version whose hooks did not run), warming up is
off from then on, for every session, until the server restarts: `WarmUpSwitch`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Mapping
from typing import Any, Literal

from claude_agent_sdk import (
    AssistantMessage,
    ClaudeSDKClient,
    HookContext,
    HookInput,
    HookJSONOutput,
    HookMatcher,
    ResultMessage,
)
from claude_agent_sdk.types import HookEvent, StreamEvent

from dave_lsp.backends.claude import history
from dave_lsp.backends.common import Ended, one_line

log = logging.getLogger(__name__)

WARM_UP_TIMEOUT = 10.0
WARM_UP_REASON = "dave-lsp warmed this session up in advance; the prompt was not sent"

# How a warm-up went: the client is warm; its process ended (the next query reports
# it); or it failed, or the prompt reached the model, and the client is to be replaced.
Outcome = Literal["warm", "ended", "failed"]


class WarmUpSwitch:
    """Whether warming up is on: until a CLI let the warm-up prompt through to the model,
    then off for the rest of the server's life (every session runs the same CLI)."""

    def __init__(self) -> None:
        self.on = True

    def turn_off(self) -> None:
        self.on = False
        log.warning("this Claude Code CLI did not run the warm-up hook; warm-up is off from now on")


# The server's one switch.
SWITCH = WarmUpSwitch()


class WarmUp:
    """One session's warm-up: its prompt (a random nonce, so the hook blocks nothing
    else), the hook that blocks it, running it, and the conversation file it started."""

    def __init__(self, switch: WarmUpSwitch = SWITCH) -> None:
        self._switch = switch
        self.prompt = f"dave-lsp warm-up {uuid.uuid4()}"
        self.conversation = ""  # the conversation file the warm-up started

    @property
    def on(self) -> bool:
        return self._switch.on

    def hooks(self) -> dict[HookEvent, list[HookMatcher]]:
        """The hooks a client to warm up is connected with."""
        return {"UserPromptSubmit": [HookMatcher(hooks=[self._block])]}

    async def _block(
        self, hook_input: HookInput, _tool_use_id: str | None, _context: HookContext
    ) -> HookJSONOutput:
        if hook_input.get("prompt") == self.prompt:
            return {"decision": "block", "reason": WARM_UP_REASON}
        return {}

    async def run(self, client: ClaudeSDKClient, inbox: asyncio.Queue[Any]) -> Outcome:
        """Send the blocked prompt and read the client's inbox until its result."""
        leaked = False
        try:
            await client.query(self.prompt)
            async with asyncio.timeout(WARM_UP_TIMEOUT):
                while True:
                    item = await inbox.get()
                    if isinstance(item, Ended):
                        return "ended"
                    if isinstance(item, StreamEvent | AssistantMessage):
                        leaked = True
                    elif isinstance(item, ResultMessage):
                        self.conversation = item.session_id or ""
                        break
        except TimeoutError:
            log.warning("the warm-up got no answer within %.0f s", WARM_UP_TIMEOUT)
            return "failed"
        except Exception as exc:
            log.warning("the warm-up failed: %s", one_line(str(exc)))
            return "failed"
        if leaked:
            self._switch.turn_off()
            return "failed"
        return "warm"

    async def forget(self, used: bool, env: Mapping[str, str]) -> None:
        """At close: a client warmed up but never asked anything leaves nothing behind in
        the user's Claude Code history (its conversation file holds only the warm-up)."""
        if self.conversation and not used:
            await asyncio.to_thread(_delete_conversation, self.conversation, env)
        self.conversation = ""


def _delete_conversation(conversation_id: str, env: Mapping[str, str]) -> None:
    for path in history.transcript_paths(conversation_id, env):
        with contextlib.suppress(OSError):
            path.unlink()
