"""Folder trust (issue 24, finding 1: "Opening a folder runs its code"), through the real
server and the real bundled Claude Code CLI against the fake model.

A hostile repository's `.claude/settings.json` holds a SessionStart hook, its `.mcp.json`
an MCP server, its CLAUDE.md a marker: none of it may run or reach the model until the
user trusts the folder, while the user's own `~/.claude` settings keep working; once
trusted (by `trustedFolders`, by `dave/trustFolder`, after a restart too) all of it loads.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import attrs
import pytest
from pygls.exceptions import JsonRpcException

from dave_lsp.testing import FakeModelServer
from tests.conftest import Server, backend_env_for
from tests.harness.lsp import DaveClient, config, initialize, new_session, stop
from tests.test_lifecycle import eventually, server_clis


@attrs.frozen
class Hostile:
    """A repository whose settings run code, and a HOME whose settings are the user's."""

    repo: Path
    home: Path
    env: dict[str, str]
    claude_md: str  # the marker of the repository's CLAUDE.md
    user_md: str  # the marker of the user's ~/.claude/CLAUDE.md

    @property
    def real(self) -> str:
        """The folder as the server names it (links resolved)."""
        return os.path.realpath(self.repo)

    @property
    def hooked(self) -> Path:
        return self.repo / "HOOKED"

    @property
    def mcp_started(self) -> Path:
        return self.repo / "MCPSTARTED"

    @property
    def user_hooked(self) -> Path:
        return self.home / "USERHOOKED"

    @property
    def mcp_command(self) -> str:
        return f"touch {self.mcp_started}"


def hostile(tmp_path: Path, url: str) -> Hostile:
    repo, home = tmp_path / "repo", tmp_path / "home"
    (repo / ".claude").mkdir(parents=True)
    (home / ".claude").mkdir(parents=True)
    found = Hostile(
        repo, home, backend_env_for(url, home), f"repo-rule-{uuid.uuid4().hex[:8]}",
        f"user-rule-{uuid.uuid4().hex[:8]}",
    )  # fmt: skip
    hook = {"SessionStart": [{"hooks": [{"type": "command", "command": "id >> HOOKED"}]}]}
    settings = {"hooks": hook, "env": {"DAVE_TRUST_PROBE": "1"}}
    (repo / ".claude" / "settings.json").write_text(json.dumps(settings))
    server = {"command": "sh", "args": ["-c", found.mcp_command]}
    (repo / ".mcp.json").write_text(json.dumps({"mcpServers": {"db": server}}))
    (repo / "CLAUDE.md").write_text(f"Always follow {found.claude_md}.\n")
    user_hook = f"id > {found.user_hooked}"
    mine = {"SessionStart": [{"hooks": [{"type": "command", "command": user_hook}]}]}
    (home / ".claude" / "settings.json").write_text(json.dumps({"hooks": mine}))
    (home / ".claude" / "CLAUDE.md").write_text(f"The user's own rule: {found.user_md}.\n")
    return found


@pytest.fixture
def repo(tmp_path: Path, fake_model: FakeModelServer) -> Hostile:
    return hostile(tmp_path, fake_model.url)


def hook_runs(repo: Hostile) -> int:
    """How many times the folder's SessionStart hook ran (it appends a line)."""
    return len(repo.hooked.read_text().splitlines()) if repo.hooked.exists() else 0


def would_run(repo: Hostile) -> list[str]:
    return [
        "hook SessionStart: id >> HOOKED",
        "env: DAVE_TRUST_PROBE",
        f"MCP server db: sh -c '{repo.mcp_command}'",
    ]


