"""`dave/history` (issue 17): a remembered session's conversation, read from the backend's
own record, through the real server and CLI against the fake model: after a restart,
for a warmed-up session, for the OpenAI backend, for a session with no turns, and the
errors a client's mistake gets."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
from pygls.exceptions import JsonRpcException

from dave_lsp.testing import FakeModelServer
from tests.conftest import Server
from tests.harness.lsp import DaveClient, new_session
from tests.harness.openai import openai_options
from tests.harness.processes import cli_processes
from tests.test_chat import chat

INVALID_PARAMS = -32602


async def history(client: DaveClient, session: str) -> dict[str, Any]:
    return await asyncio.wait_for(client.request("dave/history", {"sessionId": session}), 30)


async def allowed_query(client: DaveClient, session: str, prompt: str) -> tuple[Any, str]:
    """A query whose one permission request the user allows, as an editor would."""
    future, token = client.start_query(session, prompt)
    request = await client.wait_report(token, "permissionRequest", timeout=60)
    await client.request(
        "dave/permission", {"requestId": request["requestId"], "decision": "allow"}
    )
    return await asyncio.wait_for(future, 60), token


def turns_of(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The entries as turns: each user prompt with the assistant entries after it."""
    turns: list[dict[str, Any]] = []
    for entry in entries:
        if entry["role"] == "user":
            turns.append({"prompt": entry, "answers": []})
        else:
            assert turns, f"an assistant entry before any prompt: {entry}"
            turns[-1]["answers"].append(entry)
    return turns


