"""`dave-lsp acp` end to end: the real agent over stdio, the real bundled Claude Code
CLI, the shipped fake model. Every message the agent sends is checked against the ACP
schema types (tests/harness/acp.py)."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.harness.acp import AcpClient, AcpError, Start, agent_starter, allow
from tests.harness.processes import cli_processes


@pytest.fixture
def agent(backend_env: dict[str, str], tmp_path: Path) -> Start:
    """`agent(*flags, fs=False, write=None)`: an initialized AcpClient; every agent of a
    test shares one state dir, as an editor restarting its agent would."""
    return agent_starter(backend_env, tmp_path)


async def test_initialize_advertises_what_the_agent_does(agent: Start) -> None:
    async with agent() as client:
        result = await client.initialize()
        caps = result["agentCapabilities"]
        assert result["protocolVersion"] == 1
        # acplint sends the version as the string "1": read as 1, answered as the spec's.
        liberal = await client.request("initialize", {"protocolVersion": "1"})
        assert liberal["protocolVersion"] == 1
        assert caps["loadSession"] is True
        assert caps["promptCapabilities"] == {
            "image": True,
            "audio": False,
            "embeddedContext": True,
        }
        assert {"list", "resume"} <= set(caps["sessionCapabilities"])
        # A client's mistakes are answered, and the agent goes on.
        with pytest.raises(AcpError) as unknown:
            await client.request("session/frobnicate", {})
        assert unknown.value.code == -32601
        with pytest.raises(AcpError) as bad:
            await client.request("session/new", {"cwd": "relative/dir", "mcpServers": []})
        assert bad.value.code == -32602 and "cwd" in str(bad.value)
        with pytest.raises(AcpError) as missing:
            await client.prompt("no-such-session", "hi")
        assert "no session" in str(missing.value)
        assert client.proc.stdin is not None
        client.proc.stdin.write(b"{not json\n")
        assert (await client.request("session/list", {}))["sessions"] == []
        assert [e["code"] for e in client.unattributed] == [-32700]


async def test_prompt_streams_and_follows_up(agent: Start, tmp_path: Path) -> None:
    async with agent() as client:
        session = await client.new_session(tmp_path)
        result = await client.prompt(session, "think about ducks")
        assert result == {"stopReason": "end_turn"}
        assert client.text(session) == "Thought: about ducks"
        assert client.text(session, "agent_thought_chunk") == "Thinking about about ducks"
        commands = await client.wait_update(session, "available_commands_update")
        names = {c["name"] for c in commands["availableCommands"]}
        assert "compact" in names or names, names
        before = len(client.updates[session])
        assert (await client.prompt(session, "recall"))["stopReason"] == "end_turn"
        follow = [u for u in client.updates[session][before:] if "content" in u]
        assert "think about ducks" in "".join(u["content"]["text"] for u in follow)


async def test_write_asks_with_a_diff_and_reject_is_kept(agent: Start, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("old\n")
    async with agent() as client:
        session = await client.new_session(tmp_path)
        client.choose = allow("reject_once")
        result = await client.prompt(session, "write notes.txt new text")
        assert result["stopReason"] == "end_turn"
        assert (tmp_path / "notes.txt").read_text() == "old\n"
        [asked] = client.permission_requests
        call = asked["toolCall"]
        assert call["kind"] == "edit"
        assert call["locations"] == [{"path": str(tmp_path / "notes.txt")}]
        assert call["content"] == [
            {
                "type": "diff",
                "path": str(tmp_path / "notes.txt"),
                "oldText": "old\n",
                "newText": "new text",
            }
        ]
        kinds = {o["kind"]: o["optionId"] for o in asked["options"]}
        assert set(kinds) == {"allow_once", "allow_always", "reject_once"}
        [done] = [
            u for u in client.of_kind(session, "tool_call_update") if u.get("status") == "failed"
        ]
        assert done["toolCallId"] == call["toolCallId"]

        # Allow once writes; allow always adds the session's rule, so the next edit
        # in the folder is not asked about.
        client.choose = allow("allow_once")
        await client.prompt(session, "write notes.txt once")
        assert (tmp_path / "notes.txt").read_text() == "once"
        client.choose = allow("allow_always")
        await client.prompt(session, "write notes.txt always")
        assert (tmp_path / "notes.txt").read_text() == "always"
        asked_before = len(client.permission_requests)
        await client.prompt(session, "write other.txt by rule")
        assert (tmp_path / "other.txt").read_text() == "by rule"
        assert len(client.permission_requests) == asked_before
        new_file = client.permission_requests[1]["toolCall"]["content"][0]
        assert new_file["oldText"] == "old\n"


async def test_cancel_ends_the_turn_fast_and_the_session_goes_on(
    agent: Start, tmp_path: Path
) -> None:
    async with agent() as client:
        session = await client.new_session(tmp_path)
        turn = asyncio.ensure_future(client.prompt(session, "slow 200 50"))
        await client.wait_update(session, "agent_message_chunk")
        started = time.monotonic()
        client.notify("session/cancel", {"sessionId": session})
        result = await asyncio.wait_for(turn, 10)
        elapsed = time.monotonic() - started
        assert result["stopReason"] == "cancelled"
        assert elapsed < 2, elapsed
        before = len(client.updates[session])
        assert (await client.prompt(session, "think again"))["stopReason"] == "end_turn"
        after = "".join(
            u["content"]["text"]
            for u in client.updates[session][before:]
            if u["sessionUpdate"] == "agent_message_chunk"
        )
        assert after == "Thought: again"


async def test_load_after_a_restart_replays_the_conversation(agent: Start, tmp_path: Path) -> None:
    async with agent() as client:
        session = await client.new_session(tmp_path)
        client.choose = allow("allow_once")
        await client.prompt(session, "think about geese")
        await client.prompt(session, "write kept.txt kept")
    async with agent() as client:
        listed = await client.request("session/list", {"cwd": str(tmp_path)})
        assert [s["sessionId"] for s in listed["sessions"]] == [session]
        assert listed["sessions"][0]["title"] == "think about geese"
        result = await client.request(
            "session/load", {"sessionId": session, "cwd": str(tmp_path), "mcpServers": []}
        )
        assert result["modes"]["currentModeId"] == "default"
        replayed = client.updates[session]
        assert client.text(session, "user_message_chunk").startswith("think about geese")
        assert "Thought: about geese" in client.text(session)
        [write] = [u for u in replayed if u["sessionUpdate"] == "tool_call"]
        assert write["title"] == "Write" and write["kind"] == "edit"
        assert any(
            u["sessionUpdate"] == "tool_call_update" and u["status"] == "completed"
            for u in replayed
        )
        # Every chunk names its message, as a live turn's do: one messageId per user
        # message, one per run of the model's text or thinking, none shared.
        chunks = [u for u in replayed if u["sessionUpdate"].endswith("_chunk")]
        assert all(isinstance(u.get("messageId"), str) for u in chunks), chunks
        runs = [
            (u["sessionUpdate"], u["messageId"])
            for i, u in enumerate(chunks)
            if i == 0 or u["messageId"] != chunks[i - 1]["messageId"]
        ]
        asked = [kind for kind, _ in runs if kind == "user_message_chunk"]
        assert len(asked) == 2 and len({i for _, i in runs}) == len(runs), runs
        before = len(client.updates[session])
        await client.prompt(session, "recall")
        recalled = "".join(
            u["content"]["text"]
            for u in client.updates[session][before:]
            if u["sessionUpdate"] == "agent_message_chunk"
        )
        assert "think about geese" in recalled
        with pytest.raises(AcpError):
            await client.request(
                "session/load",
                {
                    "sessionId": "00000000-0000-0000-0000-000000000000",
                    "cwd": str(tmp_path),
                    "mcpServers": [],
                },
            )


async def test_modes_and_models_go_through_configure(agent: Start, tmp_path: Path) -> None:
    async with agent() as client:
        created = await client.request("session/new", {"cwd": str(tmp_path), "mcpServers": []})
        session = created["sessionId"]
        assert [m["id"] for m in created["modes"]["availableModes"]] == [
            "default",
            "acceptEdits",
            "plan",
            "bypassPermissions",
        ]
        assert created["configOptions"][0]["category"] == "model"
        await client.request("session/set_mode", {"sessionId": session, "modeId": "acceptEdits"})
        await client.prompt(session, "write auto.txt no question")
        assert (tmp_path / "auto.txt").read_text() == "no question"
        assert client.permission_requests == []
        # Unasked, the edit's diff comes with its completed update (from the change
        # tracking), and a second edit of the file diffs from the first one's text.
        auto = str(tmp_path / "auto.txt")
        await client.prompt(session, "write auto.txt second")
        assert diffs(client, session) == [
            {"type": "diff", "path": auto, "oldText": None, "newText": "no question"},
            {"type": "diff", "path": auto, "oldText": "no question", "newText": "second"},
        ]
        assert client.fs_requests == []  # a client without fs: the disk, as before
        with pytest.raises(AcpError):
            await client.request("session/set_mode", {"sessionId": session, "modeId": "yolo"})
        changed = await client.request(
            "session/set_config_option",
            {"sessionId": session, "configId": "model", "value": "haiku"},
        )
        assert changed["configOptions"][0]["currentValue"] == "haiku"
        listed = await client.request("session/list", {})
        assert listed["sessions"][0]["sessionId"] == session


async def test_thirteen_sessions_within_max_live_sessions(agent: Start, tmp_path: Path) -> None:
    async with agent("--max-live-sessions=3") as client:
        peak = 0

        async def sample() -> None:
            nonlocal peak
            while True:
                peak = max(peak, len(cli_processes(client.proc.pid)))
                await asyncio.sleep(0.05)

        sampler = asyncio.ensure_future(sample())
        try:
            # A burst of session/new, then a prompt in each, one after another.
            sessions = await asyncio.gather(*(client.new_session(tmp_path) for _ in range(13)))
            for session in sessions:
                await client.prompt(session, "think briefly")
            # An evicted session resumes its conversation on its next prompt.
            before = len(client.updates[sessions[0]])
            await client.prompt(sessions[0], "recall")
        finally:
            sampler.cancel()
        recalled = "".join(
            u["content"]["text"]
            for u in client.updates[sessions[0]][before:]
            if u["sessionUpdate"] == "agent_message_chunk"
        )
        assert "think briefly" in recalled
        assert peak <= 3, peak


def diffs(client: AcpClient, session: str) -> list[dict[str, Any]]:
    """The diff content of the session's completed tool calls, in order."""
    return [
        c
        for u in client.of_kind(session, "tool_call_update")
        if u.get("status") == "completed"
        for c in u.get("content") or []
        if c["type"] == "diff"
    ]