async def test_an_untrusted_folder_runs_none_of_its_code(
    server: Server, repo: Hostile, fake_model: FakeModelServer
) -> None:
    # The workspace spare connects in the folder at `initialized` (prewarm 1), as an
    # editor opening the repository starts it.
    async with server(env=repo.env, cwd=str(repo.repo), prewarm=1) as client:
        await eventually(lambda: len(server_clis(client)) == 1, 30)
        spare = server_clis(client)
        result, token = await client.query(new_session(), "hello untrusted")
        assert result["text"] == "You said: hello untrusted"  # the model works
        assert spare <= server_clis(client)  # the spare served it (no cold start)
        await asyncio.sleep(2)  # room for a hook or an MCP server that would start late
        assert not repo.hooked.exists(), "the folder's SessionStart hook ran"
        assert not repo.mcp_started.exists(), "the folder's .mcp.json server started"
        assert not fake_model.requests_containing(repo.claude_md), "its CLAUDE.md was sent"
        # The user's own settings, hooks and CLAUDE.md keep working.
        assert repo.user_hooked.exists()
        assert fake_model.requests_containing(repo.user_md)

        notes = [r.get("message", "") for r in client.of_type(token, "status")]
        expected = (
            "this folder's Claude Code settings were not loaded (not trusted): "
            "1 hook, 1 MCP server, env: DAVE_TRUST_PROBE; trust it to load them"
        )
        assert expected in notes, notes
        answer = await client.request("dave/folderTrust", {"path": str(repo.repo)})
        assert answer == {
            "path": repo.real,
            "trusted": False,
            "runsCode": True,
            "wouldRun": would_run(repo),
        }
        second, token = await client.query(new_session(), "hello again")
        assert second["text"] == "You said: hello again"
    assert not repo.hooked.exists()


async def test_a_folder_trusted_at_initialize_loads_its_settings_in_a_warm_spare(
    server: Server, repo: Hostile, fake_model: FakeModelServer
) -> None:
    options = {"env": repo.env, "cwd": str(repo.repo), "prewarm": 1}
    async with server(**options, trustedFolders=[str(repo.repo)]) as client:
        await eventually(lambda: len(server_clis(client)) == 1, 30)
        spare = server_clis(client)
        await eventually(repo.hooked.exists, 30)  # the trusted spare ran the folder's hook
        result, token = await client.query(new_session(), "hello trusted")
        assert result["text"] == "You said: hello trusted"
        # The session adopted the warm spare: no cold start, the same process.
        assert spare <= server_clis(client)
        states = [r["state"] for r in client.of_type(token, "status")]
        assert "connecting" not in states
        assert not any(
            "not loaded" in r.get("message", "") for r in client.of_type(token, "status")
        )
        await eventually(repo.mcp_started.exists, 30)
        assert fake_model.requests_containing(repo.claude_md)
        answer = await client.request("dave/folderTrust", {"path": str(repo.repo / "sub/..")})
        assert (answer["trusted"], answer["runsCode"]) == (True, True)


async def test_trust_folder_reconnects_live_sessions_replaces_spares_and_is_remembered(
    server: Server, repo: Hostile, fake_model: FakeModelServer
) -> None:
    async with server(env=repo.env, cwd=str(repo.repo), prewarm=1) as client:
        await eventually(lambda: len(server_clis(client)) == 1, 30)
        session = new_session()
        await client.query(session, "remember plum-7")  # adopts the untrusted spare
        await eventually(lambda: len(server_clis(client)) == 2, 30)  # and a new spare
        assert not repo.hooked.exists()

        answer = await client.request("dave/trustFolder", {"path": str(repo.repo), "trusted": True})
        assert answer == {"path": repo.real, "trusted": True}
        # The live session gets the folder's settings at its next turn, its conversation
        # resumed by the new CLI.
        result, _ = await client.query(session, "recall")
        assert result["text"] == "Seen: remember plum-7"
        await eventually(repo.hooked.exists, 30)
        assert fake_model.requests_containing(repo.claude_md)

        # The spare made before the trust is replaced by a trusted one (its hook ran
        # too: one line each), which a new session in the folder adopts.
        await eventually(lambda: len(server_clis(client)) == 2, 30)
        await eventually(lambda: hook_runs(repo) == 2, 30)
        before = server_clis(client)
        _, token = await client.query(new_session(), "hello adopted")
        assert "connecting" not in [r["state"] for r in client.of_type(token, "status")]
        assert before <= server_clis(client)

    # Remembered across a restart (the same state folder).
    repo.hooked.unlink()
    async with server(env=repo.env, cwd=str(repo.repo)) as client:
        answer = await client.request("dave/folderTrust", {"path": str(repo.repo)})
        assert answer["trusted"] is True
        result, _ = await client.query(new_session(), "hello after restart")
        assert result["text"] == "You said: hello after restart"
        await eventually(repo.hooked.exists, 30)

        # Taken back: the next session runs without the folder's settings again.
        answer = await client.request(
            "dave/trustFolder", {"path": str(repo.repo), "trusted": False}
        )
        assert answer == {"path": repo.real, "trusted": False}
        repo.hooked.unlink()
        await client.query(new_session(), "hello untrusted again")
        await asyncio.sleep(1)
        assert not repo.hooked.exists()


