"""ACP sessions' additional directories after `session/new`: `session/list` reports
them, `session/load` or `session/resume` with another list makes that the session's,
live or remembered (the spec: a non-empty list is the complete one), and the editor's
tools count them as inside the session (LSP mode, on the same state dir); and a client
that opens its one session right after `initialize` runs one CLI. The real
agent over stdio, the real bundled Claude Code CLI, the shipped fake model, every
message checked against the schema types (tests/harness/acp.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types as lsp

from tests.conftest import Server
from tests.harness.acp import AcpClient, Start, agent_starter, allow, tool
from tests.harness.processes import cli_processes


@pytest.fixture
def agent(backend_env: dict[str, str], tmp_path: Path) -> Start:
    return agent_starter(backend_env, tmp_path)


async def listed(client: AcpClient, session: str) -> dict[str, Any]:
    [entry] = [
        s
        for s in (await client.request("session/list", {}))["sessions"]
        if s["sessionId"] == session
    ]
    return dict(entry)


async def reads_unasked(client: AcpClient, session: str, folder: Path) -> bool:
    """Whether a Read of `folder`'s note runs without a permission request (one asked
    is rejected)."""
    client.permission_requests.clear()
    client.choose = allow("reject_once")
    before = len(client.text(session))
    await client.prompt(session, tool("Read", file_path=str(folder / "note.txt")))
    read = f"note in {folder.name}" in client.text(session)[before:]
    return not client.permission_requests and read


async def test_load_and_resume_give_a_session_other_additional_directories(
    agent: Start, folders: tuple[Path, Path, Path]
) -> None:
    project, extra, elsewhere = folders
    async with agent() as client:
        params = {"cwd": str(project), "mcpServers": [], "additionalDirectories": [str(extra)]}
        session = (await client.request("session/new", params))["sessionId"]
        assert (await listed(client, session))["additionalDirectories"] == [str(extra)]
        assert await reads_unasked(client, session, extra)  # its CLI is running now

        # Resumed live with another list: that one, in place of the first.
        resume = {**params, "sessionId": session, "additionalDirectories": [str(elsewhere)]}
        await client.request("session/resume", resume)
        assert (await listed(client, session))["additionalDirectories"] == [str(elsewhere)]
        assert await reads_unasked(client, session, elsewhere)
        assert not await reads_unasked(client, session, extra)
        assert client.text(session).endswith("The user rejected this tool use.")

    # A new agent loads the remembered session with both.
    async with agent() as client:
        both = [str(extra), str(elsewhere)]
        load = {**params, "sessionId": session, "additionalDirectories": both}
        await client.request("session/load", load)
        assert (await listed(client, session))["additionalDirectories"] == both
        assert await reads_unasked(client, session, extra)
        assert await reads_unasked(client, session, elsewhere)
        # Without the field the session keeps what it has (clients before the field).
        del params["additionalDirectories"]
        await client.request("session/resume", {**params, "sessionId": session})
        assert (await listed(client, session))["additionalDirectories"] == both


async def test_editor_tools_count_additional_directories_as_inside(
    agent: Start, server: Server, folders: tuple[Path, Path, Path]
) -> None:
    """A session made over ACP with an additional directory, then queried from an editor
    over LSP (one state dir): the editor's tools read files there as in its cwd, and
    still name a file in neither folder without its text."""
    project, extra, elsewhere = folders
    lib, other = extra / "lib.py", elsewhere / "other.py"
    lib.write_text("def helper():\n    return 1\n")
    other.write_text("SECRET = 'sk-elsewhere-77'\n")
    async with agent() as client:
        params = {"cwd": str(project), "mcpServers": [], "additionalDirectories": [str(extra)]}
        session = (await client.request("session/new", params))["sessionId"]

    def references(_params: Any) -> Any:
        span = {"start": {"line": 0, "character": 4}, "end": {"line": 0, "character": 10}}
        return [{"uri": lib.as_uri(), "range": span}, {"uri": other.as_uri(), "range": span}]

    capabilities = lsp.ClientCapabilities(experimental={"dave": {"editorTools": ["references"]}})
    answers = {"dave/editor/references": references}
    async with server(capabilities=capabilities, answers=answers) as editor:
        prompt = tool("mcp__editor__findReferences", path=str(lib), symbol="helper")
        result, token = await editor.query(session, prompt)
    assert f"{lib}:1:5: def helper():" in result["text"]
    assert f"{other}:1:5: outside the session's folder" in result["text"]
    assert "sk-elsewhere" not in result["text"]
    assert not editor.of_type(token, "permissionRequest")


async def test_a_session_new_right_after_initialize_still_runs_one_cli(
    agent: Start, tmp_path: Path
) -> None:
    """codecompanion sends session/new as soon as `initialize` is answered, before the
    first spare is up: that session starts its own CLI, and no spare follows it during
    the chat (one CLI, as when it adopts the spare; bench: acp_one_session_clis)."""
    async with agent("--prewarm=1", fs=True) as client:
        session = await client.new_session(tmp_path)
        for text in ("hello", "hello again"):
            await client.prompt(session, text)
            assert len(cli_processes(client.proc.pid)) == 1
        await asyncio.sleep(3)  # a spare made at the first answer would be up by now
        assert len(cli_processes(client.proc.pid)) == 1
        assert client.text(session).endswith("You said: hello again")
