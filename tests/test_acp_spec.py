"""`dave-lsp acp` against the spec's smaller additions (issue 26), end to end as the other
ACP tests: the real agent over stdio, the real bundled Claude Code CLI, the shipped fake
model, every message checked against the ACP schema types (tests/harness/acp.py).

- a prompt's text blocks reach the model apart (codecompanion resends a stopped prompt
  as its own block before the new one);
- permission option ids are their kinds (avante's "Always allow" counts only then);
- `authMethods` and what a missing key says;
- `sessionCapabilities` names what is implemented, `session/delete` among them;
- `messageId` on message and thought chunks;
- `session_info_update` with the session's title.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from acp import schema as acp

from dave_lsp.testing.fake_server import FakeModelServer
from tests.harness.acp import AcpError, Start, agent_starter, allow, strict

WHERE = "set ANTHROPIC_API_KEY in the agent's env in your client's config"


@pytest.fixture
def agent(backend_env: dict[str, str], tmp_path: Path) -> Start:
    """`agent(*flags, key=True)`: an initialized AcpClient. `key=False` leaves the API
    key out of the agent's environment; it never inherits the tests' ANTHROPIC_API_KEY."""
    process_env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    keyless = {k: v for k, v in backend_env.items() if "KEY" not in k}
    starts = {
        True: agent_starter(backend_env, tmp_path, process_env),
        False: agent_starter(keyless, tmp_path, process_env),
    }
    return lambda *flags, key=True: starts[key](*flags)


def by_kind(kind: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Answer with the option of that kind, as avante and most clients do."""
    return lambda p: allow(next(o["optionId"] for o in p["options"] if o["kind"] == kind))(p)


async def test_a_prompts_text_blocks_reach_the_model_apart(
    agent: Start, tmp_path: Path, fake_model: FakeModelServer
) -> None:
    # codecompanion: the stopped prompt, then the new one, each its own block.
    async with agent() as client:
        session = await client.new_session(tmp_path)
        blocks = [
            {"type": "text", "text": "slow 40 200 stopped-before-blocks"},
            {"type": "text", "text": "long 3"},
        ]
        result = await client.request("session/prompt", {"sessionId": session, "prompt": blocks})
        assert result == {"stopReason": "end_turn"}
        # The model answered the new prompt, not the stopped one (one line of both
        # would have run `slow 40 200 ... long 3`).
        assert client.text(session) == "w0 w1 w2 "
        prompts = [r.prompt for r in fake_model.requests_containing("stopped-before-blocks")]
        assert prompts and prompts[0] == "slow 40 200 stopped-before-blocks\n\nlong 3"


async def test_permission_option_ids_are_their_kinds(agent: Start, tmp_path: Path) -> None:
    async with agent() as client:
        session = await client.new_session(tmp_path)
        client.choose = by_kind("allow_always")  # avante's "Always allow"
        await client.prompt(session, "write first.txt always")
        assert (tmp_path / "first.txt").read_text() == "always"
        [asked] = client.permission_requests
        assert [(o["optionId"], o["kind"]) for o in asked["options"]] == [
            ("allow_once", "allow_once"),
            ("allow_always", "allow_always"),
            ("reject_once", "reject_once"),
        ]
        # Allowed always: the rule covers the next edit in the folder.
        await client.prompt(session, "write second.txt by rule")
        assert (tmp_path / "second.txt").read_text() == "by rule"
        assert len(client.permission_requests) == 1


async def test_plan_options_are_named_by_kind(agent: Start, tmp_path: Path) -> None:
    async with agent("--permission-mode=plan") as client:
        session = await client.new_session(tmp_path)
        client.choose = by_kind("allow_always")
        await client.prompt(session, "plan # Spec | - one step")
        [asked] = client.permission_requests
        assert [(o["optionId"], o["kind"]) for o in asked["options"]] == [
            ("allow_always", "allow_always"),
            ("allow_once", "allow_once"),
            ("reject_once", "reject_once"),
        ]
        [mode] = client.of_kind(session, "current_mode_update")
        assert mode["currentModeId"] == "acceptEdits"


