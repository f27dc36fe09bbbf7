"""Folder trust over ACP (issue 24, finding 1): `dave-lsp acp` in a hostile repository
runs none of its code until the user trusts it. The first prompt asks through
`session/request_permission`, listing in full what would run; allow loads the folder's
settings (and is remembered), reject runs without them; `--trust-folder` and the
config's `trustedFolders` trust ahead. The real agent, CLI and fake model."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from dave_lsp.testing import FakeModelServer
from tests.harness.acp import AcpClient, Start, agent_starter, allow
from tests.test_lifecycle import eventually
from tests.test_trust import Hostile, hook_runs, hostile, would_run


@pytest.fixture
def repo(tmp_path: Path, fake_model: FakeModelServer) -> Hostile:
    return hostile(tmp_path, fake_model.url)


@pytest.fixture
def agent(repo: Hostile, tmp_path: Path) -> Start:
    """`agent(*flags)`: an initialized AcpClient with the repository's HOME; every agent
    of a test shares one state folder. On leaving it must exit 0, having sent nothing
    but protocol on stdout."""
    return agent_starter(repo.env, tmp_path)


def trust_requests(client: AcpClient) -> list[dict[str, Any]]:
    return [
        r for r in client.permission_requests if r["toolCall"]["toolCallId"].startswith("trust-")
    ]


async def test_an_untrusted_folder_asks_first_and_reject_runs_without_its_code(
    agent: Start, repo: Hostile, fake_model: FakeModelServer
) -> None:
    async with agent() as client:
        client.choose = allow("reject_once")
        session = await client.new_session(repo.repo)
        # Its client connected ahead (its slash commands are announced after that).
        await client.wait_update(session, "available_commands_update", 60)
        assert not repo.hooked.exists(), "session/new ran the folder's hook"
        assert (await client.prompt(session, "hello"))["stopReason"] == "end_turn"
        assert client.text(session) == "You said: hello"
        (asked,) = trust_requests(client)
        text = asked["toolCall"]["content"][0]["content"]["text"]
        for line in would_run(repo):
            assert line in text  # in full, not cut
        assert asked["toolCall"]["rawInput"]["wouldRun"] == would_run(repo)
        assert asked["toolCall"]["title"].startswith("Trust this folder's Claude Code settings?")
        kinds = {o["optionId"]: o["kind"] for o in asked["options"]}
        assert kinds == {"allow_always": "allow_always", "reject_once": "reject_once"}
        await client.prompt(session, "hello again")
        assert len(trust_requests(client)) == 1  # asked once per session
        await asyncio.sleep(1)
    assert not repo.hooked.exists()
    assert not repo.mcp_started.exists()
    assert not fake_model.requests_containing(repo.claude_md)
    assert repo.user_hooked.exists()  # the user's own settings keep working


async def test_allow_trusts_the_folder_now_and_after_a_restart(
    agent: Start, repo: Hostile, fake_model: FakeModelServer
) -> None:
    async with agent() as client:
        client.choose = allow("allow_always")
        session = await client.new_session(repo.repo)
        await client.prompt(session, "remember fig-3")
        assert len(trust_requests(client)) == 1
        await eventually(lambda: hook_runs(repo) >= 1, 30)
        assert fake_model.requests_containing(repo.claude_md)
        await eventually(repo.mcp_started.exists, 30)
    repo.hooked.unlink()
    async with agent() as client:  # remembered: no question, the hook runs
        session = await client.new_session(repo.repo)
        await client.prompt(session, "hello")
        assert trust_requests(client) == []
        await eventually(lambda: hook_runs(repo) >= 1, 30)


async def test_trust_folder_flags_and_config_trust_ahead(
    agent: Start, repo: Hostile, tmp_path: Path
) -> None:
    async with agent(f"--trust-folder={repo.repo}") as client:
        session = await client.new_session(repo.repo)
        await eventually(lambda: hook_runs(repo) >= 1, 30)  # its client connected ahead
        await client.prompt(session, "hello")
        assert trust_requests(client) == []
    config = tmp_path / "acp.json"
    config.write_text(json.dumps({"trustedFolders": [str(repo.repo)]}))
    async with agent(f"--config={config}") as client:
        session = await client.new_session(repo.repo / "sub" / "..")
        await client.prompt(session, "hello")
        assert trust_requests(client) == []
    config.write_text(json.dumps({"trustedFolders": ["relative"]}))
    done = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "dave_lsp", "acp", f"--config={config}"),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(done.communicate(), 30)
    assert done.returncode == 2 and out == b""
    assert b"option trustedFolders[0]: must be an absolute path" in err
