"""Spares that fit the client (`dave-lsp acp`, docs/acp.md: Spares): the real agent over
stdio, the real bundled CLI, the shipped fake model. A spare is made with the file
tools the client announced at `initialize`, so its first session adopts it; spares are
refilled from the second session on, so a client that opens one session per agent
process (codecompanion) runs one CLI during its chat, and one that opens many (Zed)
still finds a warm spare for each new session after its first two."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest

from tests.harness.acp import AcpClient, Start, agent_starter
from tests.harness.inprocess import eventually
from tests.harness.processes import cli_processes

# A CLI starts in a second or two; a spare warms up with a prompt of its own.
STARTED = 30.0


@pytest.fixture
def agent(backend_env: dict[str, str], tmp_path: Path) -> Start:
    """`agent(*flags, fs=...)`: an initialized AcpClient, with one spare (`--prewarm=1`,
    the default)."""
    return functools.partial(agent_starter(backend_env, tmp_path), "--prewarm=1")


def clis(client: AcpClient) -> set[int]:
    return set(cli_processes(client.proc.pid))


def read(path: Path) -> str:
    return f"tool mcp__acp__Read {json.dumps({'file_path': str(path)})}"


async def test_a_client_with_file_tools_adopts_the_spare_and_runs_one_cli(
    agent: Start, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("disk text\n")
    async with agent(fs=True) as client:
        client.buffers[str(notes)] = "unsaved buffer text\n"
        await eventually(lambda: len(clis(client)) == 1, STARTED)  # the spare
        spare = clis(client)

        # The first session adopts the spare: its answer needs no new CLI, and its
        # file tools are the client's, asked under the session's own id.
        first = await client.new_session(tmp_path)
        await client.prompt(first, read(notes))
        assert "unsaved buffer text" in client.text(first)
        assert [params["sessionId"] for _, params in client.fs_requests] == [first]
        assert clis(client) == spare
        await client.prompt(first, "hello again")
        assert clis(client) == spare, "one CLI during a one-session chat"

        # A second session/new: it starts its own CLI, and a spare is made for the next.
        second = await client.new_session(tmp_path)
        await eventually(lambda: len(clis(client)) == 3, STARTED)
        await client.prompt(second, read(notes))
        assert "unsaved buffer text" in client.text(second)
        assert client.fs_requests[-1][1]["sessionId"] == second
        three = clis(client)

        # The third adopts that spare, and the next spare comes after its first answer.
        third = await client.new_session(tmp_path)
        await client.prompt(third, read(notes))
        assert client.fs_requests[-1][1]["sessionId"] == third
        assert three <= clis(client)
        await eventually(lambda: len(clis(client)) == 4, STARTED)


async def test_a_client_without_file_tools_adopts_the_spare_too(
    agent: Start, tmp_path: Path
) -> None:
    async with agent() as client:
        await eventually(lambda: len(clis(client)) == 1, STARTED)
        spare = clis(client)
        session = await client.new_session(tmp_path)
        await client.prompt(session, "hello spare")
        assert "You said: hello spare" in client.text(session)
        assert clis(client) == spare
        assert client.fs_requests == []