def tool_uses(answers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [use for entry in answers for use in entry.get("toolUses", [])]


async def test_the_conversation_is_there_after_a_restart(server: Server, tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text("print('hi')\n")
    session = new_session()
    context = {"activeFile": {"path": "main.py", "languageId": "python"}}
    async with server() as first:
        thought, think_token = await first.query(session, "think about figs", context=context)
        wrote, _ = await allowed_query(first, session, "write notes.txt hello")
        live = await history(first, session)
    assert (tmp_path / "notes.txt").read_text() == "hello"
    async with server() as second:
        after = await history(second, session)
        assert second._server is not None
        assert cli_processes(second._server.pid) == [], "reading history started no CLI"
        listed = await second.request("dave/listSessions", {})
    assert after == live
    assert after["sessionId"] == session and after["backend"] == "claude"
    assert after["available"] is True and "reason" not in after
    turns = turns_of(after["entries"])
    # Both prompts as typed, in order; the editor context put before the first is left out.
    assert [t["prompt"]["text"] for t in turns] == ["think about figs", "write notes.txt hello"]
    assert turns[0]["prompt"].get("editorContext") is True
    assert "editorContext" not in turns[1]["prompt"]
    # Each turn's answer is what the query returned, thinking included.
    for turn, result in zip(turns, (thought, wrote), strict=True):
        assert "".join(a["text"] for a in turn["answers"]) == result["text"]
    assert "".join(a.get("thinking", "") for a in turns[0]["answers"]) == first.texts(
        think_token, "thinking"
    )
    assert first.texts(think_token, "thinking")
    # The tool use, as the turn reported it, before the text that came after it.
    assert tool_uses(turns[0]["answers"]) == []
    assert [
        (u["toolUseId"], u["toolName"], u["message"], u["summary"], u["isError"])
        for u in tool_uses(turns[1]["answers"])
    ] == [
        (r["toolUseId"], r["toolName"], "Write notes.txt", r["summary"], r["isError"])
        for r in wrote["toolResults"]
    ]
    answers = turns[1]["answers"]
    assert answers[0].get("toolUses") and answers[-1]["text"] == wrote["text"]
    # dave/listSessions carries the last activity the picker shows.
    listed_session = next(s for s in listed["sessions"] if s["sessionId"] == session)
    assert listed_session["lastActiveAt"] and listed_session["turns"] == 2


async def test_a_warmed_up_session_shows_only_what_the_user_asked(server: Server) -> None:
    async with server(prewarm=1) as client:
        created = await client.request("dave/newSession", {})
        session = created["sessionId"]
        assert await history(client, session) == {
            "sessionId": session,
            "backend": "claude",
            "available": True,
            "entries": [],
        }
        result, _ = await client.query(session, "hello warm")
        found = await history(client, session)
    assert [e["text"] for e in found["entries"]] == ["hello warm", result["text"]]
    assert [e["role"] for e in found["entries"]] == ["user", "assistant"]


async def test_a_session_without_turns_has_an_empty_history(server: Server) -> None:
    async with server() as first:
        await first.request("dave/newSession", {"sessionId": "quiet"})
        assert (await history(first, "quiet"))["entries"] == []
    async with server() as second:
        found = await history(second, "quiet")
    assert found == {"sessionId": "quiet", "backend": "claude", "available": True, "entries": []}


async def test_an_unknown_session_or_bad_params_is_a_clear_error(server: Server) -> None:
    async with server() as client:
        with pytest.raises(JsonRpcException) as unknown:
            await history(client, "never-made")
        assert unknown.value.code == INVALID_PARAMS
        assert unknown.value.message == "dave/history: no session never-made"
        with pytest.raises(JsonRpcException) as missing:
            await client.request("dave/history", {})
        assert missing.value.code == INVALID_PARAMS
        assert "sessionId" in missing.value.message
        with pytest.raises(JsonRpcException) as wrong:
            await client.request("dave/history", {"sessionId": 7})
        assert "sessionId: expected a string" in wrong.value.message
        # The server is still there for the next request.
        listed = await client.request("dave/listSessions", {})
        assert "never-made" not in [s["sessionId"] for s in listed["sessions"]]


async def test_an_adopted_id_that_is_a_pattern_reads_no_other_conversation(
    server: Server,
) -> None:
    async with server() as client:
        await client.query(new_session(), "a conversation of its own")
        # `resume` takes any string; as a file name pattern it would match every file.
        await client.request("dave/newSession", {"sessionId": "pattern", "resume": "*"})
        found = await history(client, "pattern")
    assert found["entries"] == []


async def test_the_openai_backend_answers_while_it_lives_and_after_a_restart(
    server: Server, fake_model: FakeModelServer, tmp_path: Path
) -> None:
    options = openai_options(fake_model)
    session = new_session()
    async with server(**options) as first:
        said, _ = await first.query(session, "hello openai")
        wrote, _ = await allowed_query(first, session, "write oa.txt fine")
        live = await history(first, session)
    assert (tmp_path / "oa.txt").read_text() == "fine"
    assert live["backend"] == "openai" and live["available"] is True
    turns = turns_of(live["entries"])
    assert [t["prompt"]["text"] for t in turns] == ["hello openai", "write oa.txt fine"]
    for turn, result in zip(turns, (said, wrote), strict=True):
        assert "".join(a["text"] for a in turn["answers"]) == result["text"]
    assert [
        (u["toolUseId"], u["toolName"], u["message"]) for u in tool_uses(turns[1]["answers"])
    ] == [(r["toolUseId"], r["toolName"], "Write oa.txt") for r in wrote["toolResults"]]
    async with server(**options) as second:
        # Read back from its transcript file (issue 29); its next query continues it.
        kept = await history(second, session)
        await second.query(session, "again")
        revived = await history(second, session)
    assert kept == live
    assert [e["text"] for e in revived["entries"] if e["role"] == "user"] == [
        "hello openai",
        "write oa.txt fine",
        "again",
    ]


async def test_a_deleted_transcript_is_said_so(
    server: Server, backend_home: Path, tmp_path: Path
) -> None:
    session = new_session()
    async with server() as first:
        result, _ = await first.query(session, "hello file")
    folder = backend_home / ".claude" / "projects"
    for path in folder.glob(f"*/{result['backendSessionId']}.jsonl"):
        os.unlink(path)
    async with server() as second:
        found = await history(second, session)
    assert found["available"] is False and found["entries"] == []
    assert result["backendSessionId"] in found["reason"]
    assert "not under" in found["reason"]


# -- `dave-lsp chat --history` ---------------------------------------------------------


def test_chat_prints_a_session_s_history_in_a_later_run(tmp_path: Path) -> None:
    # The demo's HOME is thrown away after each run; this one keeps the CLI's transcript.
    home = ["--env", f"HOME={tmp_path / 'home'}"]
    (tmp_path / "home").mkdir()
    session = ["--session", new_session()]
    first = chat(*session, *home, "--yes", cwd=tmp_path, stdin="hello there\nwrite pear.txt ripe\n")
    assert first.returncode == 0, first.stderr
    answers = first.stdout.splitlines()
    assert (tmp_path / "pear.txt").read_text() == "ripe"
    later = chat(*session, *home, "--history", cwd=tmp_path)
    assert later.returncode == 0, later.stderr
    assert later.stdout.splitlines() == [
        "> hello there",
        answers[0],
        "",
        "> write pear.txt ripe",
        "  ✓ Write pear.txt (4 bytes)",
        answers[1],
    ]


def test_chat_history_needs_a_session(tmp_path: Path) -> None:
    done = chat("--history", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == (
        "error: --history needs --session ID: the session whose conversation to print"
    )
    unknown = chat("--history", "--session", "no-such-chat", cwd=tmp_path)
    assert unknown.returncode == 1
    assert "error: dave/history: no session no-such-chat" in unknown.stderr
    assert "Traceback" not in unknown.stderr
