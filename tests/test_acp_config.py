"""ACP config options end to end: the model and the permission mode as `configOptions`,
set by `session/set_config_option` (and the mode by `session/set_mode`, kept for older
clients), and `config_option_update` when the mode changes otherwise. The real agent
over stdio, the real bundled Claude Code CLI, the shipped fake model; every message is
checked against the ACP schema types (tests/harness/acp.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.harness.acp import AcpError, Start, agent_starter, allow

MODES = ["default", "acceptEdits", "plan", "bypassPermissions"]


@pytest.fixture
def agent(backend_env: dict[str, str], tmp_path: Path) -> Start:
    return agent_starter(backend_env, tmp_path)  # every message must fit the schema


def by_id(options: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["id"]: o for o in options}


def current(options: list[dict[str, Any]]) -> dict[str, str]:
    return {o["id"]: o["currentValue"] for o in options}


async def test_the_mode_is_a_config_option_and_set_config_option_sets_it(
    agent: Start, tmp_path: Path
) -> None:
    async with agent() as client:
        created = await client.request("session/new", {"cwd": str(tmp_path), "mcpServers": []})
        session = created["sessionId"]
        options = by_id(created["configOptions"])
        assert set(options) == {"model", "mode"}
        assert options["model"]["category"] == "model"
        mode = options["mode"]
        assert mode["category"] == "mode" and mode["type"] == "select"
        assert mode["currentValue"] == "default"
        assert [o["value"] for o in mode["options"]] == MODES
        assert all(o["name"] for o in mode["options"])

        # acceptEdits through the config option: a Write is not asked about.
        changed = await client.request(
            "session/set_config_option",
            {"sessionId": session, "configId": "mode", "value": "acceptEdits"},
        )
        assert current(changed["configOptions"]) == {"model": "default", "mode": "acceptEdits"}
        await client.prompt(session, "write auto.txt unasked")
        assert (tmp_path / "auto.txt").read_text() == "unasked"
        assert client.permission_requests == []

        # Back to default: the next Write asks (and a reject keeps the file).
        await client.request(
            "session/set_config_option",
            {"sessionId": session, "configId": "mode", "value": "default"},
        )
        client.choose = allow("reject_once")
        await client.prompt(session, "write auto.txt asked")
        assert (tmp_path / "auto.txt").read_text() == "unasked"
        [asked] = client.permission_requests
        assert asked["toolCall"]["kind"] == "edit"

        # The model too; both answer every option as it is now.
        changed = await client.request(
            "session/set_config_option",
            {"sessionId": session, "configId": "model", "value": "haiku"},
        )
        assert current(changed["configOptions"]) == {"model": "haiku", "mode": "default"}
        with pytest.raises(AcpError) as bad_mode:
            await client.request(
                "session/set_config_option",
                {"sessionId": session, "configId": "mode", "value": "yolo"},
            )
        assert bad_mode.value.code == -32602 and "yolo" in str(bad_mode.value)
        with pytest.raises(AcpError) as bad_id:
            await client.request(
                "session/set_config_option",
                {"sessionId": session, "configId": "speed", "value": "fast"},
            )
        assert bad_id.value.code == -32602 and "speed" in str(bad_id.value)
        await client.request(
            "session/set_config_option",
            {"sessionId": session, "configId": "mode", "value": "acceptEdits"},
        )
        # A change the client asked for is answered, not announced.
        assert client.of_kind(session, "config_option_update") == []

    # After a restart, load and resume give the options as the session left them.
    async with agent() as client:
        params = {"sessionId": session, "cwd": str(tmp_path), "mcpServers": []}
        loaded = await client.request("session/load", params)
        assert current(loaded["configOptions"]) == {"model": "haiku", "mode": "acceptEdits"}
        assert loaded["modes"]["currentModeId"] == "acceptEdits"
        resumed = await client.request("session/resume", params)
        assert current(resumed["configOptions"]) == {"model": "haiku", "mode": "acceptEdits"}


async def test_an_approved_plan_announces_the_mode_option(agent: Start, tmp_path: Path) -> None:
    async with agent("--permission-mode=plan") as client:
        created = await client.request("session/new", {"cwd": str(tmp_path), "mcpServers": []})
        session = created["sessionId"]
        assert current(created["configOptions"])["mode"] == "plan"
        client.choose = allow("allow_always")
        await client.prompt(session, "plan # Tidy up | - rename x")
        [update] = client.of_kind(session, "config_option_update")
        assert current(update["configOptions"]) == {"model": "default", "mode": "acceptEdits"}
        # The older clients' update still comes.
        [mode] = client.of_kind(session, "current_mode_update")
        assert mode["currentModeId"] == "acceptEdits"


async def test_set_mode_still_works_and_announces_the_options(agent: Start, tmp_path: Path) -> None:
    async with agent() as client:
        session = await client.new_session(tmp_path)
        params = {"sessionId": session, "modeId": "acceptEdits"}
        assert await client.request("session/set_mode", params) == {}
        update = await client.wait_update(session, "config_option_update")
        assert current(update["configOptions"]) == {"model": "default", "mode": "acceptEdits"}
        await client.prompt(session, "write set-mode.txt unasked")
        assert (tmp_path / "set-mode.txt").read_text() == "unasked"
        assert client.permission_requests == []
