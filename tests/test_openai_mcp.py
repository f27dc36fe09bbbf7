"""MCP servers give the OpenAI agent tools (issue 29): from `initializationOptions.mcpServers`
and ACP's `session/new`, through the real server and the real agent over stdio, against
the shipped fake OpenAI endpoint scripting calls to `mcp__marker__touch` (the test MCP
server tests/mcp_marker_server.py writes its marker file only when its tool runs). A
trusted folder's `.mcp.json` and a read-only tool are shown on `OpenAISession` itself.
Claude Code gets `initializationOptions.mcpServers` too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp_types import CallToolResult, ImageContent, TextContent

from dave_lsp.backends.openai.mcp_tools import function_name, result_text
from dave_lsp.backends.openai.session import OpenAISession
from dave_lsp.backends.openai.tools import READ_MAX_BYTES
from dave_lsp.config import parse_options
from dave_lsp.events import Done, PermissionResolved, Status, ToolResult
from dave_lsp.rpc import ParamsError
from dave_lsp.testing import FakeModelServer
from tests.conftest import Server
from tests.harness.acp import agent_starter, allow, tool
from tests.harness.lsp import new_session
from tests.test_openai_agent import Asker, openai_options, tool_call
from tests.test_openai_backend import make_config, marker

MARKER_SERVER = str(Path(__file__).with_name("mcp_marker_server.py"))
HTTP_SERVER = str(Path(__file__).with_name("mcp_http_server.py"))
KEY = {"OPENAI_API_KEY": "sk-fake-for-tests"}
TOUCH = "mcp__marker__touch"


def stdio(marker_file: Path, *words: str) -> dict[str, Any]:
    return {"command": sys.executable, "args": [MARKER_SERVER, str(marker_file), *words]}


def running(marker_file: Path) -> list[int]:
    """Live processes whose command line names the marker file: the server and its
    child, wherever they were reparented."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(") ", 1)[1][:1]
        except (OSError, IndexError):
            continue
        if str(marker_file).encode() in cmdline and state != "Z":
            found.append(int(entry))
    return found


async def permission(client: Any, token: str, decision: str) -> dict[str, Any]:
    request: dict[str, Any] = await client.wait_report(token, "permissionRequest")
    await client.request(
        "dave/permission", {"requestId": request["requestId"], "decision": decision}
    )
    return request


async def test_an_init_option_server_asks_runs_and_ends_with_its_session(
    server: Server, fake_model: FakeModelServer, backend_env: dict[str, str], tmp_path: Path
) -> None:
    touched = tmp_path / "touched.txt"
    servers = {"marker": stdio(touched, "child"), "broken": {"command": "/nonexistent/dave-mcp"}}
    options = {**openai_options(fake_model), "env": {**backend_env, **KEY}, "mcpServers": servers}
    async with server(**options) as client:
        session = new_session()
        m = marker()
        future, token = client.start_query(session, tool_call(TOUCH, {}, m))
        request = await permission(client, token, "deny")
        result = await asyncio.wait_for(future, 60)
        assert request["toolName"] == TOUCH
        assert request["message"] == f"Allow {TOUCH}?"
        assert not touched.exists()
        assert result["text"] == "Tool said: The user denied this tool use."
        # The server that failed is named, once, and the turn went on.
        [status] = [s for s in client.of_type(token, "status") if "MCP" in s.get("message", "")]
        assert status["message"] == (
            "MCP server broken did not start: No such file or directory: /nonexistent/dave-mcp;"
            " its tools are not offered"
        )
        [first, *_] = fake_model.requests_containing(m)
        names = [t["function"]["name"] for t in first.body["tools"]]
        assert names[-1] == TOUCH and "mcp__broken__" not in json.dumps(names)
        assert first.body["tools"][-1]["function"]["description"] == "Write the marker file."

        future, token = client.start_query(session, tool_call(TOUCH, {}))
        await permission(client, token, "allow")
        result = await asyncio.wait_for(future, 60)
        assert touched.read_text() == "the client's tool ran\n"
        assert result["text"] == "Tool said: touched"
        assert not [s for s in client.of_type(token, "status") if "MCP" in s.get("message", "")]
        assert len(running(touched)) == 2  # started once: the server and its child

        result, _ = await client.query(session, tool_call("mcp__broken__anything", {}))
        assert result["text"] == (
            "Tool said: No such tool: mcp__broken__anything. Its MCP server did not start:"
            " No such file or directory: /nonexistent/dave-mcp."
        )
        assert await client.request("dave/deleteSession", {"sessionId": session})
        assert running(touched) == []  # the child too: the server's group is killed


