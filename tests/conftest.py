"""Shared fixtures: one fake model server per test session, and a backend environment
that points the real Claude Code CLI at it with a throwaway HOME."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types as lsp

from dave_lsp.testing import FakeModelServer
from tests.harness.lsp import DaveClient, config, initialize

REPO = Path(__file__).resolve().parent.parent
# Servers the tests start remember sessions under XDG_STATE_HOME: never the real one.
os.environ["XDG_STATE_HOME"] = tempfile.mkdtemp(prefix="dave-test-state-")
# The server under test, started the way an editor starts it.
SERVER_CMD = [sys.executable, "-m", "dave_lsp"]


@pytest.fixture(scope="session")
def fake_model() -> Iterator[FakeModelServer]:
    server = FakeModelServer()
    server.start()
    yield server
    server.stop()


def backend_env_for(url: str, home: Path) -> dict[str, str]:
    """The environment a test passes as `initializationOptions.env`."""
    home.mkdir(parents=True, exist_ok=True)
    return {
        "ANTHROPIC_BASE_URL": url,
        "ANTHROPIC_API_KEY": "sk-ant-fake-test-key-0123456789",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "CLAUDE_CODE_MAX_RETRIES": "0",
        "HOME": str(home),
    }


@pytest.fixture(scope="session")
def backend_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="session")
def backend_env(fake_model: FakeModelServer, backend_home: Path) -> dict[str, str]:
    return backend_env_for(fake_model.url, backend_home)


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A session's folder (`project`), one to add to it (`extra`) and one that is neither
    (`elsewhere`), each with a note.txt naming it."""
    made = (tmp_path / "project", tmp_path / "extra", tmp_path / "elsewhere")
    for folder in made:
        folder.mkdir()
        (folder / "note.txt").write_text(f"note in {folder.name}\n")
    return made


# `server(**options)`: an async context manager giving an initialized DaveClient.
Server = Callable[..., Any]


@pytest.fixture
def server(backend_env: dict[str, str], tmp_path: Path) -> Server:
    """Start a server with extra options; every server of a test shares one state dir,
    as an editor restarting its server would."""

    @asynccontextmanager
    async def start(
        capabilities: lsp.ClientCapabilities | None = None,
        answers: dict[str, Callable[[Any], Any]] | None = None,
        **options: Any,
    ) -> AsyncIterator[DaveClient]:
        """`answers`: server-to-client requests the client answers, by method."""
        client = await config().start()
        assert isinstance(client, DaveClient)
        for method, answer in (answers or {}).items():
            client.feature(method)(answer)
        base = {
            "env": backend_env,
            "cwd": str(tmp_path),
            "stateDir": str(tmp_path / "state"),
            "prewarm": 0,
        }
        await initialize(client, {**base, **options}, capabilities=capabilities)
        try:
            yield client
        finally:
            await client.shutdown_session()

    return start
