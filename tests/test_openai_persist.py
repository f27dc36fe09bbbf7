"""The OpenAI agent at parity with Claude sessions (issue 29): its conversation is kept in
a transcript file under the state folder, so a restart or an eviction continues it
(`dave/history`, a query without the editor's `messages`, rewind and fork); a broken or
oversized file is a clear log line and a fresh start; and the user's Claude Code
permission rules hold for its tools.

Through the real server against the shipped fake endpoint, which reports what each
request carried (`recall` answers with the user prompts it was sent).
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import time
from pathlib import Path
from typing import Any

from dave_lsp.backends.openai import transcript
from dave_lsp.backends.openai.history import Conversation
from dave_lsp.testing import FakeModelServer
from tests.conftest import Server
from tests.harness.acp import agent_starter, allow
from tests.harness.lsp import DaveClient, new_session
from tests.test_history import history
from tests.test_openai_backend import marker
from tests.test_rewind import listed, recall

KEY = {"OPENAI_API_KEY": "sk-fake-for-tests"}


def options(fake_model: FakeModelServer, **extra: Any) -> dict[str, Any]:
    return {
        "backend": "openai",
        "model": "fake-model",
        "permissionMode": "acceptEdits",
        "openai": {"baseUrl": fake_model.url + "/v1"},
        "env": KEY,
        **extra,
    }


def files(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "state" / transcript.FOLDER).glob("*.jsonl"))


def user_texts(entries: list[dict[str, Any]]) -> list[str]:
    return [e["text"] for e in entries if e["role"] == "user"]


def logged(client: DaveClient) -> str:
    return "\n".join(m.message for m in client.log_messages)


async def test_a_restart_continues_the_conversation_from_its_transcript(
    server: Server, fake_model: FakeModelServer, tmp_path: Path
) -> None:
    session, m = new_session(), marker()
    async with server(**options(fake_model)) as first:
        await first.query(session, f"one {m}")
        await first.query(session, f"write {tmp_path / 'a.txt'} alpha")
        live = await history(first, session)
    [kept] = files(tmp_path)
    assert session not in kept.name  # named by a hash: a client's id reaches no path
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert stat.S_IMODE(kept.parent.stat().st_mode) == 0o700
    async with server(**options(fake_model)) as second:
        read_back = await history(second, session)
        # No `messages`: the model sees the earlier turns, tool call and result too.
        said = await recall(second, session)
        again = await history(second, session)
    assert read_back == live and read_back["available"] is True
    assert said == f"Seen: one {m} | write {tmp_path / 'a.txt'} alpha"
    sent = fake_model.requests_containing(m)[-1].body["messages"]
    roles = ["user", "assistant", "user", "assistant", "tool", "assistant", "user"]
    assert [x["role"] for x in sent] == roles
    assert sent[4]["content"].startswith("Wrote ")
    assert user_texts(again["entries"]) == [
        f"one {m}",
        f"write {tmp_path / 'a.txt'} alpha",
        "recall",
    ]


async def test_an_evicted_session_continues_its_conversation(
    server: Server, fake_model: FakeModelServer
) -> None:
    session = new_session()
    async with server(**options(fake_model, idleTimeoutSeconds=0.5)) as client:
        await client.query(session, "before the eviction")
        async with asyncio.timeout(20):
            while (await listed(client, session))["state"] != "evicted":  # noqa: ASYNC110
                await asyncio.sleep(0.2)  # the reaper's work: no event to wait on
        assert await recall(client, session) == "Seen: before the eviction"


async def test_rewind_and_fork_are_kept_across_a_restart(
    server: Server, fake_model: FakeModelServer
) -> None:
    session = new_session()
    async with server(**options(fake_model)) as client:
        for prompt in ("one", "two", "three"):
            await client.query(session, prompt)
        forked = (await client.request("dave/fork", {"sessionId": session, "turn": 2}))["sessionId"]
        await client.request("dave/rewind", {"sessionId": session, "turn": 2})
    async with server(**options(fake_model)) as client:
        assert user_texts((await history(client, session))["entries"]) == ["one"]
        assert user_texts((await history(client, forked))["entries"]) == ["one", "two"]
        # A fork of a session that is not live reads its transcript: a copy of turn 1.
        again = (await client.request("dave/fork", {"sessionId": forked, "turn": 1}))["sessionId"]
        assert await recall(client, again) == "Seen: one"
        assert await recall(client, session) == "Seen: one"
        assert await recall(client, forked) == "Seen: one | two"
    async with server(**options(fake_model)) as client:
        assert await recall(client, again) == "Seen: one | recall"


async def test_a_turn_cut_off_by_a_crash_and_a_torn_last_line_are_repaired(
    server: Server, fake_model: FakeModelServer, tmp_path: Path
) -> None:
    session = new_session()
    async with server(**options(fake_model)) as client:
        await client.query(session, "kept")
    [path] = files(tmp_path)
    with path.open("ab") as out:  # a prompt whose turn never ended, then half a line
        out.write(b'{"message": {"role": "user", "content": "lost"}, "turn": true}\n{"mess')
    async with server(**options(fake_model)) as client:
        assert await recall(client, session) == "Seen: kept"
    async with server(**options(fake_model)) as client:
        assert await recall(client, session) == "Seen: kept | recall"


async def test_a_broken_or_oversized_transcript_is_a_log_line_and_a_fresh_start(
    server: Server, fake_model: FakeModelServer, tmp_path: Path
) -> None:
    broken, shaped, big = new_session(), new_session(), new_session()
    async with server(**options(fake_model)) as client:
        await client.query(broken, "first of broken")
        await client.query(shaped, "first of shaped")
        await client.query(big, "first of big")
    for path in files(tmp_path):
        lines = path.read_bytes().splitlines(keepends=True)
        if b"first of broken" in lines[0]:
            path.write_bytes(lines[0] + b"not json\n" + b"".join(lines[1:]))
        elif b"first of shaped" in lines[0]:  # JSON, but not a message's shape
            wrong = {"message": {"role": "assistant", "content": "x", "tool_calls": "oops"}}
            path.write_bytes(lines[0] + json.dumps(wrong).encode() + b"\n" + lines[-1])
        else:
            with path.open("r+b") as out:  # sparse: over the bound without writing it
                out.truncate(transcript.READ_LIMIT + 1)
    async with server(**options(fake_model)) as client:
        gone = await history(client, broken)
        assert gone["available"] is False and "\n" not in gone["reason"]
        assert "line 2 is not a transcript record" in gone["reason"]
        result, token = await client.query(broken, "recall")
        assert result["text"] == "Seen: (nothing)"
        notices = [s.get("message", "") for s in client.of_type(token, "status")]
        assert any("could not be read back" in n for n in notices), notices
        assert (await client.query(big, "recall"))[0]["text"] == "Seen: (nothing)"
        wrong = await history(client, shaped)
        assert "line 2 is not a transcript record" in wrong["reason"]
        assert (await client.query(shaped, "recall"))[0]["text"] == "Seen: (nothing)"
        # Both go on as new conversations, kept from now on.
        assert await recall(client, broken) == "Seen: recall"
        log = logged(client)
    assert "line 2 is not a transcript record" in log
    assert f"over the {transcript.READ_LIMIT} read back" in log


def test_the_file_stays_within_its_bound_and_keeps_every_turn(tmp_path: Path) -> None:
    kept = transcript.Kept({"DAVE_LSP_STATE_DIR": str(tmp_path)})
    messages: list[dict[str, Any]] = [{"role": "system", "content": "be brief"}]
    starts: list[int] = []
    big = "x" * 200_000  # under Read's bound, so kept whole while it fits
    for number in range(60):
        starts.append(len(messages))
        call = {"id": f"c{number}", "type": "function", "function": {"name": "Read"}}
        messages += [
            {"role": "user", "content": f"prompt {number}"},
            {"role": "assistant", "content": "", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": f"c{number}", "content": big},
            {"role": "assistant", "content": f"answer {number}"},
        ]
        kept.sync("conv", messages, starts, done=True)
    path = transcript.path_of(kept.root, "conv")
    assert path.stat().st_size <= transcript.MAX_BYTES
    found = transcript.load(kept.root, "conv").conversation
    assert isinstance(found, Conversation) and len(found.starts) == 60
    prompts = [found.messages[s]["content"] for s in found.starts]
    assert prompts == [f"prompt {n}" for n in range(60)]
    # The oldest turns lost their tool rounds, the newest kept theirs.
    assert found.messages[found.starts[0] + 1] == {"role": "assistant", "content": "answer 0"}
    assert found.messages[-2]["content"] == big
    assert not [p for p in os.listdir(kept.root) if p.startswith(".tmp-")]


async def test_the_users_claude_code_rules_hold_for_the_openai_agent(
    server: Server, fake_model: FakeModelServer, tmp_path: Path
) -> None:
    """The issue's scenario: deny Bash(rm:*), allow Bash(echo parity-ok)."""
    home = tmp_path / "home"
    (home / ".claude").mkdir(parents=True)
    rules = {"permissions": {"deny": ["Bash(rm:*)"], "allow": ["Bash(echo parity-ok)"]}}
    (home / ".claude" / "settings.json").write_text(json.dumps(rules))
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    env = {**KEY, "HOME": str(home)}
    session = new_session()
    # An unanswered question ends in 5 s: with the rules ignored, this fails fast.
    rules_on = options(fake_model, env=env, permissionMode="default", permissionTimeoutSeconds=5)
    async with server(**rules_on) as client:
        rm = json.dumps({"command": f"rm -f {victim}"})
        result, token = await client.query(session, f"tool Bash {rm}")
        assert not client.of_type(token, "permissionRequest")
        [resolved] = client.of_type(token, "permissionResolved")
        assert (resolved["decision"], resolved["by"], resolved["rule"]) == (
            "deny",
            "settings",
            "Bash(rm:*)",
        )
        assert victim.read_text() == "keep me\n"
        assert result["toolResults"][0]["isError"] and "Bash(rm:*)" in result["text"]
        echo = json.dumps({"command": "echo parity-ok"})
        result, token = await client.query(session, f"tool Bash {echo}")
        assert not client.of_type(token, "permissionRequest")
        [resolved] = client.of_type(token, "permissionResolved")
        assert (resolved["decision"], resolved["by"]) == ("allow", "settings")
        assert resolved["rule"] == "Bash(echo parity-ok)"
        assert result["text"] == "Tool said: parity-ok"


