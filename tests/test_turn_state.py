"""The turn's state (issue 16), through the real server, the real CLI and the fake
model: the model's questions and their answers, a plan approved into another mode or
sent back with feedback, slash commands, images, the context meter and a session's
cost, and a subagent's tool uses nested under its Agent tool use."""

from __future__ import annotations

import asyncio
import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest
from pygls.exceptions import JsonRpcException

from dave_lsp.testing import FakeModelServer, samples
from tests.conftest import Server
from tests.harness.lsp import DaveClient, new_session

PNG = base64.b64encode(samples.PNG).decode()
QUESTION = samples.QUESTION


async def answered(
    client: DaveClient, session: str, prompt: str, **answer: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the permission request, the result) of a query whose one request gets `answer`."""
    future, token = client.start_query(session, prompt)
    request = await client.wait_report(token, "permissionRequest")
    await client.request("dave/permission", {"requestId": request["requestId"], **answer})
    return request, await asyncio.wait_for(future, 60)


async def test_the_model_asks_and_the_user_answers(server: Server) -> None:
    ask = "tool AskUserQuestion " + json.dumps({"questions": [QUESTION]})
    session = new_session()
    async with server() as client:
        request, result = await answered(
            client, session, ask, decision="allow", answers={"Which color?": "Blue"}
        )
        assert request["toolName"] == "AskUserQuestion"
        assert request["questions"] == [QUESTION]
        assert "allowAlways" not in request  # a question is no standing rule
        assert '"Which color?"="Blue"' in result["text"]
        multi = {**QUESTION, "multiSelect": True}
        ask = "tool AskUserQuestion " + json.dumps({"questions": [multi]})
        _, result = await answered(
            client, session, ask, decision="allow", answers={"Which color?": ["Blue", "Red"]}
        )
        assert '"Which color?"="Blue, Red"' in result["text"]
        _, result = await answered(client, session, ask, decision="deny")
        assert "The user declined to answer the questions." in result["text"]
        future, token = client.start_query(session, ask)
        request = await client.wait_report(token, "permissionRequest")
        with pytest.raises(JsonRpcException) as error:
            await client.request(
                "dave/permission",
                {"requestId": request["requestId"], "decision": "allow", "answers": {"q": 3}},
            )
        assert "answers.q: expected a string or an array of strings" in str(error.value)
        await client.request(
            "dave/permission", {"requestId": request["requestId"], "decision": "deny"}
        )
        await asyncio.wait_for(future, 60)


async def test_a_plan_is_shown_approved_into_accept_edits_or_sent_back(
    server: Server, tmp_path: Path
) -> None:
    session = new_session()
    async with server(permissionMode="plan") as client:
        request, result = await answered(
            client, session, "plan # Tidy up | - rename x", decision="deny", reason="add tests"
        )
        assert request["toolName"] == "ExitPlanMode"
        assert request["plan"] == "# Tidy up\n- rename x"
        assert "add tests" in result["text"]  # the model keeps planning with the feedback
        request, _ = await answered(
            client,
            session,
            "plan # Tidy up | - rename x | - add tests",
            decision="allow",
            permissionMode="acceptEdits",
        )
        assert request["plan"] == "# Tidy up\n- rename x\n- add tests"
        listed = await client.request("dave/listSessions", {})
        [mine] = [s for s in listed["sessions"] if s["sessionId"] == session]
        assert mine["permissionMode"] == "acceptEdits"
        # The approved mode holds: a file edit runs without asking.
        result, token = await client.query(session, "write after-plan.txt done")
        assert not client.of_type(token, "permissionRequest")
    assert (tmp_path / "after-plan.txt").read_text() == "done"


async def test_slash_commands_are_listed_and_compact_reports_compacting(server: Server) -> None:
    session = new_session()
    async with server() as client:
        anywhere = (await client.request("dave/listCommands", {}))["commands"]
        names = [c["name"] for c in anywhere]
        assert "compact" in names and names == sorted(names)
        cli = [c for c in anywhere if c.get("source") != "dave-lsp"]
        assert all(set(c) == {"name", "description", "argumentHint"} for c in cli)
        own = {c["name"]: c["method"] for c in anywhere if c.get("source") == "dave-lsp"}
        assert own == {"fork": "dave/fork", "rewind": "dave/rewind"}
        await client.query(session, "hello before compacting")
        mine = (await client.request("dave/listCommands", {"sessionId": session}))["commands"]
        assert "compact" in [c["name"] for c in mine]
        _, token = await client.query(session, "/compact")
        states = [r["state"] for r in client.of_type(token, "status")]
        assert "compacting" in states


async def test_images_reach_the_model_and_bad_ones_are_refused(server: Server) -> None:
    session = new_session()
    image = {"type": "image", "mediaType": "image/png", "data": PNG}
    async with server() as client:
        result, _ = await client.query(session, "images", attachments=[image])
        # The CLI may re-encode an image; the model gets one PNG, of some bytes.
        assert re.fullmatch(r"Images: image/png \(\d+ bytes\)", result["text"]), result["text"]
        for bad, says in (
            ({**image, "mediaType": "image/tiff"}, "attachments[0].mediaType: must be one of"),
            ({**image, "data": "not base64!"}, "attachments[0].data: not base64"),
            ({**image, "type": "file"}, "attachments[0].type: must be one of image"),
        ):
            with pytest.raises(JsonRpcException) as error:
                await client.query(session, "images", attachments=[bad])
            assert error.value.code == -32602 and says in str(error.value)
            # The session layer's message, with this front end's method before it.
            assert error.value.message.startswith("dave/query: invalid params: attachments[0]")


async def test_the_context_meter_and_the_sessions_cost(server: Server) -> None:
    session = new_session()
    async with server() as client:
        first, _ = await client.query(session, "hello meter")
        assert first["usage"]["contextTokens"] > 0
        second, _ = await client.query(session, "hello again")
        assert second["usage"]["contextTokens"] > first["usage"]["contextTokens"]
        assert second["usage"]["contextWindow"] > second["usage"]["contextTokens"]
        listed = await client.request("dave/listSessions", {})
        [mine] = [s for s in listed["sessions"] if s["sessionId"] == session]
        assert mine["costUsd"] == pytest.approx(first["costUsd"] + second["costUsd"])


async def test_a_subagents_tool_uses_are_nested_under_its_agent(
    server: Server, tmp_path: Path, fake_model: FakeModelServer
) -> None:
    (tmp_path / "inner.txt").write_text("from the subagent\n")
    inner = "tool Read " + json.dumps({"file_path": str(tmp_path / "inner.txt")})
    agent = {
        "description": "look",
        "prompt": inner,
        "subagent_type": "general-purpose",
        "run_in_background": False,
    }
    session = new_session()
    async with server() as client:
        _, token = await client.query(session, "tool Agent " + json.dumps(agent))
    uses = client.of_type(token, "toolUse")
    [outer] = [u for u in uses if u["toolName"] == "Agent"]
    [read] = [u for u in uses if u["toolName"] == "Read"]
    assert "parentToolUseId" not in outer
    assert read["parentToolUseId"] == outer["toolUseId"]
    [read_result] = [r for r in client.of_type(token, "toolResult") if r["toolName"] == "Read"]
    assert read_result["parentToolUseId"] == outer["toolUseId"]
    assert read_result["summary"] == "inner.txt (1 line)"