async def test_the_users_claude_code_rules_hold_for_mcp_tools(
    server: Server, fake_model: FakeModelServer, backend_env: dict[str, str], tmp_path: Path
) -> None:
    """A deny rule for a server is never asked; an ask rule asks for a read-only tool,
    which would run unasked otherwise."""
    home = tmp_path / "home"
    (home / ".claude").mkdir(parents=True)
    rules = {"permissions": {"deny": ["mcp__marker"], "ask": ["mcp__ro__touch"]}}
    (home / ".claude" / "settings.json").write_text(json.dumps(rules))
    denied, asked = tmp_path / "denied.txt", tmp_path / "asked.txt"
    servers = {"marker": stdio(denied), "ro": stdio(asked, "read-only")}
    env = {**backend_env, **KEY, "HOME": str(home)}
    async with server(**openai_options(fake_model), env=env, mcpServers=servers) as client:
        session = new_session()
        result, token = await client.query(session, tool_call(TOUCH, {}))
        assert not client.of_type(token, "permissionRequest")
        [resolved] = client.of_type(token, "permissionResolved")
        assert (resolved["decision"], resolved["by"], resolved["rule"]) == (
            "deny",
            "settings",
            "mcp__marker",
        )
        assert not denied.exists() and "mcp__marker" in result["text"]
        future, token = client.start_query(session, tool_call("mcp__ro__touch", {}))
        await permission(client, token, "allow")
        await asyncio.wait_for(future, 60)
        assert asked.exists()


async def test_an_acp_clients_server_asks_and_runs(
    backend_env: dict[str, str], fake_model: FakeModelServer, tmp_path: Path
) -> None:
    touched = tmp_path / "touched.txt"
    config = tmp_path / "acp.json"
    config.write_text(json.dumps({"openai": {"baseUrl": fake_model.url + "/v1"}}))
    flags = ("--backend=openai", "--model=fake-model", f"--config={config}")
    start = agent_starter({**backend_env, **KEY}, tmp_path)
    marker_server = {"name": "marker", **stdio(touched), "env": []}
    async with start(*flags) as client:
        session = await client.new_session(tmp_path, [marker_server])
        client.choose = allow("reject_once")
        await client.prompt(session, tool(TOUCH))
        [asked] = client.permission_requests
        assert TOUCH in asked["toolCall"]["title"]
        assert not touched.exists()
        client.choose = allow("allow_once")
        await client.prompt(session, tool(TOUCH))
        assert touched.read_text() == "the client's tool ran\n"
        assert len(running(touched)) == 1
    assert running(touched) == []


async def test_claude_code_gets_the_init_option_servers(server: Server, tmp_path: Path) -> None:
    touched = tmp_path / "touched.txt"
    async with server(mcpServers={"marker": stdio(touched)}) as client:
        future, token = client.start_query(new_session(), tool(TOUCH))
        request = await permission(client, token, "allow")
        await asyncio.wait_for(future, 60)
    assert request["toolName"] == TOUCH
    assert touched.read_text() == "the client's tool ran\n"


# -- on the session itself -----------------------------------------------------------


async def turn(session: OpenAISession, prompt: str) -> list[Any]:
    events = [event async for event in session.query(prompt, ())]
    assert isinstance(events[-1], Done), events
    return events


