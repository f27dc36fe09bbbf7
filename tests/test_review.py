"""Reviewing changes (issue 14), through the real server, the real CLI and the fake
model: a file tool's permission request carries the exact proposal, an edited version
accepted lands exactly and the model is told, every turn lists its changes in every
mode, and dave/changes and dave/revertChanges review and undo them (never over the
user's work), after a restart too."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from pygls.exceptions import JsonRpcException

from dave_lsp.testing import FakeModelServer
from tests.conftest import Server
from tests.harness.lsp import DaveClient, new_session


def read_then_edit(path: Path, old: str, new: str) -> str:
    """One prompt: the fake model Reads the file, then Edits it (the CLI refuses an
    Edit of a file the conversation has not read)."""
    edit = {"file_path": str(path), "old_string": old, "new_string": new}
    return "steps " + json.dumps([["Read", {"file_path": str(path)}], ["Edit", edit]])


async def answer(
    client: DaveClient, session: str, prompt: str, **decision: Any
) -> tuple[dict[str, Any], dict[str, Any], str]:
    """Run a query whose one permission request gets `decision` (default allow):
    (the request, the result, the token)."""
    future, token = client.start_query(session, prompt)
    request = await client.wait_report(token, "permissionRequest")
    await client.request(
        "dave/permission",
        {"requestId": request["requestId"], "decision": "allow", **decision},
    )
    return request, await asyncio.wait_for(future, 60), token


async def test_an_edit_proposal_holds_the_exact_change_and_an_edited_version_lands(
    server: Server, tmp_path: Path, fake_model: FakeModelServer
) -> None:
    source = tmp_path / "calc.py"
    source.write_text("def add(a, b):\n    return a + b\n")
    session = new_session()
    async with server() as client:
        request, result, token = await answer(
            client,
            session,
            read_then_edit(source, "return a + b", "return a + b + 0"),
            editedContent="def add(a, b):\n    # checked by hand\n    return a + b\n",
        )
        proposal = request["proposal"]
        assert proposal["path"] == str(source)
        assert proposal["exists"] is True
        assert proposal["original"] == "def add(a, b):\n    return a + b\n"
        assert proposal["proposed"] == "def add(a, b):\n    return a + b + 0\n"
        assert "-    return a + b\n+    return a + b + 0\n" in proposal["diff"]
        assert proposal["diff"].startswith("--- calc.py\n+++ calc.py\n")
        assert client.of_type(token, "permissionResolved")[-1]["edited"] is True
    # The file ends exactly as the user accepted it ...
    assert source.read_text() == "def add(a, b):\n    # checked by hand\n    return a + b\n"
    # ... and the model was told in that turn, with what the user changed.
    told = fake_model.requests_containing("The user edited your proposed change to calc.py")
    assert told, "the model's next request did not say the user changed the proposal"
    assert "+    # checked by hand" in json.dumps(told[-1].body)
    assert result["changes"] == [
        {"path": str(source), "status": "modified", "added": 1, "removed": 0}
    ]


async def test_a_new_file_proposal_and_a_deny_that_writes_nothing(
    server: Server, tmp_path: Path
) -> None:
    session = new_session()
    async with server() as client:
        future, token = client.start_query(session, "write fresh.txt hello there")
        request = await client.wait_report(token, "permissionRequest")
        assert request["proposal"] == {
            "path": str(tmp_path / "fresh.txt"),
            "exists": False,
            "original": "",
            "proposed": "hello there",
            "diff": "--- /dev/null\n+++ fresh.txt\n@@ -0,0 +1 @@\n+hello there\n"
            "\\ No newline at end of file\n",
        }
        await client.request(
            "dave/permission", {"requestId": request["requestId"], "decision": "deny"}
        )
        result = await asyncio.wait_for(future, 60)
    assert not (tmp_path / "fresh.txt").exists()
    assert result["changes"] == []


async def test_accept_edits_changes_are_listed_and_reviewed(server: Server, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("one\ntwo\n")
    session = new_session()
    async with server(permissionMode="acceptEdits") as client:
        result, token = await client.query(session, "write made.txt made it")
        assert not client.of_type(token, "permissionRequest")
        assert result["changes"] == [
            {"path": str(tmp_path / "made.txt"), "status": "created", "added": 1, "removed": 0}
        ]
        result, _ = await client.query(session, read_then_edit(notes, "two", "TWO"))
        assert result["changes"] == [
            {"path": str(notes), "status": "modified", "added": 1, "removed": 1}
        ]
        review = await client.request("dave/changes", {"sessionId": session})
        assert review["turn"] == 2
        [file] = review["files"]
        assert (file["before"], file["after"]) == ("one\ntwo\n", "one\nTWO\n")
        assert (file["status"], file["added"], file["removed"]) == ("modified", 1, 1)
        assert "-two\n+TWO\n" in file["diff"]
        first = await client.request("dave/changes", {"sessionId": session, "turn": 1})
        assert [f["status"] for f in first["files"]] == ["created"]


async def test_revert_restores_a_turn_after_a_restart_and_never_overwrites_the_user(
    server: Server, tmp_path: Path
) -> None:
    kept, mine = tmp_path / "kept.txt", tmp_path / "mine.txt"
    kept.write_text("original kept\n")
    mine.write_text("original mine\n")
    session = new_session()
    async with server(permissionMode="acceptEdits") as client:
        steps = [
            ["Read", {"file_path": str(kept)}],
            ["Edit", {"file_path": str(kept), "old_string": "original", "new_string": "model"}],
            ["Read", {"file_path": str(mine)}],
            ["Edit", {"file_path": str(mine), "old_string": "original", "new_string": "model"}],
            ["Write", {"file_path": str(tmp_path / "new.txt"), "content": "new\n"}],
        ]
        result, _ = await client.query(session, "steps " + json.dumps(steps))
        assert [c["status"] for c in result["changes"]] == ["modified", "modified", "created"]
    # The user changes one of the files after the turn.
    mine.write_text("the user's own words\n")
    async with server() as client:  # a new server process: the snapshots were kept
        undone = await client.request("dave/revertChanges", {"sessionId": session})
        assert sorted(undone["reverted"]) == sorted([str(kept), str(tmp_path / "new.txt")])
        [conflict] = undone["conflicts"]
        assert conflict["path"] == str(mine)
        assert "mine.txt has changed since turn 1" in conflict["message"]
        again = await client.request("dave/revertChanges", {"sessionId": session})
        assert [c["path"] for c in again["conflicts"]] == [str(mine)]
        with pytest.raises(JsonRpcException) as error:
            await client.request("dave/changes", {"sessionId": session, "turn": 7})
        assert error.value.code == -32602
        assert "no changes kept for turn 7; turns with changes: 1" in str(error.value)
        with pytest.raises(JsonRpcException) as error:
            await client.request("dave/revertChanges", {"sessionId": "nobody"})
        assert error.value.code == -32602 and "no session nobody" in str(error.value)
    assert kept.read_text() == "original kept\n"
    assert mine.read_text() == "the user's own words\n"
    assert not (tmp_path / "new.txt").exists()


async def test_one_file_or_one_hunk_can_be_reverted(server: Server, tmp_path: Path) -> None:
    lines = [f"line {i}\n" for i in range(1, 21)]
    long_file, other = tmp_path / "long.txt", tmp_path / "other.txt"
    long_file.write_text("".join(lines))
    other.write_text("other\n")
    changed = list(lines)
    changed[1], changed[17] = "LINE 2\n", "LINE 18\n"
    session = new_session()
    async with server(permissionMode="acceptEdits") as client:
        steps = [
            ["Write", {"file_path": str(long_file), "content": "".join(changed)}],
            ["Write", {"file_path": str(other), "content": "changed\n"}],
        ]
        await client.query(session, "steps " + json.dumps(steps))
        review = await client.request("dave/changes", {"sessionId": session})
        assert [f["diff"].count("\n@@ -") for f in review["files"]] == [2, 1]
        undone = await client.request(
            "dave/revertChanges",
            {"sessionId": session, "hunks": [{"path": "long.txt", "index": 1}]},
        )
        assert undone == {"reverted": [str(long_file)], "conflicts": []}
        after_hunk = list(changed)
        after_hunk[17] = "line 18\n"
        assert long_file.read_text() == "".join(after_hunk)
        assert other.read_text() == "changed\n"
        undone = await client.request(
            "dave/revertChanges", {"sessionId": session, "paths": ["other.txt"]}
        )
        assert undone == {"reverted": [str(other)], "conflicts": []}
    assert other.read_text() == "other\n"


async def test_an_edit_through_a_linked_folder_is_reviewed_as_its_target(
    server: Server, tmp_path: Path
) -> None:
    """The Claude backend: the CLI refuses a Write or Edit whose path is itself a link
    (it tells the model to write the target), but writes through a linked folder on the
    way; the question, the proposal and the change record then name the target."""
    project, outside = tmp_path / "project", tmp_path / "outside"
    project.mkdir()
    outside.mkdir()
    target = outside / "notes.txt"
    target.write_text("one\n")
    (project / "shared").symlink_to("../outside")
    via_link = project / "shared" / "notes.txt"
    session = new_session()
    async with server(cwd=str(project)) as client:
        future, token = client.start_query(session, read_then_edit(via_link, "one", "model"))
        # The Read asks first: the file is outside the folder.
        read = await client.wait_report(token, "permissionRequest")
        assert read["message"] == "Allow Read shared/notes.txt → ../outside/notes.txt?"
        await client.request(
            "dave/permission", {"requestId": read["requestId"], "decision": "allow"}
        )
        while len(client.of_type(token, "permissionRequest")) < 2:
            await asyncio.wait_for(client.report_arrived.wait(), 60)
            client.report_arrived.clear()
        request = client.of_type(token, "permissionRequest")[1]
        await client.request(
            "dave/permission",
            {"requestId": request["requestId"], "decision": "allow", "editedContent": "mine\n"},
        )
        result = await asyncio.wait_for(future, 60)
        assert request["message"] == "Allow Edit shared/notes.txt → ../outside/notes.txt?"
        assert request["proposal"]["path"] == str(target)
        assert target.read_text() == "mine\n"
        assert (project / "shared").is_symlink()
        assert result["changes"] == [
            {"path": str(target), "status": "modified", "added": 1, "removed": 1}
        ]
        undone = await client.request(
            "dave/revertChanges", {"sessionId": session, "paths": ["shared/notes.txt"]}
        )
        assert undone == {"reverted": [str(target)], "conflicts": []}
    assert target.read_text() == "one\n"