async def test_trust_requests_answer_bad_input_with_the_fix(
    server: Server, repo: Hostile, tmp_path: Path
) -> None:
    async with server(env=repo.env, cwd=str(repo.repo)) as client:
        bad = [
            ("dave/trustFolder", {"path": "relative/dir", "trusted": True}, "absolute path"),
            ("dave/trustFolder", {"path": str(tmp_path / "nope"), "trusted": True}, "not a folder"),
            ("dave/trustFolder", {"path": str(repo.repo)}, "trusted: is required"),
            ("dave/trustFolder", {"path": str(repo.repo), "trusted": "yes"}, "true or false"),
            ("dave/folderTrust", {"path": 7}, "path: expected a string"),
            ("dave/folderTrust", {"path": str(tmp_path / "nope")}, "not a folder"),
        ]
        for method, params, says in bad:
            with pytest.raises(JsonRpcException) as failed:
                await client.request(method, params)
            assert failed.value.code == -32602 and says in str(failed.value), failed.value
        # A folder whose settings run nothing, and settings that cannot be read whole.
        plain = tmp_path / "plain"
        (plain / ".claude").mkdir(parents=True)
        (plain / ".claude" / "settings.json").write_text('{"model": "x", "permissions": {}}')
        answer = await client.request("dave/folderTrust", {"path": str(plain)})
        assert (answer["runsCode"], answer["wouldRun"]) == (False, [])
        os.mkfifo(plain / ".claude" / "settings.local.json")  # never blocks the check
        (plain / ".mcp.json").write_text("{not json")
        answer = await client.request("dave/folderTrust", {"path": str(plain)})
        assert answer["runsCode"] is True
        assert answer["wouldRun"] == [
            ".claude/settings.local.json: not a regular file",
            ".mcp.json: not JSON that dave-lsp can check",
        ]
    client = await config().start()
    assert isinstance(client, DaveClient)
    result = await initialize(client, {"trustedFolders": ["~/x"], "prewarm": 0})
    assert result.capabilities.experimental is not None
    methods = result.capabilities.experimental["dave"]["methods"]
    assert {"dave/trustFolder", "dave/folderTrust"} <= set(methods)
    await client.shutdown_session()
    client = await config().start()
    assert isinstance(client, DaveClient)
    with pytest.raises(JsonRpcException) as failed:
        await initialize(client, {"trustedFolders": ["/ok", "not/absolute"]})
    assert failed.value.code == -32602
    assert "initializationOptions.trustedFolders[1]: must be an absolute path" in str(failed.value)
    await stop(client)


def chat(repo: Hostile, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dave_lsp", "chat", "--demo", "--cwd", str(repo.repo), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_chat_runs_a_folders_settings_only_with_trust(repo: Hostile) -> None:
    done = chat(repo, "hello")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "You said: hello\n"
    assert "not loaded (not trusted): 1 hook, 1 MCP server" in done.stderr
    assert not repo.hooked.exists()
    done = chat(repo, "--trust", "hello")
    assert done.returncode == 0, done.stderr
    assert repo.hooked.exists()