async def test_a_trusted_folders_mcp_json_and_a_read_only_tool(
    fake_model: FakeModelServer, tmp_path: Path
) -> None:
    """A read-only tool runs unasked as Read does; an untrusted folder's `.mcp.json`
    starts nothing (its `${VAR}` would be the session's env)."""
    touched = tmp_path / "touched.txt"
    entry = stdio(touched, "read-only")
    entry["args"][0] = "${MARKER_SERVER}"
    (tmp_path / ".mcp.json").write_text(json.dumps({"mcpServers": {"marker": entry}}))
    env = {**KEY, "MARKER_SERVER": MARKER_SERVER}
    url = fake_model.url + "/v1"
    untrusted = OpenAISession(make_config(url, cwd=str(tmp_path), env=env), Asker())
    try:
        events = await turn(untrusted, tool_call(TOUCH, {}))
        assert [e.is_error for e in events if isinstance(e, ToolResult)] == [True]
        assert not touched.exists()
    finally:
        await untrusted.close()
    asker = Asker()
    config = make_config(url, cwd=str(tmp_path), env=env, trusted=True)
    trusted = OpenAISession(config, asker)
    try:
        events = await turn(trusted, tool_call(TOUCH, {}))
        assert touched.exists() and asker.asked == []
        [resolved] = [e for e in events if isinstance(e, PermissionResolved)]
        assert (resolved.decision, resolved.by) == ("allow", "mode")
        assert not [e for e in events if isinstance(e, Status) and e.message]
    finally:
        await trusted.close()
    assert running(touched) == []


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def listening(port: int) -> None:
    async with asyncio.timeout(30):
        while True:
            with contextlib.suppress(OSError):
                _reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                return
            await asyncio.sleep(0.1)


async def test_http_and_sse_servers(fake_model: FakeModelServer, tmp_path: Path) -> None:
    kinds = {"streamable-http": ("web", "http", "/mcp"), "sse": ("old", "sse", "/sse")}
    ports = {kind: free_port() for kind in kinds}
    files = {kind: tmp_path / f"{kind}.txt" for kind in kinds}
    started = [
        await asyncio.create_subprocess_exec(
            sys.executable, HTTP_SERVER, kind, str(ports[kind]), str(files[kind]),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )
        for kind in kinds
    ]  # fmt: skip
    servers = {
        name: {"type": kind, "url": f"http://127.0.0.1:{ports[key]}{path}", "headers": {}}
        for key, (name, kind, path) in kinds.items()
    }
    config = make_config(
        fake_model.url + "/v1",
        cwd=str(tmp_path),
        env=KEY,
        mcp_servers=servers,
        permission_mode="bypassPermissions",
    )
    session = OpenAISession(config, Asker())
    try:
        await asyncio.gather(*(listening(port) for port in ports.values()))
        for kind, (name, _, _) in kinds.items():
            events = await turn(session, tool_call(f"mcp__{name}__touch", {}))
            assert files[kind].read_text() == f"the {kind} tool ran\n", events
    finally:
        await session.close()
        for process in started:
            process.kill()
            await process.wait()


def test_names_and_results_are_bounded() -> None:
    assert function_name("my.server", "do it/now") == "mcp__my_server__do_it_now"
    assert len(function_name("s" * 40, "t" * 40)) == 64
    big = "x" * (READ_MAX_BYTES + 10)
    image = ImageContent(data="aGVsbG8=", mime_type="image/png")
    text = result_text(CallToolResult(content=[TextContent(text="hi"), image]))
    assert text == "hi\n[image: image/png, 6 bytes, not shown]"
    cut = result_text(CallToolResult(content=[TextContent(text=big)]))
    assert cut.endswith("… (10 bytes of the result cut)")


@pytest.mark.parametrize("name", ["editor", "acp", "ide"])
def test_dave_lsps_own_server_names_are_refused(name: str) -> None:
    with pytest.raises(ParamsError, match=rf"mcpServers\.{name}: the name {name} is dave-lsp's"):
        parse_options({"mcpServers": {name: {"command": "x"}}})
    with pytest.raises(ParamsError, match=r"mcpServers\.web: url must be"):
        parse_options({"mcpServers": {"web": {"type": "http", "url": "ftp://x"}}})
