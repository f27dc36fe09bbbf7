"""The context window of each model, learnt once per model and server.

The CLI's `get_context_usage()` (its `maxTokens`) counts tokens with the API (about ten
`count_tokens` requests), so it is asked once per model, in the background after a
first turn, never on a turn's path; a turn's end waits for it at most `WINDOW_WAIT`.
"""

from __future__ import annotations

import asyncio
import logging

from claude_agent_sdk import ClaudeSDKClient

from dave_lsp.backends.common import one_line

log = logging.getLogger(__name__)

# How long a turn's end waits for the context window still being asked for.
WINDOW_WAIT = 0.5
ASK_TIMEOUT = 4.0


class ContextWindows:
    """The windows known, by the session's `model` ("" for the default), and the one
    request per model that learns each."""

    def __init__(self) -> None:
        self._known: dict[str, int] = {}
        self._asking: dict[str, asyncio.Task[None]] = {}

    def get(self, model: str | None) -> int | None:
        return self._known.get(model or "")

    async def learn(self, client: ClaudeSDKClient | None, model: str | None) -> None:
        """Start asking `client` for the model's window, once; wait at most
        WINDOW_WAIT for a request already under way."""
        key = model or ""
        if key in self._known or client is None:
            return
        task = self._asking.get(key)
        if task is None:
            self._asking[key] = asyncio.create_task(self._ask(client, key))
        elif not task.done():
            await asyncio.wait({task}, timeout=WINDOW_WAIT)

    async def _ask(self, client: ClaudeSDKClient, key: str) -> None:
        try:
            usage = await asyncio.wait_for(client.get_context_usage(), ASK_TIMEOUT)
        except Exception as exc:
            log.debug("no context usage: %s", one_line(str(exc)))
            self._asking.pop(key, None)  # another session may ask again
            return
        window = (usage or {}).get("maxTokens")
        if isinstance(window, int) and window > 0:
            self._known[key] = window


# The server's windows: every session of a model shares what one learnt.
WINDOWS = ContextWindows()