async def test_acp_loads_an_openai_session_after_a_restart(
    backend_env: dict[str, str], fake_model: FakeModelServer, tmp_path: Path
) -> None:
    """session/load replays the OpenAI agent's transcript: prompts, answers, the tool
    call and its result; its next prompt continues the conversation."""
    config = tmp_path / "acp.json"
    config.write_text(json.dumps({"openai": {"baseUrl": fake_model.url + "/v1"}}))
    flags = ("--backend=openai", "--model=fake-model", f"--config={config}")
    start = agent_starter({**backend_env, **KEY}, tmp_path)
    async with start(*flags) as client:
        session = await client.new_session(tmp_path)
        client.choose = allow("allow_once")
        await client.prompt(session, "hello acp")
        await client.prompt(session, f"write {tmp_path / 'k.txt'} kept")
    async with start(*flags) as client:
        params = {"sessionId": session, "cwd": str(tmp_path), "mcpServers": []}
        await client.request("session/load", params)
        replayed = client.updates[session]
        said = client.text(session, "user_message_chunk")
        assert said == f"hello acpwrite {tmp_path / 'k.txt'} kept"
        [write] = [u for u in replayed if u["sessionUpdate"] == "tool_call"]
        assert write["title"] == "Write"
        [done] = [u for u in replayed if u["sessionUpdate"] == "tool_call_update"]
        assert done["status"] == "completed" and done["toolCallId"] == write["toolCallId"]
        before = len(client.text(session))
        await client.prompt(session, "recall")
        recalled = client.text(session)[before:]
    assert recalled == f"Seen: hello acp | write {tmp_path / 'k.txt'} kept"


async def test_transcripts_older_than_cleanup_period_days_are_deleted(
    server: Server, fake_model: FakeModelServer, tmp_path: Path
) -> None:
    """As the CLI cleans up its own: the user's `cleanupPeriodDays` (default 30)."""
    home = tmp_path / "home"
    (home / ".claude").mkdir(parents=True)
    assert transcript.cleanup_days({"HOME": str(home)}) == 30
    (home / ".claude" / "settings.json").write_text(json.dumps({"cleanupPeriodDays": 20}))
    folder = tmp_path / "state" / transcript.FOLDER
    folder.mkdir(parents=True)
    old, recent = folder / "old.jsonl", folder / "recent.jsonl"
    for path, days in ((old, 25), (recent, 10)):
        path.write_text("")
        then = time.time() - days * 86400
        os.utime(path, (then, then))
    async with server(**options(fake_model, env={**KEY, "HOME": str(home)})) as client:
        await client.query(new_session(), "hello")
    assert not old.exists() and recent.exists()
