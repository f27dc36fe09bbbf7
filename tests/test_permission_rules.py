"""Allow-always rules (issue 12), through the real server, the real CLI and the fake
model: a rule covers what the user saw (one command, the session's folder, one input),
says so when it allows something, can be listed and removed, and a bare tool-name rule
from an earlier version is dropped."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pygls.exceptions import JsonRpcException

from dave_lsp.permissions import rules
from dave_lsp.session.store import SessionStore
from dave_lsp.testing import FakeModelServer
from tests.conftest import Server
from tests.harness.lsp import DaveClient, new_session
from tests.test_openai_agent import openai_options

CHAT = [sys.executable, "-m", "dave_lsp", "chat", "--demo"]


def real(path: Path) -> str:
    """The path as rules name it: symlinks resolved (tmp folders may sit behind one)."""
    return os.path.realpath(path)


def bash(command: str) -> str:
    return "tool Bash " + json.dumps({"command": command})


async def ask_and_answer(
    client: DaveClient, session: str, prompt: str, decision: str
) -> tuple[dict[str, Any], dict[str, Any], str]:
    """Run a query whose one permission request gets `decision`: (request, result, token)."""
    future, token = client.start_query(session, prompt)
    request = await client.wait_report(token, "permissionRequest")
    await client.request(
        "dave/permission", {"requestId": request["requestId"], "decision": decision}
    )
    result = await asyncio.wait_for(future, 60)
    return request, result, token


async def test_allow_always_on_one_command_covers_that_command_only(
    server: Server, tmp_path: Path
) -> None:
    for name in ("one.txt", "two.txt"):
        (tmp_path / name).write_text(name)
    session = new_session()
    async with server() as client:
        request, _, token = await ask_and_answer(
            client, session, bash("rm -f one.txt"), "allowAlways"
        )
        assert request["allowAlways"] == {
            "rule": "Bash(rm -f one.txt)",
            "label": "this exact command",
        }
        resolved = client.of_type(token, "permissionResolved")[-1]
        assert resolved["by"] == "user" and resolved["rule"] == "Bash(rm -f one.txt)"
        assert not (tmp_path / "one.txt").exists()

        # Another command asks again; denied, it deletes nothing.
        request, _, _ = await ask_and_answer(client, session, bash("rm -f two.txt"), "deny")
        assert request["input"]["command"] == "rm -f two.txt"
        assert (tmp_path / "two.txt").read_text() == "two.txt"

        # The same command again runs by the rule, and says which rule allowed it.
        (tmp_path / "one.txt").write_text("again")
        _, token = await client.query(session, bash("rm -f one.txt"))
        assert not client.of_type(token, "permissionRequest")
        by_rule = client.of_type(token, "permissionResolved")
        assert [(r["by"], r.get("rule")) for r in by_rule] == [("rule", "Bash(rm -f one.txt)")]
        assert not (tmp_path / "one.txt").exists()
        tool_use = client.of_type(token, "toolUse")[0]
        assert tool_use["message"] == "Bash rm -f one.txt"


async def test_rules_are_listed_removed_and_survive_a_restart(
    server: Server, tmp_path: Path
) -> None:
    session = new_session()
    async with server() as client:
        await ask_and_answer(client, session, bash("touch listed.txt"), "allowAlways")
        await ask_and_answer(client, session, "write notes.txt hi", "allowAlways")
    async with server() as client:
        listed = (await client.request("dave/listRules", {"sessionId": session}))["rules"]
        assert [(r["rule"], r["label"]) for r in listed] == [
            ("Bash(touch listed.txt)", "this exact command"),
            (f"Edit({real(tmp_path)}/**)", "all file edits in this session's folder"),
        ]
        assert all(r["createdAt"].endswith("Z") for r in listed)
        removed = await client.request(
            "dave/removeRule", {"sessionId": session, "rule": "Bash(touch listed.txt)"}
        )
        assert removed == {"removed": True}
        again = await client.request(
            "dave/removeRule", {"sessionId": session, "rule": "Bash(touch listed.txt)"}
        )
        assert again == {"removed": False}
        # Removed, the command asks again; the edit rule still covers another file.
        request, _, _ = await ask_and_answer(client, session, bash("touch listed.txt"), "deny")
        assert request["allowAlways"]["rule"] == "Bash(touch listed.txt)"
        _, token = await client.query(session, "write other.txt there")
        assert client.of_type(token, "permissionResolved")[0]["by"] == "rule"
        assert (tmp_path / "other.txt").read_text() == "there"
        with pytest.raises(JsonRpcException) as error:
            await client.request("dave/listRules", {"sessionId": "no-such-session"})
        assert error.value.code == -32602 and "no session no-such-session" in str(error.value)


async def test_an_edit_rule_does_not_cover_files_outside_the_folder(
    server: Server, tmp_path: Path
) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    outside = tmp_path / "outside.txt"
    session = new_session()
    async with server(cwd=str(folder)) as client:
        await ask_and_answer(client, session, "write inside.txt in", "allowAlways")
        request, _, _ = await ask_and_answer(client, session, f"write {outside} out", "deny")
        assert request["allowAlways"]["rule"] == f"Edit({real(outside)})"
    assert (folder / "inside.txt").read_text() == "in"
    assert not outside.exists()


async def test_a_bare_tool_rule_from_an_earlier_version_is_dropped(
    server: Server, tmp_path: Path
) -> None:
    session = new_session()
    async with server() as client:
        await client.query(session, "hello")
    store = SessionStore(tmp_path / "state")
    path = store._path(session)
    record = json.loads(path.read_text())
    record["rules"] = ["Bash", "Write"]  # how earlier versions stored "allow always"
    path.write_text(json.dumps(record))
    (tmp_path / "keep.txt").write_text("keep")
    async with server() as client:
        assert await client.request("dave/listRules", {"sessionId": session}) == {"rules": []}
        request, _, _ = await ask_and_answer(client, session, bash("rm -f keep.txt"), "deny")
        assert request["toolName"] == "Bash"
    assert (tmp_path / "keep.txt").read_text() == "keep"


def test_chat_shows_what_always_would_allow(tmp_path: Path) -> None:
    # A terminal for stdin makes `dave-lsp chat` ask; "a" answers the one request.
    main, secondary = pty.openpty()
    os.write(main, b"a\n")
    done = subprocess.run(
        [*CHAT, "--cwd", str(tmp_path), bash("touch chat.txt")],
        stdin=secondary,
        capture_output=True,
        text=True,
        timeout=120,
    )
    os.close(main)
    os.close(secondary)
    assert done.returncode == 0, done.stderr
    assert (
        "Allow Bash touch chat.txt? [y]es / [a]lways (this exact command: Bash(touch chat.txt))"
        " / [n]o" in done.stderr
    )
    assert "allowed always: Bash(touch chat.txt)" in done.stderr
    assert (tmp_path / "chat.txt").exists()


# The rules themselves, on the suggestion shapes the bundled CLI sends (probed: see
# docs/architecture.md).


def propose(*args: Any) -> rules.Rule:
    """The rule allow always would add; these requests all have one."""
    rule = rules.propose(*args)
    assert rule is not None
    return rule


def test_the_cli_suggestions_become_narrow_rules(tmp_path: Path) -> None:
    cwd = str(tmp_path)
    bash_suggestions = [
        rules.Suggestion("addRules", (("Bash", "rm -f one.txt"),), behavior="allow"),
        rules.Suggestion("addDirectories"),
        rules.Suggestion("setMode", mode="acceptEdits"),
    ]
    rule = propose("Bash", {"command": "rm -f one.txt"}, bash_suggestions, cwd)
    assert (rule.rule, rule.label) == ("Bash(rm -f one.txt)", "this exact command")
    fetch = propose(
        "WebFetch",
        {"url": "https://example.com/x"},
        [rules.Suggestion("addRules", (("WebFetch", "domain:example.com"),), behavior="allow")],
        cwd,
    )
    assert (fetch.rule, fetch.label) == ("WebFetch(domain:example.com)", "fetches from example.com")
    assert rules.covers(fetch.rule, "WebFetch", {"url": "https://EXAMPLE.com/y"}, cwd)
    assert not rules.covers(fetch.rule, "WebFetch", {"url": "https://example.org/"}, cwd)
    # A bare suggestion never becomes a bare rule.
    bare = propose(
        "Bash", {"command": "ls"}, [rules.Suggestion("addRules", (("Bash", None),))], cwd
    )
    assert bare.rule == "Bash(ls)"
    other = propose("mcp__x__y", {"b": 1, "a": [2]}, [], cwd)
    assert other.rule == 'mcp__x__y({"a":[2],"b":1})'
    assert rules.covers(other.rule, "mcp__x__y", {"a": [2], "b": 1}, cwd)
    assert not rules.covers(other.rule, "mcp__x__y", {"a": [3], "b": 1}, cwd)


def test_a_prefix_rule_never_covers_a_chained_command(tmp_path: Path) -> None:
    cwd = str(tmp_path)
    rule = "Bash(git log:*)"
    assert rules.covers(rule, "Bash", {"command": "git log --oneline"}, cwd)
    assert rules.covers(rule, "Bash", {"command": "git log"}, cwd)
    assert not rules.covers(rule, "Bash", {"command": "git logx"}, cwd)
    for chained in ("git log; rm -rf ~", "git log && rm x", "git log | sh", "git log $(rm x)"):
        assert not rules.covers(rule, "Bash", {"command": chained}, cwd)
    assert not rules.covers("Bash(ls)", "Bash", {"command": "ls -la"}, cwd)
    assert not rules.covers("Bash", "Bash", {"command": "ls"}, cwd)


def test_an_edit_rule_follows_symlinks_out_of_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "project"
    (folder / "src").mkdir(parents=True)
    (folder / "escape").symlink_to(tmp_path)
    rule = propose("Write", {"file_path": str(folder / "a.py")}, [], str(folder)).rule
    assert rules.covers(rule, "Edit", {"file_path": "src/b.py"}, str(folder))
    assert rules.covers(rule, "Write", {"file_path": str(folder / "c.py")}, str(folder))
    assert not rules.covers(rule, "Write", {"file_path": str(folder / "escape/x")}, str(folder))
    assert not rules.covers(rule, "Write", {"file_path": str(tmp_path / "x")}, str(folder))
    assert not rules.covers(rule, "Bash", {"command": "echo > a.py"}, str(folder))


# -- issue 24: rules say exactly what they cover, and plan mode yields to none ------------


async def ask(
    client: DaveClient, session: str, prompt: str, timeout: float = 60
) -> tuple[Any, str, dict[str, Any]]:
    """Start a query and wait for its permission request: (future, token, request)."""
    future, token = client.start_query(session, prompt)
    return future, token, await client.wait_report(token, "permissionRequest", timeout)


async def answer(client: DaveClient, future: Any, request: dict[str, Any], decision: str) -> Any:
    await client.request(
        "dave/permission", {"requestId": request["requestId"], "decision": decision}
    )
    return await asyncio.wait_for(future, 60)


async def test_the_clis_prefix_suggestion_is_a_prefix_rule_that_covers_what_it_says(
    server: Server, tmp_path: Path
) -> None:
    """The bundled CLI suggests `Bash(git push *)` for `git push origin main`: the
    choice is labelled as the prefix it is and covers other pushes, but never a
    chained command nor an option that changes what runs; where the suggestion does
    not cover the command shown, the offer is that exact command."""
    session = new_session()
    async with server() as client:
        future, _, request = await ask(client, session, bash("git push origin main"))
        assert request["allowAlways"] == {
            "rule": "Bash(git push *)",
            "label": "commands that start with `git push`",
        }
        await answer(client, future, request, "allowAlways")

        _, token = await client.query(session, bash("git push origin other"))
        assert not client.of_type(token, "permissionRequest")
        resolved = client.of_type(token, "permissionResolved")
        assert [(r["by"], r.get("rule")) for r in resolved] == [("rule", "Bash(git push *)")]

        chained = "git push origin main && touch chained.txt"
        future, _, request = await ask(client, session, bash(chained))
        assert request["allowAlways"] == {"rule": f"Bash({chained})", "label": "this exact command"}
        await answer(client, future, request, "deny")
        hooked = "git push --exec=./evil origin main"
        future, _, request = await ask(client, session, bash(hooked))
        assert request["allowAlways"] == {"rule": f"Bash({hooked})", "label": "this exact command"}
        await answer(client, future, request, "deny")
    assert not (tmp_path / "chained.txt").exists()


async def test_prefix_rules_do_not_cover_interpreters_or_options_that_change_what_runs(
    server: Server, tmp_path: Path
) -> None:
    """Prefix rules as a user's earlier "allow always" left them in the session's record."""
    session = new_session()
    async with server() as client:
        await client.query(session, "hello")
    store = SessionStore(tmp_path / "state")
    path = store._path(session)
    record = json.loads(path.read_text())
    record["rules"] = [
        {"rule": rule, "label": "commands that start with ..."}
        for rule in ("Bash(npm test:*)", "Bash(python3:*)", "Bash(node:*)")
    ]
    path.write_text(json.dumps(record))
    async with server() as client:
        for command in (
            "npm test --prefix ../evil",
            "npm test --script-shell=./evil.sh",
            "npm test --node-options=--require=./evil.js",
            'python3 -c \'open("owned.txt", "w")\'',
            'node -e \'require("fs").writeFileSync("owned.txt", "")\'',
        ):
            future, _, request = await ask(client, session, bash(command), timeout=30)
            assert request["input"]["command"] == command
            assert request["allowAlways"] == {
                "rule": f"Bash({command})",
                "label": "this exact command",
            }
            await answer(client, future, request, "deny")
    assert not (tmp_path / "owned.txt").exists()


async def test_an_edit_rule_never_covers_files_that_run_code_later(
    server: Server, tmp_path: Path
) -> None:
    (tmp_path / ".git" / "hooks").mkdir(parents=True)
    session = new_session()
    async with server() as client:
        await ask_and_answer(client, session, "write inside.txt in", "allowAlways")
        for target in (".git/hooks/pre-commit", ".vscode/settings.json", ".envrc", ".mcp.json"):
            future, _, request = await ask(client, session, f"write {target} echo owned")
            # No rule can be offered for it: it asks each time.
            assert "allowAlways" not in request
            await answer(client, future, request, "deny")
            assert not (tmp_path / target).exists()
        # Other files of the folder still go by the rule.
        _, token = await client.query(session, "write other.txt fine")
        assert client.of_type(token, "permissionResolved")[0]["by"] == "rule"


async def test_plan_mode_asks_for_an_edit_an_earlier_allow_always_covers(
    server: Server, tmp_path: Path
) -> None:
    session = new_session()
    async with server() as client:
        await ask_and_answer(client, session, "write first.txt one", "allowAlways")
        mode = {"sessionId": session, "mode": "plan"}
        assert (await client.request("dave/setPermissionMode", mode))["permissionMode"] == "plan"
        future, token, request = await ask(client, session, "write second.txt two")
        assert request["toolName"] == "Write"
        await answer(client, future, request, "deny")
        assert [r["by"] for r in client.of_type(token, "permissionResolved")] == ["user"]
    assert (tmp_path / "first.txt").read_text() == "one"
    assert not (tmp_path / "second.txt").exists()


async def test_a_webfetch_rule_does_not_cover_a_url_parsers_disagree_on(
    server: Server, tmp_path: Path
) -> None:
    """`https://evil.example\\@docs.example.org/`: Python's urlsplit reads the host
    docs.example.org, a WHATWG parser (the CLI's fetch) evil.example."""
    session = new_session()

    def fetch(url: str) -> str:
        return "tool WebFetch " + json.dumps({"url": url, "prompt": "summarize"})

    async with server() as client:
        future, _, request = await ask(client, session, fetch("https://docs.example.org/a"))
        assert request["allowAlways"]["rule"] == "WebFetch(domain:docs.example.org)"
        await answer(client, future, request, "allowAlways")
        for url in (
            "https://evil.example\\@docs.example.org/",
            "https://user@docs.example.org/",
        ):
            future, _, request = await ask(client, session, fetch(url), timeout=30)
            assert request["input"]["url"] == url
            await answer(client, future, request, "deny")


async def test_the_users_deny_rule_holds_for_the_openai_agents_tools(
    server: Server, fake_model: FakeModelServer, tmp_path: Path
) -> None:
    """The OpenAI agent runs its tools itself: a read in the folder runs unasked, unless
    the user's Claude Code settings deny it; then it never runs and never asks."""
    home = tmp_path / "home"
    (home / ".claude").mkdir(parents=True)
    deny = {"permissions": {"deny": ["Read(**/secret.txt)"]}}
    (home / ".claude" / "settings.json").write_text(json.dumps(deny))
    (tmp_path / "secret.txt").write_text("the secret\n")
    env = {"env": {"OPENAI_API_KEY": "sk-fake-for-tests", "HOME": str(home)}}
    async with server(**openai_options(fake_model), **env) as client:
        result, token = await client.query(
            new_session(), "tool Read " + json.dumps({"file_path": "secret.txt"})
        )
        assert not client.of_type(token, "permissionRequest")
        [resolved] = client.of_type(token, "permissionResolved")
        assert (resolved["decision"], resolved["by"], resolved["rule"]) == (
            "deny",
            "settings",
            "Read(**/secret.txt)",
        )
        assert result["toolResults"][0]["isError"]
        assert "the secret" not in result["text"]
        assert "Read(**/secret.txt)" in result["text"]
