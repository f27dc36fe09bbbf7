"""dave/rewind and dave/fork (issue 27), through the real server, the real CLI and the
fake model (whose `recall` answers with the prompts it was sent before, so a test sees
exactly which turns the model still has): a rewind restores the files the dropped turns
changed (a file the user changed since is a conflict, kept) and the model no longer sees
those turns; `files: false` leaves the files; a fork holds the turns it was made at while
the original goes on; both after a restart, on the OpenAI backend too; a turn that does
not exist is -32602 naming the ones that do."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pygls.exceptions import JsonRpcException

from dave_lsp.acp.schema import acp
from dave_lsp.testing import FakeModelServer
from tests.conftest import Server
from tests.harness.acp import AcpError, agent_starter, strict
from tests.harness.lsp import DaveClient, new_session
from tests.harness.openai import openai_options


def rewrite(path: Path, old: str, new: str) -> str:
    """A prompt whose turn Reads `path`, then Edits it (the CLI edits only what it read)."""
    edit = {"file_path": str(path), "old_string": old, "new_string": new}
    return "steps " + json.dumps([["Read", {"file_path": str(path)}], ["Edit", edit]])


async def recall(client: DaveClient, session: str) -> str:
    result, _ = await client.query(session, "recall")
    text: str = result["text"]
    return text


async def listed(client: DaveClient, session: str) -> dict[str, Any]:
    sessions = (await client.request("dave/listSessions", {}))["sessions"]
    [found] = [s for s in sessions if s["sessionId"] == session]
    return dict(found)


async def test_rewind_restores_the_files_and_the_model_sees_the_turns_before(
    server: Server, tmp_path: Path
) -> None:
    a, b, c = tmp_path / "a.txt", tmp_path / "b.txt", tmp_path / "c.txt"
    session = new_session()
    async with server(permissionMode="acceptEdits") as client:
        await client.query(session, f"write {a} one")
        await client.query(session, f"write {b} two")
        await client.query(session, rewrite(a, "one", "three"))
        await client.query(session, f"write {c} four")
    assert a.read_text() == "three" and c.read_text() == "four"
    b.write_text("the user's own words")  # changed by turn 2 and by the user: kept
    async with server() as client:  # a new server process: the session is evicted
        with pytest.raises(JsonRpcException) as error:
            await client.request("dave/rewind", {"sessionId": session, "turn": 5})
        assert error.value.code == -32602
        assert "has turns 1 to 4; there is no turn 5" in str(error.value)
        rewound = await client.request("dave/rewind", {"sessionId": session, "turn": 3})
        assert rewound == {"turn": 3, "restored": [str(c), str(a)], "conflicts": []}
        assert a.read_text() == "one" and not c.exists()
        assert (await listed(client, session))["turns"] == 2
        told = await client.request("dave/history", {"sessionId": session})
        users = [e["text"] for e in told["entries"] if e["role"] == "user"]
        assert users == [f"write {a} one", f"write {b} two"]
        # The model sees turns 1 and 2 only; the next query is turn 3 again.
        assert await recall(client, session) == f"Seen: write {a} one | write {b} two"
        assert (await listed(client, session))["turns"] == 3
        with pytest.raises(JsonRpcException):  # turn 3's change set went with it
            await client.request("dave/changes", {"sessionId": session, "turn": 3})
        # Back to before turn 2: its file is the user's now, so it stays.
        again = await client.request("dave/rewind", {"sessionId": session, "turn": 2})
        assert again["restored"] == []
        [conflict] = again["conflicts"]
        assert conflict["path"] == str(b)
        assert "b.txt has changed since turn 2" in conflict["message"]
        assert b.read_text() == "the user's own words"
        assert await recall(client, session) == f"Seen: write {a} one"


async def test_rewind_without_files_and_while_a_turn_runs(server: Server, tmp_path: Path) -> None:
    a = tmp_path / "a.txt"
    session = new_session()
    async with server(permissionMode="acceptEdits") as client:
        await client.query(session, "hello")
        with pytest.raises(JsonRpcException):  # a failed turn is not numbered
            await client.query(session, "error 500 the fake is down")
        await client.query(session, f"write {a} kept")  # turn 2
        running, _ = client.start_query(session, "slow 100 20")
        await _until_working(client, session)
        with pytest.raises(JsonRpcException) as error:
            await client.request("dave/rewind", {"sessionId": session, "turn": 1})
        assert "is running a turn; cancel it" in str(error.value)
        await running
        rewound = await client.request(
            "dave/rewind", {"sessionId": session, "turn": 2, "files": False}
        )
        assert rewound == {"turn": 2, "restored": [], "conflicts": []}
        assert a.read_text() == "kept"
        # Turn 2 is the write, not the failed prompt, which stays where it was.
        assert await recall(client, session) == "Seen: hello | error 500 the fake is down"
        # Back to before the first turn: a new conversation.
        await client.request("dave/rewind", {"sessionId": session, "turn": 1})
        assert await recall(client, session) == "Seen: (nothing)"


async def _until_working(client: DaveClient, session: str) -> None:
    import asyncio

    for _ in range(200):
        if (await listed(client, session))["state"] == "working":
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the turn never started")


async def test_a_fork_holds_its_turns_while_the_original_goes_on(
    server: Server, tmp_path: Path
) -> None:
    session = new_session()
    async with server() as client:
        await client.query(session, "first")
        await client.query(session, "second")
        forked = (await client.request("dave/fork", {"sessionId": session, "turn": 1}))["sessionId"]
        whole = (await client.request("dave/fork", {"sessionId": session}))["sessionId"]
        assert forked != session and whole not in (session, forked)
        fork_info = await listed(client, forked)
        assert fork_info["forkedFrom"] == {"sessionId": session, "turn": 1}
        assert fork_info["turns"] == 1 and fork_info["cwd"] == str(tmp_path)
        assert "forkedFrom" not in await listed(client, session)
        assert await recall(client, forked) == "Seen: first"
        assert await recall(client, session) == "Seen: first | second"
        with pytest.raises(JsonRpcException) as error:
            await client.request("dave/fork", {"sessionId": session, "turn": 0})
        assert error.value.code == -32602 and "has turns 1 to 3" in str(error.value)
    async with server() as client:  # after a restart
        assert await recall(client, whole) == "Seen: first | second"
        again = (await client.request("dave/fork", {"sessionId": forked, "turn": 1}))["sessionId"]
        assert await recall(client, again) == "Seen: first"
        assert await recall(client, forked) == "Seen: first | recall"


async def test_the_openai_backend_rewinds_and_forks(
    server: Server, fake_model: FakeModelServer, tmp_path: Path
) -> None:
    options = openai_options(fake_model, permissionMode="acceptEdits")
    a = tmp_path / "oa.txt"
    session = new_session()
    async with server(**options) as client:
        await client.query(session, "one")
        await client.query(session, "two")
        await client.query(session, f"write {a} three")
        forked = (await client.request("dave/fork", {"sessionId": session, "turn": 2}))["sessionId"]
        rewound = await client.request("dave/rewind", {"sessionId": session, "turn": 2})
        assert rewound == {"turn": 2, "restored": [str(a)], "conflicts": []}
        assert not a.exists()
        assert await recall(client, session) == "Seen: one"
        assert await recall(client, forked) == "Seen: one | two"


def test_the_chat_rewinds_and_forks_with_its_own_commands(tmp_path: Path) -> None:
    typed = "write a.txt one\nwrite b.txt two\n/rewind 2\nrecall\n/fork 1\nrecall\n/rewind x\n"
    done = subprocess.run(
        [sys.executable, "-m", "dave_lsp", "chat", "--demo", "--yes", "--cwd", str(tmp_path)],
        input=typed,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (tmp_path / "a.txt").read_text() == "one" and not (tmp_path / "b.txt").exists()
    notes = done.stderr.splitlines()
    assert "rewound to before turn 2: the next prompt is turn 2" in notes
    assert f"restored: {tmp_path / 'b.txt'}" in notes
    assert any(n.startswith("forked chat-") and "(turns 1 to 1)" in n for n in notes)
    assert done.stdout.splitlines()[-2:] == ["Seen: write a.txt one"] * 2
    assert "error: usage: /rewind N [--keep-files]" in done.stderr
    assert done.returncode == 1  # the mistyped command


async def test_acp_forks_rewinds_and_reviews_through_its_methods(
    backend_env: dict[str, str], tmp_path: Path
) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    async with agent_starter(backend_env, tmp_path)("--permission-mode=acceptEdits") as client:
        caps = (await client.initialize())["agentCapabilities"]["sessionCapabilities"]
        assert caps["fork"] == {}
        session = await client.new_session(tmp_path)

        async def said(session_id: str, text: str) -> str:
            before = len(client.text(session_id))
            await client.prompt(session_id, text)
            return client.text(session_id)[before:]

        await said(session, f"write {a} one")
        await said(session, f"write {b} two")
        changes = await client.request("_dave/changes", {"sessionId": session, "turn": 2})
        assert [(f["path"], f["status"]) for f in changes["files"]] == [(str(b), "created")]
        forked = await client.request("session/fork", {"sessionId": session, "cwd": str(tmp_path)})
        strict(acp.ForkSessionResponse, forked)
        with pytest.raises(AcpError) as error:
            await client.request("_dave/rewind", {"sessionId": session, "turn": 9})
        assert error.value.code == -32602 and "has turns 1 to 2" in str(error.value)
        rewound = await client.request("_dave/rewind", {"sessionId": session, "turn": 2})
        assert rewound == {"turn": 2, "restored": [str(b)], "conflicts": []}
        assert not b.exists()
        # A load replays the turns the session keeps, not the CLI's record of the rest.
        replayed = len(client.of_kind(session, "user_message_chunk"))
        load = {"sessionId": session, "cwd": str(tmp_path), "mcpServers": []}
        await client.request("session/load", load)
        users = client.of_kind(session, "user_message_chunk")[replayed:]
        assert [u["content"]["text"] for u in users] == [f"write {a} one"]
        assert await said(session, "recall") == f"Seen: write {a} one"
        assert await said(forked["sessionId"], "recall") == f"Seen: write {a} one | write {b} two"
        undone = await client.request("_dave/revertChanges", {"sessionId": session, "turn": 1})
        assert undone == {"reverted": [str(a)], "conflicts": []}
        assert not a.exists()


async def test_bad_params_are_one_line_errors(server: Server, fake_model: FakeModelServer) -> None:
    options = openai_options(fake_model)
    session = new_session()
    async with server(**options) as client:
        await client.query(session, "one")
        wrong = [
            ("dave/rewind", {"sessionId": session, "turn": True}, "turn"),
            ("dave/rewind", {"sessionId": session}, "turn"),
            ("dave/rewind", {"sessionId": session, "turn": -1}, "has turn 1; there is no turn -1"),
            ("dave/rewind", {"sessionId": session, "turn": 1, "files": "no"}, "files"),
            ("dave/rewind", {"sessionId": "nobody", "turn": 1}, "no session nobody"),
            ("dave/fork", {"sessionId": session, "turn": 2}, "has turn 1; there is no turn 2"),
            ("dave/fork", {"sessionId": "nobody"}, "no session nobody"),
        ]
        for method, params, said in wrong:
            with pytest.raises(JsonRpcException) as error:
                await client.request(method, params)
            message = str(error.value)
            assert error.value.code == -32602 and said in message and "\n" not in message
            assert message.count(method) == 1, message
        assert (await listed(client, session))["turns"] == 1
