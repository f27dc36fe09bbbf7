"""The editor as the model's eyes and hands (issue 15), through the real server, the
real CLI and the fake model: editor tools become server-to-client requests the client
answers, their answers reach the model, nothing is asked, and a client without them
gives the model none; the editor's context and mentions reach the model."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcException

from dave_lsp.testing import FakeModelServer
from tests.conftest import Server
from tests.harness.lsp import new_session

GREET = 'def greet(name):\n    return f"hi {name}"\n\n\nprint(greet("a"))\n'


def offering(*tools: str) -> lsp.ClientCapabilities:
    return lsp.ClientCapabilities(experimental={"dave": {"editorTools": list(tools)}})


def location(uri: str, line: int, start: int, end: int) -> dict[str, Any]:
    span = {"start": {"line": line, "character": start}, "end": {"line": line, "character": end}}
    return {"uri": uri, "range": span}


def call(tool: str, **args: Any) -> str:
    return f"tool mcp__editor__{tool} {json.dumps(args)}"


async def test_editor_tools_reach_the_editor_and_their_answers_reach_the_model(
    server: Server, tmp_path: Path
) -> None:
    source = tmp_path / "greet.py"
    source.write_text(GREET)
    uri = source.as_uri()
    asked: list[tuple[str, Any]] = []

    def diagnostics(params: Any) -> Any:
        asked.append(("diagnostics", params))
        return {
            "files": [
                {
                    "uri": uri,
                    "diagnostics": [
                        {
                            "range": {
                                "start": {"line": 4, "character": 0},
                                "end": {"line": 4, "character": 5},
                            },
                            "severity": 2,
                            "source": "pyflakes",
                            "code": "W1",
                            "message": "print in library code",
                        }
                    ],
                }
            ]
        }

    def references(params: Any) -> Any:
        asked.append(("references", params))
        return [
            {
                "uri": uri,
                "range": {"start": {"line": 0, "character": 4}, "end": {"line": 0, "character": 9}},
            },
            {
                "uri": uri,
                "range": {
                    "start": {"line": 4, "character": 6},
                    "end": {"line": 4, "character": 11},
                },
            },
        ]

    answers = {"dave/editor/diagnostics": diagnostics, "dave/editor/references": references}
    session = new_session()
    async with server(
        capabilities=offering("diagnostics", "references"), answers=answers
    ) as client:
        result, token = await client.query(session, call("getDiagnostics", path="greet.py"))
        assert result["text"] == (
            "Tool said: greet.py:5:1: warning [pyflakes W1]: print in library code\n"
            '    print(greet("a"))'
        )
        result, token = await client.query(
            session, call("findReferences", path="greet.py", symbol="greet", line=5)
        )
        assert result["text"] == (
            'Tool said: greet.py:1:5: def greet(name):\ngreet.py:5:7: print(greet("a"))'
        )
        assert not client.of_type(token, "permissionRequest")
        assert client.of_type(token, "permissionResolved")[0]["by"] == "mode"
        [tool_result] = client.of_type(token, "toolResult")
        assert tool_result["summary"] == "greet (2 results)"
    assert asked[0] == ("diagnostics", {"uri": uri})
    kind, params = asked[1]
    assert kind == "references"
    assert params["textDocument"] == {"uri": uri}
    assert params["position"] == {"line": 4, "character": 6}  # greet on line 5, 0-based


async def test_an_editor_that_fails_gives_the_model_a_tool_error_and_the_turn_goes_on(
    server: Server, tmp_path: Path
) -> None:
    (tmp_path / "greet.py").write_text(GREET)

    def broken(_params: Any) -> Any:
        raise RuntimeError("no language server for this file")

    session = new_session()
    async with server(
        capabilities=offering("hover"), answers={"dave/editor/hover": broken}
    ) as client:
        result, _ = await client.query(session, call("hover", path="greet.py", symbol="greet"))
        assert result["text"].startswith("Tool said: (error) the editor could not answer")
        assert "no language server for this file" in result["text"]
        result, _ = await client.query(session, call("hover", path="greet.py", symbol="nope"))
        assert "'nope' does not appear anywhere in" in result["text"]
        result, _ = await client.query(session, "hello after")
        assert result["text"] == "You said: hello after"


async def test_a_client_without_editor_tools_gives_the_model_none(
    server: Server, fake_model: FakeModelServer
) -> None:
    session = new_session()
    async with server() as client:
        await client.query(session, "hello no-tools-marker")
    [request] = fake_model.requests_containing("hello no-tools-marker")
    assert "mcp__editor__" not in json.dumps(request.body)


async def test_a_client_with_editor_tools_has_them_named_to_the_model(
    server: Server, fake_model: FakeModelServer
) -> None:
    session = new_session()
    async with server(capabilities=offering("references", "symbols", "bogus")) as client:
        await client.query(session, "hello tools-marker")
    [request] = fake_model.requests_containing("hello tools-marker")
    body = json.dumps(request.body)
    # Deferred: named in the system prompt, loaded through ToolSearch, yet callable.
    assert "mcp__editor__findReferences" in body
    assert "mcp__editor__searchSymbols" in body
    assert "mcp__editor__getDiagnostics" not in body


async def test_context_and_mentions_reach_the_model(
    server: Server, tmp_path: Path, fake_model: FakeModelServer
) -> None:
    (tmp_path / "greet.py").write_text(GREET)
    (tmp_path / "notes.md").write_text("one\ntwo\nthree\nfour\n")
    context = {
        "activeFile": {
            "path": str(tmp_path / "greet.py"),
            "languageId": "python",
            "selection": {"start": {"line": 0, "character": 0}, "end": {"line": 2, "character": 0}},
        },
        "mentions": [{"path": "notes.md", "startLine": 2, "endLine": 3}],
    }
    session = new_session()
    async with server() as client:
        result, _ = await client.query(session, "explain ctx-marker", context=context)
        assert result["text"] == "You said: explain ctx-marker"  # the prompt stays last
        listed = await client.request("dave/listSessions", {})
        [mine] = [s for s in listed["sessions"] if s["sessionId"] == session]
        assert mine["title"] == "explain ctx-marker"
        with pytest.raises(JsonRpcException) as error:
            await client.query(session, "again", context={"mentions": [{"path": "missing.txt"}]})
        assert error.value.code == -32602
        assert "context.mentions[0].path: missing.txt does not exist" in str(error.value)
    [request] = fake_model.requests_containing("explain ctx-marker")
    sent = json.dumps(request.body)
    assert (
        "The user's active file in the editor is greet.py (python), with lines 1-2 selected" in sent
    )
    assert 'def greet(name):\\n    return f\\"hi {name}\\"' in sent
    assert "The user mentioned notes.md, lines 2-3" in sent
    assert "2  two\\n3  three" in sent
    assert "4  four" not in sent  # only the mentioned lines


async def test_a_slow_editor_is_a_tool_error_not_a_hung_turn(
    server: Server, tmp_path: Path
) -> None:
    (tmp_path / "greet.py").write_text(GREET)
    release = asyncio.Event()

    async def never(_params: Any) -> Any:
        await release.wait()
        return None

    session = new_session()
    async with server(
        capabilities=offering("selection"), answers={"dave/editor/selection": never}
    ) as client:
        result, _ = await asyncio.wait_for(client.query(session, call("getCurrentSelection")), 40)
        release.set()
    assert "did not answer dave/editor/selection within 10 s" in result["text"]


OUTSIDE = "outside the session's folder: read it with Read (asks)"


async def test_editor_tools_name_files_outside_the_folder_without_their_text(
    server: Server, tmp_path: Path, fake_model: FakeModelServer
) -> None:
    """An editor's answer pointing outside the session's folder (another project, or a
    link in the folder to one) names the place; its text reaches the model only
    through Read, which asks. In plan mode too."""
    secret = "sk-outside-0451"
    other = tmp_path.parent / f"{tmp_path.name}-other_project"
    other.mkdir()
    settings = other / "settings.py"
    settings.write_text(f'DEBUG = True\nSECRET_KEY = "{secret}"\n')
    (tmp_path / "greet.py").write_text(GREET)
    (tmp_path / "linked.py").symlink_to(settings)
    inside, outside, linked = (
        (tmp_path / "greet.py").as_uri(),
        settings.as_uri(),
        (tmp_path / "linked.py").as_uri(),
    )
    span = {"start": {"line": 1, "character": 0}, "end": {"line": 1, "character": 10}}
    answers = {
        "dave/editor/references": lambda _p: [
            location(inside, 0, 4, 9),
            location(outside, 1, 0, 10),
            location(linked, 1, 0, 10),
        ],
        "dave/editor/definition": lambda _p: location(outside, 1, 0, 10),
        "dave/editor/symbols": lambda _p: [
            {"name": "SECRET_KEY", "kind": 14, "location": location(outside, 1, 0, 10)}
        ],
        "dave/editor/diagnostics": lambda _p: {
            "files": [
                {
                    "uri": outside,
                    "diagnostics": [
                        {
                            "range": span,
                            "severity": 2,
                            "source": "bandit",
                            "code": "B105",
                            "message": f"Possible hardcoded password: '{secret}'",
                        }
                    ],
                }
            ]
        },
        "dave/editor/selection": lambda _p: {
            "uri": outside,
            "range": span,
            "text": f'SECRET_KEY = "{secret}"',
        },
        "dave/editor/hover": lambda _p: {"contents": "SECRET_KEY: str"},
        "dave/editor/openEditors": lambda _p: {
            "editors": [{"uri": outside, "isActive": True}, {"uri": inside}]
        },
    }
    tools = [name.removeprefix("dave/editor/") for name in answers]
    async with server(capabilities=offering(*tools), answers=answers) as client:
        for mode in ("default", "plan"):
            session = new_session()
            await client.request("dave/newSession", {"sessionId": session, "permissionMode": mode})

            async def said(tool: str, **args: Any) -> str:
                result, _ = await client.query(session, call(tool, **args))  # noqa: B023
                return str(result["text"]).removeprefix("Tool said: ")

            assert await said("findReferences", path="greet.py", symbol="greet", line=1) == (
                f"greet.py:1:5: def greet(name):\n{settings}:2:1: {OUTSIDE}\n"
                f"linked.py:2:1: {OUTSIDE}"
            )
            # From a file in the folder the editor's answer leads outside.
            (tmp_path / "uses.py").write_text("from settings import SECRET_KEY\n")
            assert await said("findDefinition", path="uses.py", symbol="SECRET_KEY") == (
                f"{settings}:2:1: {OUTSIDE}"
            )
            assert await said("searchSymbols", query="SECRET") == (
                f"constant SECRET_KEY at {settings}:2:1: {OUTSIDE}"
            )
            assert await said("getDiagnostics") == (
                f"{settings}:2:1: warning [bandit B105]: {OUTSIDE}"
            )
            assert await said("getCurrentSelection") == f"{settings}, line 2: {OUTSIDE}"
            assert await said("getOpenEditors") == (
                f"{settings} [active, outside the session's folder]\ngreet.py"
            )
            # A path outside, or a link to outside, is not looked into at all.
            for path in (str(settings), "linked.py", f"../{other.name}/settings.py"):
                for tool in ("findDefinition", "hover"):
                    refused = await said(tool, path=path, symbol="SECRET_KEY")
                    # (The CLI adds a hint about the tool's schema after an error.)
                    assert refused.startswith(f"(error) {path}: {OUTSIDE}"), refused
                refused = await said("getDiagnostics", path=path)
                assert refused.startswith(f"(error) {path}: {OUTSIDE}"), refused
    leaked = [r for r in fake_model.requests if secret in json.dumps(r.body)]
    assert not leaked, "the outside file's text reached the model"
