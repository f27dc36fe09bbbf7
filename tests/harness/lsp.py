"""A pytest-lsp client that keeps dave's `$/progress` values as plain dicts, and small
helpers to run a query and answer its permission requests the way an editor does."""

from __future__ import annotations

import asyncio
import itertools
import sys
import uuid
from collections import defaultdict
from typing import Any

from lsprotocol import types as lsp
from pytest_lsp import ClientServerConfig, LanguageClient
from pytest_lsp.client import register_lsp_features

from dave_lsp.lsp.protocol import rpc_converter

SERVER = [sys.executable, "-m", "dave_lsp"]
_tokens = itertools.count()


class DaveClient(LanguageClient):
    """The test client: every report of every token, in order."""

    def __init__(self) -> None:
        super().__init__(converter_factory=rpc_converter)
        register_lsp_features(self)
        # pytest-lsp's own handler types the values and drops dave's fields; replace it.
        self.protocol.fm.features.pop(lsp.PROGRESS, None)
        self.reports: dict[Any, list[dict[str, Any]]] = defaultdict(list)
        self.report_arrived = asyncio.Event()

        @self.feature(lsp.PROGRESS)
        def on_progress(params: lsp.ProgressParams) -> None:
            assert isinstance(params.value, dict), params.value
            self.reports[params.token].append(params.value)
            self.report_arrived.set()

    async def wait_report(self, token: Any, kind: str, timeout: float = 60.0) -> dict[str, Any]:
        """The first report of `kind` on `token`, waiting for it to arrive."""
        async with asyncio.timeout(timeout):
            while True:
                for value in self.reports[token]:
                    if value.get("type") == kind or value.get("kind") == kind:
                        return value
                self.report_arrived.clear()
                await self.report_arrived.wait()

    def texts(self, token: Any, kind: str = "token") -> str:
        return "".join(v["text"] for v in self.reports[token] if v.get("type") == kind)

    def of_type(self, token: Any, kind: str) -> list[dict[str, Any]]:
        return [v for v in self.reports[token] if v.get("type") == kind]

    async def request(self, method: str, params: Any) -> Any:
        return await self.protocol.send_request_async(method, params)

    def start_query(
        self, session_id: str, prompt: str, **extra: Any
    ) -> tuple[asyncio.Future[Any], str]:
        """Send dave/query with a fresh work-done token; returns (pending response, token).
        The token doubles as the request id, so `cancel(token)` can name the request."""
        token = f"t{next(_tokens)}-{uuid.uuid4().hex[:6]}"
        params = {"sessionId": session_id, "prompt": prompt, "workDoneToken": token, **extra}
        future = self.protocol.send_request_async("dave/query", params, msg_id=token)
        return asyncio.ensure_future(future), token

    def cancel(self, request_id: str) -> None:
        self.protocol.notify(lsp.CANCEL_REQUEST, lsp.CancelParams(id=request_id))

    async def query(self, session_id: str, prompt: str, **extra: Any) -> tuple[dict[str, Any], str]:
        future, token = self.start_query(session_id, prompt, **extra)
        return await asyncio.wait_for(future, 60), token


def config(env: dict[str, str] | None = None) -> ClientServerConfig:
    return ClientServerConfig(server_command=SERVER, client_factory=DaveClient, server_env=env)


async def initialize(
    client: DaveClient,
    options: dict[str, Any],
    root: str | None = None,
    capabilities: lsp.ClientCapabilities | None = None,
) -> lsp.InitializeResult:
    params = lsp.InitializeParams(
        capabilities=capabilities or lsp.ClientCapabilities(),
        initialization_options=options,
        root_uri=None if root is None else f"file://{root}",
    )
    return await client.initialize_session(params)


def new_session() -> str:
    return f"s-{uuid.uuid4().hex[:10]}"


async def stop(client: DaveClient) -> None:
    """End a server that never got (or failed) `initialize`: exit, close its stdin, wait."""
    client.protocol.notify(lsp.EXIT)
    server = client._server
    if server is not None and server.stdin is not None:
        server.stdin.close()
    await asyncio.wait_for(client.stop(), 15)
