"""The permission policy over ACP (issue 24), end to end: the real agent over stdio, the
real bundled Claude Code CLI, the shipped fake model. A client's MCP server cannot take
a name the agent's own tools use; the user's Claude Code deny and ask rules hold for the
client file tools the model's Read/Write/Edit become."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.harness.acp import AcpClient, Start, agent_starter, allow, tool

MARKER_SERVER = str(Path(__file__).with_name("mcp_marker_server.py"))
# As root the CLI takes bypassPermissions only in a sandbox it is told of.
BYPASS = ("--permission-mode=bypassPermissions", "--env=IS_SANDBOX=1")


@pytest.fixture
def agent(backend_env: dict[str, str], tmp_path: Path) -> Start:
    return agent_starter(backend_env, tmp_path)


def user_settings(home: Path, permissions: dict[str, list[str]]) -> None:
    (home / ".claude").mkdir(parents=True, exist_ok=True)
    (home / ".claude" / "settings.json").write_text(json.dumps({"permissions": permissions}))


def failed(client: AcpClient, session: str) -> list[str]:
    """The text of the session's failed tool calls."""
    return [
        " ".join(c["content"]["text"] for c in u.get("content") or [] if c["type"] == "content")
        for u in client.of_kind(session, "tool_call_update")
        if u.get("status") == "failed"
    ]


async def test_a_client_mcp_server_named_editor_is_renamed_and_asked(
    agent: Start, tmp_path: Path
) -> None:
    """The policy once trusted any `mcp__editor__` tool as the server's own read-only
    editor tools: a client's server of that name ran its tools unasked."""
    marker = tmp_path / "marker.txt"
    server = {
        "name": "editor",
        "command": sys.executable,
        "args": [MARKER_SERVER, str(marker)],
        "env": [],
    }
    async with agent() as client:
        session = await client.new_session(tmp_path, [server])
        client.choose = allow("reject_once")
        await client.prompt(session, tool("mcp__editor__touch"))
        assert not marker.exists()
        assert client.permission_requests == []  # no such tool under the owned name
        await client.prompt(session, tool("mcp__editor-client__touch"))
        [asked] = client.permission_requests
        assert "editor-client" in asked["toolCall"]["title"]
        assert not marker.exists()
        client.choose = allow("allow_once")
        await client.prompt(session, tool("mcp__editor-client__touch"))
        assert marker.read_text() == "the client's tool ran\n"


async def test_the_users_deny_and_ask_rules_hold_for_the_client_file_tools(
    agent: Start, tmp_path: Path
) -> None:
    """With the client's fs, the model's Read is `mcp__acp__Read` to the CLI, which no
    `Read(...)` rule of the user's settings matches: dave-lsp applies them itself."""
    home = tmp_path / "home"
    user_settings(home, {"deny": ["Read(**/secret.txt)"], "ask": ["Read(./asked.txt)"]})
    secret, asked, plain = tmp_path / "secret.txt", tmp_path / "asked.txt", tmp_path / "plain.txt"
    for path in (secret, asked, plain):
        path.write_text(f"text of {path.name}\n")
    async with agent(home=home, fs=True) as client:
        client.buffers[str(secret)] = "the secret in the buffer\n"
        session = await client.new_session(tmp_path)
        client.choose = allow("reject_once")
        await client.prompt(session, tool("mcp__acp__Read", file_path=str(secret)))
        said = client.text(session)
        assert "secret in the buffer" not in said and "text of secret" not in said
        assert client.fs_requests == []  # never read, and never asked
        assert client.permission_requests == []
        [reason] = failed(client, session)
        assert "Read(**/secret.txt)" in reason
        assert "Read(**/secret.txt)" in said  # the model is told which rule

        # An ask rule asks for a read the mode would let through.
        await client.prompt(session, tool("mcp__acp__Read", file_path=str(asked)))
        [request] = client.permission_requests
        assert request["toolCall"]["kind"] == "read"
        assert "text of asked.txt" not in client.text(session)

        # Other files read as before: unasked, from the client.
        await client.prompt(session, tool("mcp__acp__Read", file_path=str(plain)))
        assert "text of plain.txt" in client.text(session)
        assert len(client.permission_requests) == 1
        assert [r[1]["path"] for r in client.fs_requests] == [str(plain)]


async def test_a_deny_rule_holds_in_bypass_mode_too(agent: Start, tmp_path: Path) -> None:
    """In bypassPermissions the CLI runs MCP tools without asking: the tool itself
    refuses what the user's settings deny."""
    home = tmp_path / "home"
    user_settings(home, {"deny": ["Read(**/secret.txt)"]})
    secret = tmp_path / "secret.txt"
    secret.write_text("the secret on disk\n")
    async with agent(*BYPASS, home=home, fs=True) as client:
        session = await client.new_session(tmp_path)
        await client.prompt(session, tool("mcp__acp__Read", file_path=str(secret)))
        said = client.text(session)
        assert "the secret" not in said
        assert "Read(**/secret.txt)" in said
        assert client.fs_requests == []
