"""Shared pieces of the reliability tests: a server on raw pipes that checks every byte
it writes to stdout, process helpers, and the tally of figures for docs/reliability.md."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

from tests.harness.lsp import DaveClient, config, initialize
from tests.harness.raw import RawServer as BaseRawServer
from tests.harness.raw import alive_clis, frame, wait_gone, wait_gone_sync

__all__ = ["alive_clis", "frame", "wait_gone", "wait_gone_sync"]

# The fake API key of tests/conftest.py's backend_env: it must never leave the server.
FAKE_KEY = "sk-ant-fake-test-key-0123456789"

# Figures for docs/reliability.md, printed at the end of the run (see conftest.py).
TALLY: Counter[str] = Counter()


def server_options(env: dict[str, str], cwd: Path | str, **extra: Any) -> dict[str, Any]:
    """initializationOptions for a test server. No warm spare, so the CLI processes under
    the server are exactly the sessions' (servers that predate `prewarm` ignore it)."""
    return {"env": env, "cwd": str(cwd), "prewarm": 0, **extra}


async def start_client(options: dict[str, Any], env: dict[str, str] | None = None) -> DaveClient:
    client = await config(env).start()
    assert isinstance(client, DaveClient)
    await initialize(client, options)
    return client


def server_pid(client: DaveClient) -> int:
    assert client._server is not None
    return client._server.pid


def start_query(
    client: DaveClient, session_id: str, prompt: str, **extra: Any
) -> tuple[asyncio.Future[Any], str]:
    TALLY["queries"] += 1
    return client.start_query(session_id, prompt, **extra)


async def query(
    client: DaveClient, session_id: str, prompt: str, timeout: float = 60, **extra: Any
) -> tuple[dict[str, Any], str]:
    future, token = start_query(client, session_id, prompt, **extra)
    return await asyncio.wait_for(future, timeout), token


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class RawServer(BaseRawServer):
    """The shared raw server, counting its queries in the figures."""

    def start_query(self, session_id: str, prompt: str, **extra: Any) -> tuple[int, str]:
        TALLY["queries"] += 1
        return super().start_query(session_id, prompt, **extra)
