"""ACP's `additionalDirectories` end to end: the real agent over stdio, the real bundled
Claude Code CLI, the shipped fake model, every message checked against the schema types
(tests/harness/acp.py). A session's extra folders count as inside it: reads there run
unasked, and so do edits in acceptEdits; a folder that is none of them still asks."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness.acp import AcpClient, AcpError, Start, agent_starter, allow, tool


@pytest.fixture
def agent(backend_env: dict[str, str], tmp_path: Path) -> Start:
    return agent_starter(backend_env, tmp_path)


async def new_session(client: AcpClient, cwd: Path, *extra: Path) -> str:
    params = {"cwd": str(cwd), "mcpServers": [], "additionalDirectories": [str(e) for e in extra]}
    return str((await client.request("session/new", params))["sessionId"])


async def accept_edits(client: AcpClient, session: str) -> None:
    await client.request("session/set_mode", {"sessionId": session, "modeId": "acceptEdits"})


async def test_the_capability_is_advertised_and_bad_folders_refused(
    agent: Start, folders: tuple[Path, Path, Path]
) -> None:
    project, _extra, elsewhere = folders
    async with agent() as client:
        result = await client.initialize()
        caps = result["agentCapabilities"]["sessionCapabilities"]
        assert caps["additionalDirectories"] == {}
        for method, more in (
            ("session/new", {}),
            ("session/resume", {"sessionId": "00000000-0000-0000-0000-000000000000"}),
        ):
            with pytest.raises(AcpError) as relative:
                await client.request(
                    method,
                    {
                        "cwd": str(project),
                        "mcpServers": [],
                        "additionalDirectories": ["relative/dir"],
                        **more,
                    },
                )
            assert relative.value.code == -32602
            assert "additionalDirectories" in str(relative.value)
            assert "relative/dir" in str(relative.value)
        with pytest.raises(AcpError) as missing:
            await new_session(client, project, elsewhere / "gone")
        assert missing.value.code == -32602 and "gone" in str(missing.value)


async def test_edits_in_an_additional_directory_run_unasked_in_accept_edits(
    agent: Start, folders: tuple[Path, Path, Path]
) -> None:
    """The CLI's own Write and Read (no client file system): the folders reach it as
    `add_dirs`."""
    project, extra, elsewhere = folders
    (extra / "notes.txt").write_text("extra notes\n")
    async with agent() as client:
        session = await new_session(client, project, extra)
        # default mode: a read in the extra folder is not asked.
        await client.prompt(session, tool("Read", file_path=str(extra / "notes.txt")))
        assert client.permission_requests == []
        assert "extra notes" in client.text(session)

        await accept_edits(client, session)
        await client.prompt(session, tool("Write", file_path=str(extra / "a.txt"), content="A"))
        assert client.permission_requests == []
        assert (extra / "a.txt").read_text() == "A"

        # A folder that is not the session's still asks (rejected: nothing written).
        client.choose = allow("reject_once")
        third = elsewhere / "b.txt"
        await client.prompt(session, tool("Write", file_path=str(third), content="B"))
        [asked] = client.permission_requests
        assert asked["toolCall"]["kind"] == "edit"
        assert not third.exists()

    # The folders are remembered: resumed by a new agent, the session still has them.
    async with agent() as client:
        params = {"sessionId": session, "cwd": str(project), "mcpServers": []}
        await client.request("session/resume", params)
        await accept_edits(client, session)
        await client.prompt(session, tool("Write", file_path=str(extra / "c.txt"), content="C"))
        assert client.permission_requests == []
        assert (extra / "c.txt").read_text() == "C"


async def test_client_file_tools_count_additional_directories_as_inside(
    agent: Start, folders: tuple[Path, Path, Path]
) -> None:
    """With the client's file system, dave-lsp decides what runs unasked
    (acp/files.py, permissions/modes.py)."""
    project, extra, elsewhere = folders
    notes = str(extra / "notes.txt")
    async with agent(fs=True) as client:
        client.buffers[notes] = "buffer in extra\n"
        session = await new_session(client, project, extra)
        await client.prompt(session, tool("mcp__acp__Read", file_path=notes))
        assert client.permission_requests == []
        assert "buffer in extra" in client.text(session)

        await accept_edits(client, session)
        written = str(extra / "a.txt")
        await client.prompt(session, tool("mcp__acp__Write", file_path=written, content="A\n"))
        assert client.permission_requests == []
        assert client.buffers[written] == "A\n"

        client.choose = allow("reject_once")
        third = str(elsewhere / "b.txt")
        await client.prompt(session, tool("mcp__acp__Write", file_path=third, content="B\n"))
        [asked] = client.permission_requests
        assert asked["toolCall"]["kind"] == "edit"
        assert third not in client.buffers