async def test_auth_methods_and_a_missing_key_says_where_to_set_it(agent: Start) -> None:
    async with agent() as client:
        methods = (await client.initialize())["authMethods"]
        assert [m["id"] for m in methods] == ["anthropic-api-key", "claude-login"]
        assert methods[0]["description"] == "S" + WHERE[1:]
        result = await client.request("authenticate", {"methodId": "anthropic-api-key"})
        strict(acp.AuthenticateResponse, result)
        with pytest.raises(AcpError) as unknown:
            await client.request("authenticate", {"methodId": "password"})
        assert unknown.value.code == -32602
    async with agent(key=False) as client:
        with pytest.raises(AcpError) as missing:
            await client.request("authenticate", {"methodId": "anthropic-api-key"})
        assert missing.value.code == -32000 and WHERE in str(missing.value)
        assert await client.request("authenticate", {"methodId": "claude-login"}) == {}


async def test_a_turn_refused_for_its_key_says_where_to_set_it(
    agent: Start, tmp_path: Path
) -> None:
    async with agent() as client:
        session = await client.new_session(tmp_path)
        with pytest.raises(AcpError) as refused:
            await client.prompt(session, "error 401 invalid x-api-key")
        message = str(refused.value)
        assert refused.value.code == -32000  # auth_required
        assert message.endswith(f"; {WHERE}") and "\n" not in message
        assert "backend's environment" not in message


async def test_session_capabilities_name_what_is_implemented(agent: Start, tmp_path: Path) -> None:
    async with agent() as client:
        caps = (await client.initialize())["agentCapabilities"]["sessionCapabilities"]
        assert caps == {
            "list": {},
            "resume": {},
            "close": {},
            "delete": {},
            "additionalDirectories": {},
            "fork": {},
        }
        session = await client.new_session(tmp_path)
        await client.prompt(session, "hello")
        listed = (await client.request("session/list", {}))["sessions"]
        assert [s["sessionId"] for s in listed] == [session]
        assert await client.request("session/delete", {"sessionId": session}) == {}
        assert (await client.request("session/list", {}))["sessions"] == []


async def test_chunks_carry_one_message_id_per_model_message(agent: Start, tmp_path: Path) -> None:
    async with agent() as client:
        session = await client.new_session(tmp_path)
        await client.prompt(session, "think about ducks")
        first = client.updates[session][:]
        thought = {u["messageId"] for u in first if u["sessionUpdate"] == "agent_thought_chunk"}
        said = {u["messageId"] for u in first if u["sessionUpdate"] == "agent_message_chunk"}
        assert len(thought) == 1 and len(said) == 1 and thought != said
        await client.prompt(session, "long 3000")
        chunks = [u for u in client.of_kind(session, "agent_message_chunk") if u not in first]
        assert len(chunks) > 1  # coalesced, still several
        ids = {u["messageId"] for u in chunks}
        assert len(ids) == 1 and ids.isdisjoint(said | thought)
        # After a tool use, the model's next message is a new one.
        before = len(client.updates[session])
        client.choose = allow("allow_once")
        await client.prompt(session, "write tooled.txt x")
        after = [u for u in client.updates[session][before:] if "messageId" in u]
        assert after and {u["messageId"] for u in after}.isdisjoint(ids | said | thought)


async def test_the_first_prompt_titles_the_session(agent: Start, tmp_path: Path) -> None:
    async with agent() as client:
        session = await client.new_session(tmp_path)
        await client.prompt(session, "rename the ducks\nand the geese")
        [info] = client.of_kind(session, "session_info_update")
        assert info["title"] == "rename the ducks"
        assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d", info["updatedAt"])
        listed = (await client.request("session/list", {}))["sessions"]
        assert listed[0]["title"] == "rename the ducks"
        await client.prompt(session, "and then the swans")
        assert len(client.of_kind(session, "session_info_update")) == 1  # unchanged
