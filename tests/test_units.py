"""Unit tests of the pure parts: tool summaries, transcript formatting, token
coalescing, params structuring."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from dave_lsp import events as ev
from dave_lsp.backends.base import ChatMessage
from dave_lsp.backends.claude.transcript import first_message
from dave_lsp.lsp.progress import FLUSH_CHARS, ProgressSink
from dave_lsp.lsp.protocol import ParamsError, QueryParams, structure
from dave_lsp.tools.summaries import describe_tool_use, format_tool_summary

CWD = "/work/project"


@pytest.mark.parametrize(
    ("tool", "tool_input", "output", "structured", "expected"),
    [
        ("Read", {"file_path": "/work/project/src/a.py"}, "1\n2\n3\n", None, "src/a.py (3 lines)"),
        (
            "Read",
            {"file_path": "/work/project/a.py"},
            "x",
            {"file": {"numLines": 1}},
            "a.py (1 line)",
        ),
        (
            "Write",
            {"file_path": "/work/project/notes.txt", "content": "hello"},
            "",
            None,
            "notes.txt (5 bytes)",
        ),
        (
            "Write",
            {"file_path": "/tmp/out.txt", "content": "é"},
            "",
            None,
            "/tmp/out.txt (2 bytes)",
        ),
        ("Edit", {"file_path": "/work/project/b.py", "old_string": "a"}, "", None, "b.py"),
        ("Bash", {"command": "echo hi"}, "hi\n", None, "echo hi (3 bytes of output)"),
        (
            "Bash",
            {"command": "ls"},
            "",
            {"stdout": "a\nb\n", "stderr": ""},
            "ls (4 bytes of output)",
        ),
        ("Grep", {"pattern": "TODO"}, "", None, "'TODO'"),
        ("Glob", {"pattern": "**/*.py"}, "", None, "'**/*.py'"),
        ("WebFetch", {"url": "https://example.com"}, "", None, ""),
        ("Read", {"file_path": "/work/projectile/x"}, "", None, "/work/projectile/x (0 lines)"),
    ],
)
def test_tool_summaries(
    tool: str, tool_input: dict[str, Any], output: str, structured: Any, expected: str
) -> None:
    assert format_tool_summary(tool, tool_input, output, structured, CWD) == expected


def test_a_failed_tool_summary_names_the_target_and_the_error() -> None:
    denied = format_tool_summary(
        "Write",
        {"file_path": "/work/project/secret.txt", "content": "abcd"},
        "\nThe user said no.\nmore",
        None,
        CWD,
        is_error=True,
    )
    assert denied == "secret.txt: The user said no."
    assert format_tool_summary("Task", {}, "", None, CWD, is_error=True) == "failed"


def test_permission_messages_name_the_tool_and_its_target() -> None:
    assert describe_tool_use("Write", {"file_path": "/work/project/n.txt"}, CWD) == "Write n.txt"
    assert describe_tool_use("Bash", {"command": "rm -rf\nbuild"}, CWD) == "Bash rm -rf build"
    assert describe_tool_use("Task", {}, CWD) == "Task"


def test_first_message_is_the_prompt_alone_without_a_transcript() -> None:
    assert first_message([], "hi") == "hi"


def test_first_message_labels_every_turn_and_ends_with_the_prompt() -> None:
    message = first_message([ChatMessage("user", "one"), ChatMessage("assistant", "two")], "three")
    assert message.endswith("\n\nUser: three")
    assert message.index("User: one") < message.index("Assistant: two") < message.index("three")


async def test_tokens_are_coalesced_but_exact_and_the_first_goes_at_once() -> None:
    sent: list[dict[str, Any]] = []
    sink = ProgressSink(sent.append, "s")
    sink.begin()
    sink.emit(ev.Token("first"))
    assert sent[-1] == {"kind": "report", "type": "token", "text": "first"}
    pieces = [f"p{i} " for i in range(500)]
    for piece in pieces:
        sink.emit(ev.Token(piece))
    sink.emit(ev.Thinking("hmm"))
    sink.emit(ev.ToolUse("t1", "Read", {"file_path": "x"}))
    sink.emit(ev.Token("after"))
    await asyncio.sleep(0.05)  # the timer flushes what is left
    sink.end()
    texts = [v["text"] for v in sent if v.get("type") == "token"]
    assert "".join(texts) == "first" + "".join(pieces) + "after"
    assert len(texts) < 20
    kinds = [v.get("type") or v["kind"] for v in sent]
    # Order is kept across kinds: thinking and the tool use come between the tokens.
    assert kinds.index("thinking") < kinds.index("toolUse") < len(kinds) - 2
    assert sent[-1] == {"kind": "end"}
    assert all(len(t) <= FLUSH_CHARS + 10 for t in texts)


def test_a_sink_without_a_token_sends_nothing_and_cannot_ask() -> None:
    sink = ProgressSink(None, "s")
    sink.begin()
    sink.emit(ev.ToolUse("t1", "Read", {}))
    sink.end()
    assert not sink.can_ask


def test_params_errors_name_the_field() -> None:
    with pytest.raises(ParamsError, match=r"messages\[1\]: expected an object"):
        structure(
            {"sessionId": "a", "prompt": "p", "messages": [{"role": "user", "content": "x"}, 3]},
            QueryParams,
        )
    with pytest.raises(ParamsError, match="params must be an object"):
        structure([1, 2], QueryParams)
    with pytest.raises(ParamsError, match="workDoneToken: expected a string or an integer"):
        structure({"sessionId": "a", "prompt": "p", "workDoneToken": 1.5}, QueryParams)


def test_env_flags_merge_over_the_options_and_a_bad_one_is_named() -> None:
    from dave_lsp.config import env_pairs

    assert env_pairs(["A=1", "B=x=y"], {"A": "0", "C": "3"}) == {"A": "1", "B": "x=y", "C": "3"}
    with pytest.raises(ValueError, match="--env takes KEY=VALUE, got 'BAD'"):
        env_pairs(["BAD"])


# -- permission rules (issue 24): what a rule covers, exactly -----------------------------


def covers_command(rule: str, command: str) -> bool:
    from dave_lsp.permissions import rules

    return rules.covers(rule, "Bash", {"command": command}, CWD)


@pytest.mark.parametrize(
    "command",
    [
        "npm test --prefix ../evil",
        "npm test --prefix=../evil",
        "npm test --pref ../evil",  # npm takes an abbreviation
        "npm test --script-shell=./evil.sh",
        "npm test --node-options=--require=./evil.js",
        "npm test --node_options=--require=./evil.js",
        "npm test -c evil",
        "npm test $EVIL",
        "npm test ${X:=--prefix} ../evil",
        "npm test {--prefix,../evil}",
        "npm test *",  # a file named --prefix=.. in the folder would expand
        "npm test \\--prefix ../evil",
        "npm test && rm -rf ~",
        "npm testx",
    ],
)
def test_a_prefix_rule_never_covers_what_changes_what_runs(command: str) -> None:
    assert not covers_command("Bash(npm test:*)", command)
    assert not covers_command("Bash(npm test *)", command)


def test_a_prefix_rule_covers_plain_continuations_in_both_spellings() -> None:
    for rule in ("Bash(npm test:*)", "Bash(npm test *)"):
        assert covers_command(rule, "npm test")
        assert covers_command(rule, "npm test -- --grep 'a b'")
        assert covers_command(rule, "npm  test src/a.test.js")
    assert not covers_command("Bash(npm test *)", "npm install")
    # An exact rule is exactly that command, even one that ends in ` *`.
    assert covers_command("Bash(ls -la)", "ls -la")
    assert not covers_command("Bash(ls -la)", "ls -la x")


@pytest.mark.parametrize(
    ("rule", "command"),
    [
        ("Bash(python3:*)", "python3 -c 'import os'"),
        ("Bash(python3.12:*)", "python3.12 x.py"),
        ("Bash(/usr/bin/python3:*)", "/usr/bin/python3 x.py"),
        ("Bash(node:*)", "node evil.js"),
        ("Bash(bash:*)", "bash evil.sh"),
        ("Bash(sh *)", "sh evil.sh"),
        ("Bash(env:*)", "env rm -rf x"),
        ("Bash(sudo:*)", "sudo ls"),
        ("Bash(xargs:*)", "xargs rm"),
        ("Bash(npx:*)", "npx evil-package"),
        ("Bash(uvx:*)", "uvx evil"),
        ("Bash(uv run:*)", "uv run evil.py"),
        ("Bash(FOO=1 make:*)", "FOO=1 make all"),
    ],
)
def test_interpreters_get_exact_rules_only(rule: str, command: str) -> None:
    from dave_lsp.permissions import rules

    assert not covers_command(rule, command)
    content = rule[5:-1]
    offered = rules.propose(
        "Bash", {"command": command}, [rules.Suggestion("addRules", (("Bash", content),))], CWD
    )
    assert offered is not None
    assert (offered.rule, offered.label) == (f"Bash({command})", "this exact command")


def test_the_clis_prefix_suggestion_is_offered_only_when_it_covers_the_command() -> None:
    from dave_lsp.permissions import rules

    def offer(command: str, suggested: str) -> tuple[str, str]:
        suggestion = rules.Suggestion("addRules", (("Bash", suggested),), behavior="allow")
        rule = rules.propose("Bash", {"command": command}, [suggestion], CWD)
        assert rule is not None
        return rule.rule, rule.label

    assert offer("git push origin main", "git push *") == (
        "Bash(git push *)",
        "commands that start with `git push`",
    )
    assert offer("npm test", "npm test:*")[1] == "commands that start with `npm test`"
    for command, suggested in (
        ("git push origin main && echo hi", "git push *"),
        ("npm test --prefix ../evil", "npm test *"),
        ("ls -la", "rm -rf *"),  # a suggestion for another command
        ("ls -la", "ls -la x"),  # an exact suggestion that is not the command shown
    ):
        assert offer(command, suggested) == (f"Bash({command})", "this exact command")


@pytest.mark.parametrize(
    "path",
    [
        ".git/config",
        ".git/hooks/pre-commit",
        "sub/module/.git/hooks/post-checkout",
        ".vscode/settings.json",
        ".vscode/tasks.json",
        ".idea/workspace.xml",
        ".envrc",
        ".env",
        ".env.local",
        ".claude/settings.json",
        ".claude/settings.local.json",
        ".mcp.json",
        ".github/workflows/ci.yml",
        ".GIT/config",
    ],
)
def test_edit_rules_never_cover_files_that_run_code_later(path: str) -> None:
    from dave_lsp.permissions import rules

    for tool in ("Write", "Edit"):
        assert not rules.covers(f"Edit({CWD}/**)", tool, {"file_path": path}, CWD)
        assert not rules.covers(f"Edit({CWD}/{path})", tool, {"file_path": path}, CWD)
    assert rules.propose("Write", {"file_path": path}, [], CWD) is None


def test_edit_rules_still_cover_the_rest_of_the_folder() -> None:
    from dave_lsp.permissions import rules

    for path in ("src/a.py", ".github/CODEOWNERS", "docs/.gitignore", "environment.py"):
        assert rules.covers(f"Edit({CWD}/**)", "Write", {"file_path": path}, CWD)


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example\\@docs.example.org/",
        "https://evil.example@docs.example.org/",
        "https://user:pw@docs.example.org/",
        "https:///docs.example.org/",
        "https:/docs.example.org/",
        "https://docs.example.org%2f@evil.example/",
        " https://docs.example.org/",
        "https://docs.example.org\t.evil/",
        "ftp://docs.example.org/",
        "https://DOCS.example.org\\.evil.example/",
    ],
)
def test_a_webfetch_rule_matches_only_urls_both_parsers_read_alike(url: str) -> None:
    from dave_lsp.permissions import rules

    rule = "WebFetch(domain:docs.example.org)"
    assert not rules.covers(rule, "WebFetch", {"url": url}, CWD)


def test_a_webfetch_rule_covers_its_host() -> None:
    from dave_lsp.permissions import rules

    rule = "WebFetch(domain:docs.example.org)"
    for url in (
        "https://docs.example.org/a?b#c",
        "http://DOCS.example.org:8080/",
        "https://docs.example.org",
    ):
        assert rules.covers(rule, "WebFetch", {"url": url}, CWD)
    assert not rules.covers(rule, "WebFetch", {"url": "https://docs.example.org.evil/"}, CWD)


def test_a_client_mcp_server_never_takes_a_name_the_server_owns() -> None:
    from dave_lsp.permissions.policy import client_server_name

    assert client_server_name("editor", {}) == "editor-client"
    assert client_server_name("acp", {}) == "acp-client"
    assert client_server_name("ide", {}) == "ide-client"
    assert client_server_name("editor", {"editor-client": 1}) == "editor-client-2"
    assert client_server_name("files", {}) == "files"
    assert client_server_name("files", {"files": 1}) == "files-client"


def test_the_users_settings_rules_follow_claude_codes_syntax_and_precedence(
    tmp_path: Any,
) -> None:
    import json

    from dave_lsp.permissions import settings_rules

    home, project = tmp_path / "home", tmp_path / "project"
    (home / ".claude").mkdir(parents=True)
    (project / ".claude").mkdir(parents=True)
    user = {
        "permissions": {
            "deny": [
                "Read(**/secret.txt)",
                "Read(//etc/shadow)",
                "Read(~/.ssh/**)",
                "Edit(/dotfiles/**)",  # from the settings root: the folder holding .claude
                "Bash(rm:*)",
                "Bash(git * --force)",
                "WebFetch(domain:evil.example)",
                "mcp__danger",
            ],
            "ask": ["Read(./notes/*.md)", "Edit(*.lock)", "Bash(git push *)", "Read(**)"],
            "allow": ["Read(**)", "Edit(src/**)", "Bash(npm test:*)", "Bash(git * main)"],
        }
    }
    (home / ".claude" / "settings.json").write_text(json.dumps(user))
    folder = {"permissions": {"deny": ["Edit(generated/**)"]}}
    (project / ".claude" / "settings.json").write_text(json.dumps(folder))
    env, cwd = {"HOME": str(home)}, str(project)

    def verdict(tool: str, trusted: bool = False, **tool_input: Any) -> tuple[str, str] | None:
        found = settings_rules.match(tool, tool_input, cwd, env, trusted)
        return (found.behavior, found.rule) if found else None

    assert verdict("Read", file_path="a/b/secret.txt") == ("deny", "Read(**/secret.txt)")
    assert verdict("Grep", path="secret.txt") == ("deny", "Read(**/secret.txt)")
    assert verdict("Read", file_path="/etc/shadow") == ("deny", "Read(//etc/shadow)")
    assert verdict("Read", file_path=str(home / ".ssh" / "id_ed25519")) == (
        "deny",
        "Read(~/.ssh/**)",
    )
    assert verdict("Write", file_path=str(home / "dotfiles" / "x")) == (
        "deny",
        "Edit(/dotfiles/**)",
    )
    # Deny before ask before allow, whatever the order in the file.
    assert verdict("Read", file_path="notes/a.md") == ("ask", "Read(./notes/*.md)")
    assert verdict("Edit", file_path="deps/yarn.lock") == ("ask", "Edit(*.lock)")
    assert verdict("Write", file_path="src/a.py") == ("allow", "Edit(src/**)")
    assert verdict("Write", file_path="lib/a.py") is None
    # Deny and ask match a part of a chained command; allow never covers a chain.
    assert verdict("Bash", command="ls && rm -rf x") == ("deny", "Bash(rm:*)")
    assert verdict("Bash", command="git push origin main --force") == (
        "deny",
        "Bash(git * --force)",
    )
    assert verdict("Bash", command="git push origin main") == ("ask", "Bash(git push *)")
    assert verdict("Bash", command="npm test") == ("allow", "Bash(npm test:*)")
    assert verdict("Bash", command="npm test && curl x") is None
    assert verdict("Bash", command="git merge main") is None  # wildcard allows: never
    # Deny reads any host a parser sees in the URL.
    url = "https://docs.example.org\\@evil.example/"
    assert verdict("WebFetch", url=url) == ("deny", "WebFetch(domain:evil.example)")
    assert verdict("mcp__danger__drop", table="x") == ("deny", "mcp__danger")
    # The folder's own rules count only for a folder the user trusts.
    assert verdict("Write", file_path="generated/x.py") is None
    assert verdict("Write", True, file_path="generated/x.py") == ("deny", "Edit(generated/**)")
    # An allow rule never covers a file that runs code later.
    assert verdict("Write", file_path="src/.git/config") is None


def test_settings_rules_come_from_claude_config_dir_and_follow_changes(tmp_path: Any) -> None:
    import json
    import os

    from dave_lsp.permissions import settings_rules

    config = tmp_path / "config"
    config.mkdir()
    settings = config / "settings.json"
    settings.write_text(json.dumps({"permissions": {"deny": ["Bash(rm:*)"]}}))
    env = {"CLAUDE_CONFIG_DIR": str(config), "HOME": str(tmp_path / "nohome")}
    assert settings_rules.speaks("Bash", {"command": "rm x"}, str(tmp_path), env)
    settings.write_text(json.dumps({"permissions": {"ask": ["Bash(ls)"]}}))
    os.utime(settings, ns=(1, 1))  # a change the cache sees even within one clock tick
    assert not settings_rules.speaks("Bash", {"command": "rm x"}, str(tmp_path), env)
    assert settings_rules.speaks("Bash", {"command": "ls"}, str(tmp_path), env)
    settings.write_text("{not json")
    os.utime(settings, ns=(2, 2))
    assert settings_rules.match("Bash", {"command": "ls"}, str(tmp_path), env) is None