def fs_tool(name: str, **tool_input: Any) -> str:
    return f"tool mcp__acp__{name} {json.dumps(tool_input)}"


async def test_client_fs_reads_the_buffer_and_edits_go_through_the_client(
    agent: Start, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("disk text\n")
    path = str(notes)
    async with agent(fs=True) as client:
        client.buffers[path] = "unsaved buffer text\n"
        session = await client.new_session(tmp_path)
        await client.prompt(session, fs_tool("Read", file_path=path))
        said = client.text(session)
        assert "unsaved buffer text" in said and "disk text" not in said
        [call] = client.of_kind(session, "tool_call")
        assert (call["kind"], call["title"]) == ("read", "Read notes.txt")
        assert client.permission_requests == []  # a read in the folder is not asked

        # The built-in file tools are off: nothing reaches the disk behind the editor.
        await client.prompt(session, "write notes.txt behind the editor's back")
        assert "No such tool available: Write" in client.text(session)

        # An edit is asked with the diff against the buffer, then goes to the client.
        client.choose = allow("reject_once")
        edit = fs_tool("Edit", file_path=path, old_string="unsaved", new_string="edited")
        await client.prompt(session, edit)
        [asked] = client.permission_requests
        assert asked["toolCall"]["kind"] == "edit"
        assert asked["toolCall"]["content"] == [
            {
                "type": "diff",
                "path": path,
                "oldText": "unsaved buffer text\n",
                "newText": "edited buffer text\n",
            }
        ]
        assert not [r for r in client.fs_requests if r[0] == "fs/write_text_file"]
        client.choose = allow("allow_once")
        await client.prompt(session, edit)
        [(_, written)] = [r for r in client.fs_requests if r[0] == "fs/write_text_file"]
        assert written == {"sessionId": session, "path": path, "content": "edited buffer text\n"}
        assert client.buffers[path] == "edited buffer text\n"
        assert notes.read_text() == "disk text\n"  # the editor saves it, not the agent

        # A new file goes through the client too; in acceptEdits it is not asked, and
        # its completed update carries the diff.
        await client.request("session/set_mode", {"sessionId": session, "modeId": "acceptEdits"})
        asked_before = len(client.permission_requests)
        new = str(tmp_path / "new.txt")
        await client.prompt(session, fs_tool("Write", file_path=new, content="fresh\n"))
        assert len(client.permission_requests) == asked_before
        assert client.buffers[new] == "fresh\n"
        assert not (tmp_path / "new.txt").exists()
        assert diffs(client, session)[-1] == {
            "type": "diff",
            "path": new,
            "oldText": None,
            "newText": "fresh\n",
        }


async def test_a_client_that_only_reads_keeps_the_disk(agent: Start, tmp_path: Path) -> None:
    """Reads from the buffer with writes on disk would not work: without the CLI's
    own Read, it refuses its Write of a file "not read yet" (probed)."""
    notes = tmp_path / "notes.txt"
    notes.write_text("disk\n")
    async with agent(fs=True, write=False) as client:
        client.buffers[str(notes)] = "buffer\n"
        session = await client.new_session(tmp_path)
        await client.prompt(session, f"tool Read {json.dumps({'file_path': str(notes)})}")
        assert "disk" in client.text(session) and "buffer" not in client.text(session)
        await client.prompt(session, "write notes.txt new")
        [asked] = client.permission_requests
        assert asked["toolCall"]["content"][0]["oldText"] == "disk\n"
        assert notes.read_text() == "new"
        assert client.fs_requests == []


async def test_a_buffer_changed_after_the_question_is_not_overwritten(
    agent: Start, tmp_path: Path
) -> None:
    path = str(tmp_path / "a.txt")
    async with agent(fs=True) as client:
        client.buffers[path] = "one\n"
        session = await client.new_session(tmp_path)

        def edit_then_allow(params: dict[str, Any]) -> dict[str, Any]:
            client.buffers[path] = "one, and the user typed more\n"
            return allow("allow_once")(params)

        client.choose = edit_then_allow
        await client.prompt(
            session, fs_tool("Edit", file_path=path, old_string="one", new_string="1")
        )
        assert client.buffers[path] == "one, and the user typed more\n"
        assert "changed in the editor since the permission was asked" in client.text(session)


async def test_fs_tools_keep_the_clis_modes(
    agent: Start, tmp_path: Path, backend_env: dict[str, str]
) -> None:
    """A read outside the folder is asked; in plan mode the CLI's plan file is written
    on disk without asking (it is the CLI's, not the editor's), other edits are asked."""
    outside = tmp_path.parent / f"{tmp_path.name}-outside.txt"
    outside.write_text("elsewhere\n")
    plan = Path(backend_env["HOME"], ".claude", "plans", f"{tmp_path.name}.md")
    async with agent("--permission-mode=plan", fs=True) as client:
        session = await client.new_session(tmp_path)
        client.choose = allow("reject_once")
        await client.prompt(session, fs_tool("Read", file_path=str(outside)))
        [asked] = client.permission_requests
        assert asked["toolCall"]["kind"] == "read"
        assert "elsewhere" not in client.text(session)
        client.permission_requests.clear()
        steps = [
            ["mcp__acp__Write", {"file_path": str(plan), "content": "# Plan\n- one\n"}],
            ["mcp__acp__Write", {"file_path": str(tmp_path / "code.py"), "content": "x = 1\n"}],
        ]
        await client.prompt(session, "steps " + json.dumps(steps))
        assert await asyncio.to_thread(plan.read_text) == "# Plan\n- one\n"
        [asked] = client.permission_requests
        assert asked["toolCall"]["locations"] == [{"path": str(tmp_path / "code.py")}]
        assert [r[1]["path"] for r in client.fs_requests if r[0] == "fs/write_text_file"] == []
        assert not (tmp_path / "code.py").exists()


async def test_all_of_the_models_questions_are_asked(agent: Start, tmp_path: Path) -> None:
    questions = [
        {
            "question": "Which color?",
            "header": "Color",
            "multiSelect": False,
            "options": [{"label": "Blue", "description": ""}, {"label": "Red", "description": ""}],
        },
        {
            "question": "Which size?",
            "header": "Size",
            "multiSelect": False,
            "options": [{"label": "S", "description": ""}, {"label": "L", "description": ""}],
        },
    ]
    async with agent() as client:
        session = await client.new_session(tmp_path)
        client.choose = lambda p: allow(p["options"][-2]["optionId"])(p)  # the last choice
        await client.prompt(session, "tool AskUserQuestion " + json.dumps({"questions": questions}))
        titles = [r["toolCall"]["title"] for r in client.permission_requests]
        assert titles == ["Which color?", "Which size?"]
        said = client.text(session)
        assert '"Which color?"="Red"' in said and '"Which size?"="L"' in said


async def test_an_approved_plan_changes_the_mode_and_usage_is_reported(
    agent: Start, tmp_path: Path
) -> None:
    async with agent("--permission-mode=plan") as client:
        session = await client.new_session(tmp_path)
        client.choose = allow("allow_always")
        await client.prompt(session, "plan # Tidy up | - rename x")
        [asked] = client.permission_requests
        assert asked["toolCall"]["kind"] == "switch_mode"
        [mode] = client.of_kind(session, "current_mode_update")
        assert mode["currentModeId"] == "acceptEdits"
        await client.prompt(session, "write after-plan.txt done")
        assert (tmp_path / "after-plan.txt").read_text() == "done"
        assert len(client.permission_requests) == 1
        # The context meter: once the window is known (after a first turn), each turn
        # ends with the context used of it and the session's cost.
        usage = client.of_kind(session, "usage_update")
        assert usage and 0 < usage[-1]["used"] < usage[-1]["size"]
        assert usage[-1]["cost"]["currency"] == "USD"


def test_mcp_servers_and_prompt_blocks_map_onto_the_session_layer(tmp_path: Path) -> None:
    from acp import schema as acp

    from dave_lsp.acp.content import mcp_servers, prompt_content
    from dave_lsp.acp.schema import parse

    request = parse(
        "session/new",
        {
            "cwd": str(tmp_path),
            "mcpServers": [
                {
                    "name": "files",
                    "command": "mcp-files",
                    "args": ["-v"],
                    "env": [{"name": "TOKEN", "value": "t"}],
                },
                {
                    "type": "http",
                    "name": "web",
                    "url": "http://127.0.0.1:9/mcp",
                    "headers": [{"name": "X-Key", "value": "k"}],
                },
            ],
        },
        acp.NewSessionRequest,
    )
    assert mcp_servers(request.mcp_servers) == {
        "files": {"type": "stdio", "command": "mcp-files", "args": ["-v"], "env": {"TOKEN": "t"}},
        "web": {"type": "http", "url": "http://127.0.0.1:9/mcp", "headers": {"X-Key": "k"}},
    }
    prompt = parse(
        "session/prompt",
        {
            "sessionId": "s",
            "prompt": [
                {"type": "text", "text": "/review"},
                {"type": "resource_link", "name": "a.py", "uri": "file:///src/a%20b.py"},
                {"type": "resource", "resource": {"uri": "file:///src/c.py", "text": "print(1)"}},
                {"type": "image", "mimeType": "image/png", "data": "aGk="},
            ],
        },
        acp.PromptRequest,
    )
    text, images = prompt_content(prompt.prompt)
    assert text == '/review @/src/a b.py\n\n<context ref="file:///src/c.py">\nprint(1)\n</context>'
    assert [(i.media_type, i.data) for i in images] == [("image/png", "aGk=")]


def test_options_come_from_a_config_file_with_flags_over_it(tmp_path: Path) -> None:
    from dave_lsp.acp.serve import add_acp_arguments, raw_options
    from dave_lsp.config import parse_options

    config = tmp_path / "acp.json"
    config.write_text('{"maxLiveSessions": 4, "prewarm": 2, "env": {"A": "1"}}')
    parser = argparse.ArgumentParser()
    add_acp_arguments(parser)
    args = parser.parse_args([f"--config={config}", "--prewarm=0", "--env=B=2"])
    options, unknown = parse_options(raw_options(args))
    assert (options.max_live_sessions, options.prewarm) == (4, 0)
    assert options.env == {"A": "1", "B": "2"} and unknown == []
