"""The Neovim plugin in a real headless Neovim, with the real server, the real Claude Code
CLI and the shipped fake model (tests/conftest.py)."""

from __future__ import annotations

import importlib.util
import json
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from nvim_harness import SERVER_CMD, Editor, editor, wait_until

from dave_lsp.testing import FakeModelServer


def _shared_conftest() -> ModuleType:
    """tests/conftest.py, loaded by path: `import conftest` may find another conftest."""
    path = Path(__file__).resolve().parents[1] / "conftest.py"
    spec = importlib.util.spec_from_file_location("dave_shared_conftest", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


cli_processes = _shared_conftest().cli_processes


def cli_pids() -> set[int]:
    """Live Claude Code CLI processes, as tests/conftest.py counts them."""
    return set(cli_processes())


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    return work


@pytest.fixture
def nvim_env(tmp_path: Path) -> dict[str, str]:
    """Keeps nvim's and the server's state files out of the real home."""
    return {
        f"XDG_{name}_HOME": str(tmp_path / "xdg" / name.lower())
        for name in ("CONFIG", "DATA", "STATE", "CACHE")
    }


@pytest.fixture
def ed(nvim_env: dict[str, str], backend_env: dict[str, str], workdir: Path) -> Iterator[Editor]:
    with editor(nvim_env) as e:
        e.setup(cmd=SERVER_CMD, init_options={"env": backend_env, "cwd": str(workdir)})
        yield e


def answer(e: Editor) -> str:
    """The text under the last `## Dave` header."""
    return e.text().rsplit("## Dave", 1)[-1].strip()


def test_ask_streams_the_answer_into_the_chat_buffer(ed: Editor) -> None:
    # Count in-place edits of the chat buffer while the answer streams.
    ed.command("Dave ask hello")
    ed.lua(
        """
        local buf = T.session().chat.buf
        T.edits = 0
        vim.api.nvim_buf_attach(buf, false, { on_bytes = function() T.edits = T.edits + 1 end })
        """
    )
    ed.wait_text("You said: hello")
    ed.wait_idle()
    assert answer(ed) == "You said: hello"
    assert ed.lua("return T.edits") >= 2, "the answer arrived in one piece, not streamed"
    buf = ed.lua("return T.session().chat.buf")
    assert ed.lua(f"return vim.bo[{buf}].filetype") == "dave"
    assert ed.lua(f"return vim.bo[{buf}].modifiable") is False
    win = ed.lua(f"return vim.fn.win_findbuf({buf})[1]")
    assert "ready" in ed.lua(f"return vim.wo[{win}].winbar")
    assert not [n for n in ed.notes() if n["level"] >= 3]


def test_allowed_write_writes_the_file_and_shows_its_summary(ed: Editor, workdir: Path) -> None:
    ed.lua("T.answer_with({ 'Allow' })")
    ed.command("Dave ask write notes.txt hello")
    ed.wait_text("Write notes.txt (5 bytes)")
    ed.wait_idle()
    assert (workdir / "notes.txt").read_text() == "hello"
    prompts = ed.lua("return vim.tbl_map(function(p) return p.prompt end, T.prompts)")
    assert len(prompts) == 1 and "Write" in prompts[0]
    assert "Tool said:" in answer(ed)


def test_tool_uses_are_described_as_the_server_words_them(ed: Editor, workdir: Path) -> None:
    # The server's `message` of toolUse and permissionRequest, not a description of our own.
    ed.lua(
        """
        local Chat = require("dave.chat")
        local set_status = Chat.set_status
        T.statuses = {}
        Chat.set_status = function(self, status, busy)
          table.insert(T.statuses, status)
          return set_status(self, status, busy)
        end
        T.answer_with({ 'Allow' })
        """
    )
    ed.command("Dave ask write notes.txt hello")
    ed.wait_text("Write notes.txt (5 bytes)")
    ed.wait_idle()
    [asked] = prompts(ed)
    assert asked["prompt"] == "[write notes.txt hello] Allow Write notes.txt?"
    assert "running Write notes.txt" in ed.lua("return T.statuses")


def test_denied_write_leaves_no_file(ed: Editor, workdir: Path) -> None:
    ed.lua("T.answer_with({ 'Deny' }, 'not today')")
    ed.command("Dave ask write secret.txt nope")
    ed.wait_text("Write denied")
    ed.wait_idle()
    assert not (workdir / "secret.txt").exists()
    assert "Write secret.txt" not in ed.text()


def test_cancel_stops_a_slow_stream_and_the_chat_goes_on(ed: Editor) -> None:
    ed.command("Dave ask slow 200 50")
    ed.wait_text("s3 ")
    ed.command("Dave cancel")
    ed.wait_text("(cancelled)", timeout=5)
    assert not ed.running()
    partial = answer(ed)
    assert "s199" not in partial
    ed.command("Dave ask hello")
    ed.wait_text("You said: hello")
    ed.wait_idle()
    assert answer(ed) == "You said: hello"


def test_permission_requests_queue_one_prompt_at_a_time(ed: Editor, workdir: Path) -> None:
    ed.lua("T.answer_with({})")  # prompts stay open until the test answers
    ed.command("Dave ask write one.txt 1")
    ed.command("Dave new")
    ed.command("Dave ask write two.txt 22")
    pending = "return require('dave.permissions').pending()"
    ed.wait(lambda: ed.lua(pending) == 2, what="two permission requests")
    assert ed.lua("return #T.prompts") == 1
    ed.lua("T.choose(1, 'Allow')")
    ed.wait(lambda: ed.lua("return #T.prompts") == 2, what="the second prompt")
    ed.lua("T.choose(2, 'Allow always')")
    wait_until(
        lambda: (workdir / "two.txt").exists() and (workdir / "one.txt").exists(), 15, "files"
    )
    assert ed.lua(pending) == 0


def bash(command: str) -> str:
    """A prompt whose scripted model runs the command with its Bash tool."""
    return "tool Bash " + json.dumps({"command": command})


def prompts(e: Editor) -> list[dict[str, Any]]:
    """The vim.ui.select prompts so far: their prompt, kind and items as shown."""
    return e.lua(
        "return vim.tbl_map(function(p) return { prompt = p.prompt, kind = p.kind,"
        " items = p.items } end, T.prompts)"
    )


def test_allow_always_adds_a_rule_shown_in_the_chat_listed_and_removable(
    ed: Editor, workdir: Path
) -> None:
    one = workdir / "one.txt"
    one.write_text("1")
    ed.lua("T.answer_with({ 'Allow always' })")
    ed.command(f"Dave ask {bash('rm -f one.txt')}")
    ed.wait_text("✓ allowed always: Bash(rm -f one.txt)")
    ed.wait_idle()
    assert not one.exists()
    [asked] = prompts(ed)
    assert asked["items"] == [
        "Allow",
        "Allow always: this exact command  [Bash(rm -f one.txt)]",
        "Deny",
    ]

    # The same command again: the rule allows it, the chat says so, nothing is asked.
    one.write_text("1")
    ed.lua("T.answer_with({})")
    ed.command(f"Dave ask {bash('rm -f one.txt')}")
    ed.wait_text("✓ allowed by rule Bash(rm -f one.txt)")
    ed.wait_idle()
    assert not one.exists()
    assert prompts(ed) == []

    # Another command is not covered: it asks, offering its own exact rule.
    ed.lua("T.answer_with({ 'Allow' })")
    ed.command(f"Dave ask {bash('rm -f two.txt')}")
    ed.wait_idle()
    [asked] = prompts(ed)
    assert "Allow always: this exact command  [Bash(rm -f two.txt)]" in asked["items"]
    assert "allowed by rule Bash(rm -f two.txt)" not in ed.text()
    assert ed.text().count("allowed by rule") == 1

    # :Dave rules lists the one rule; picking it removes it.
    ed.lua("T.answer_with({ 'Bash(rm -f one.txt)' })")
    ed.command("Dave rules")
    ed.wait(
        lambda: any("removed the rule Bash(rm -f one.txt)" in n["msg"] for n in ed.notes()),
        what="the removed note",
    )
    [listed] = prompts(ed)
    assert listed["kind"] == "dave.rule"
    [item] = listed["items"]
    assert item.startswith("Bash(rm -f one.txt) — this exact command (added 20")
    ed.command("Dave rules")
    ed.wait(lambda: any("no rules" in n["msg"] for n in ed.notes()), what="the no-rules note")

    # Without the rule, the same command asks again.
    one.write_text("1")
    ed.lua("T.answer_with({ 'Deny' }, 'not now')")
    ed.command(f"Dave ask {bash('rm -f one.txt')}")
    ed.wait_text("Bash denied")
    ed.wait_idle()
    assert one.exists()
    assert len(prompts(ed)) == 1
    assert ed.text().count("allowed by rule") == 1


def test_rules_survive_a_server_restart(ed: Editor, workdir: Path) -> None:
    ed.lua("T.answer_with({ 'Allow always' })")
    ed.command(f"Dave ask {bash('rm -f gone.txt')}")
    ed.wait_text("✓ allowed always: Bash(rm -f gone.txt)")
    ed.wait_idle()
    ed.command("Dave restart")
    ed.lua("T.answer_with({})")  # the list stays open
    ed.command("Dave rules")
    ed.wait(lambda: prompts(ed), what="the rule list")
    [listed] = prompts(ed)
    assert [i.split(" — ")[0] for i in listed["items"]] == ["Bash(rm -f gone.txt)"]
    ed.command(f"Dave ask {bash('rm -f gone.txt')}")
    ed.wait_text("✓ allowed by rule Bash(rm -f gone.txt)")
    ed.wait_idle()
    assert len(prompts(ed)) == 1  # only the rule list: nothing was asked


def test_rules_of_a_chat_that_never_asked(ed: Editor) -> None:
    ed.command("Dave new")
    ed.command("Dave rules")
    ed.wait(lambda: any("no rules" in n["msg"] for n in ed.notes()), what="the no-rules note")
    assert not [n for n in ed.notes() if n["level"] >= 3]


def test_an_old_server_offers_plain_allow_always(nvim_env: dict[str, str]) -> None:
    # A permissionRequest without allowAlways (servers before issue 12) keeps the old choice.
    with editor(nvim_env) as e:
        choices = e.lua("return (require('dave.permissions').choices({ toolName = 'Write' }))")
        assert choices == ["Allow", "Allow always", "Deny"]


def test_cancel_closes_a_pending_permission_prompt(ed: Editor, workdir: Path) -> None:
    ed.lua("T.answer_with({})")  # the prompt stays open
    ed.command("Dave ask write late.txt late")
    ed.wait(lambda: ed.lua("return #T.prompts") == 1, what="the permission prompt")
    ed.command("Dave cancel")
    ed.wait_idle(timeout=6)
    assert ed.lua("return require('dave.permissions').pending()") == 0
    ed.lua("T.choose(1, 'Allow')")  # a late answer is dropped
    ed.command("Dave ask hello")
    ed.wait_text("You said: hello")
    assert not (workdir / "late.txt").exists()


def test_delete_ends_the_chats_cli_process(ed: Editor) -> None:
    def ours() -> set[int]:  # CLI processes of this nvim's server (a prewarmed spare too)
        return cli_pids() & set(ed.processes())

    ed.command("Dave ask hello")
    ed.wait_text("You said: hello")
    ed.wait_idle()
    before = ours()
    assert before, "no Claude Code CLI process under this nvim"
    ed.command("Dave delete")
    wait_until(lambda: len(ours()) < len(before), 6, "the chat's CLI process to end")
    assert ours() < before
    ed.wait(lambda: ed.lua("return T.session() == nil"), 5, "the chat to go")
    ed.wait(lambda: any("deleted" in n["msg"] for n in ed.notes()), 5, "the deleted note")


def test_transcript_is_resent_after_a_server_restart(
    ed: Editor, fake_model: FakeModelServer
) -> None:
    marker = uuid.uuid4().hex
    ed.command(f"Dave ask remember {marker}")
    ed.wait_text(f"You said: remember {marker}")
    ed.wait_idle()
    ed.command("Dave ask follow up")
    ed.wait_text("You said: follow up")
    ed.wait_idle()
    ed.command("Dave restart")
    ed.command("Dave ask after restart")
    ed.wait_text("You said: after restart")
    ed.wait_idle()
    queries = ed.lua("return T.queries")
    assert [len(q["messages"]) for q in queries] == [0, 0, 4]
    assert queries[2]["messages"][0] == {"role": "user", "content": f"remember {marker}"}
    assert queries[2]["messages"][1]["content"] == f"You said: remember {marker}"
    # The model saw the earlier turns in the first request after the restart.
    seen = [r for r in fake_model.requests_containing(marker) if "after restart" in str(r.body)]
    assert seen


def test_transcript_is_resent_once_after_a_failed_query(ed: Editor) -> None:
    # The transcript rule: `messages` on a session's first query to a server process and
    # on the query after a failed one; otherwise empty.
    marker = uuid.uuid4().hex
    ed.command(f"Dave ask remember {marker}")
    ed.wait_text(f"You said: remember {marker}")
    ed.wait_idle()
    ed.command("Dave ask error 400 the fake model refuses this")
    ed.wait_text("**Error:**")
    ed.wait_idle()
    ed.command("Dave ask after failure")
    ed.wait_text("You said: after failure")
    ed.wait_idle()
    ed.command("Dave ask and on")
    ed.wait_text("You said: and on")
    ed.wait_idle()
    queries = ed.lua("return T.queries")
    assert [q["prompt"] for q in queries] == [
        f"remember {marker}",
        "error 400 the fake model refuses this",
        "after failure",
        "and on",
    ]
    assert [len(q["messages"]) for q in queries[:2]] == [0, 0]
    resent = queries[2]["messages"]
    assert resent[0] == {"role": "user", "content": f"remember {marker}"}
    assert resent[1]["content"] == f"You said: remember {marker}"
    assert resent[2] == {"role": "user", "content": "error 400 the fake model refuses this"}
    assert queries[3]["messages"] == [] or queries[3]["messages"] == {}


def test_visual_range_sends_the_lines_and_file_name(ed: Editor, workdir: Path) -> None:
    source = workdir / "calc.py"
    source.write_text("def add(a, b):\n    return a + b\n\nprint(add(1, 2))\n")
    ed.command(f"edit {source}")
    ed.command("1,2Dave ask explain this")
    ed.wait_idle()
    prompt = ed.lua("return T.queries[1].prompt")
    assert prompt.startswith("explain this\n\n")
    assert "calc.py, lines 1-2:" in prompt
    assert "```python\ndef add(a, b):\n    return a + b\n```" in prompt
    assert "print(add" not in prompt
    # The client serves chats only: it is attached to no file buffer.
    assert ed.lua("return #vim.lsp.get_clients({ name = 'dave' })") == 1
    assert ed.lua("return #vim.lsp.get_clients({ bufnr = 0 })") == 0


def test_the_window_follows_the_bottom_only_when_the_cursor_was_there(ed: Editor) -> None:
    ed.command("Dave")  # opens the chat and enters it
    ed.command("Dave ask first")
    ed.wait_idle()
    win = ed.nvim.current.window
    assert ed.nvim.current.buffer.number == ed.lua("return T.session().chat.buf")
    assert win.cursor[0] == len(ed.nvim.current.buffer)  # followed
    win.cursor = (1, 0)
    ed.command("Dave ask second")
    ed.wait_idle()
    assert win.cursor[0] == 1  # left alone
    ed.command("Dave")  # toggles it closed
    assert ed.lua("return #vim.fn.win_findbuf(T.session().chat.buf)") == 0


def test_sessions_picks_another_chat(ed: Editor) -> None:
    ed.command("Dave ask hello")
    ed.wait_idle()
    ed.command("Dave new")
    ed.command("Dave ask second chat")
    ed.wait_idle()
    assert "hello" not in ed.text()
    ed.lua(
        """
        vim.ui.select = function(items, opts, on_choice)
          T.listed = vim.tbl_map(opts.format_item, items)
          for _, item in ipairs(items) do
            if item.title == "hello" then return on_choice(item) end
          end
        end
        """
    )
    ed.command("Dave sessions")
    ed.wait(lambda: ed.lua("return T.listed ~= nil"), what="the session list")
    assert ed.lua("return T.session().chat.title") == "hello"
    assert "You said: hello" in ed.text()
    assert any(item.startswith("second chat") for item in ed.lua("return T.listed"))
    assert ed.lua("return #vim.lsp.get_clients({ name = 'dave' })") == 1  # one for both chats


def test_checkhealth_reports_no_error(ed: Editor) -> None:
    ed.command("checkhealth dave")
    report = "\n".join(ed.nvim.current.buffer[:])
    assert "OK" in report and "protocol version 1" in report, report
    assert "ERROR" not in report, report
    assert "sk-ant-fake" not in report  # keys are never printed


@pytest.mark.parametrize(
    ("opts", "expected"),
    [
        ({"cmd": ["/nonexistent/dave-lsp"]}, "is not an executable"),
        (
            {"cmd": [sys.executable, "-c", "import sys; sys.exit(3)"]},
            "exited (code 3) before it answered initialize; run :checkhealth dave",
        ),
        (
            {"cmd": SERVER_CMD, "init_options": {"claude": {"cliPath": 5}}},
            "refused to start: initializationOptions.claude.cliPath",
        ),
    ],
    ids=["missing", "exits", "refused"],
)
def test_a_bad_server_gives_a_clear_error(
    nvim_env: dict[str, str], opts: dict[str, object], expected: str
) -> None:
    with editor(nvim_env) as e:
        e.setup(**opts)
        e.command("Dave ask hello")
        e.wait_idle(timeout=10)
        error = e.text().rsplit("**Error:**", 1)[-1]
        assert expected in error
        assert "traceback" not in e.text().lower()
        messages = e.lua("return vim.api.nvim_exec2('messages', { output = true }).output")
        assert "traceback" not in messages.lower()
        assert not e.nvim.vvars["errmsg"]
        # It stays usable: a later ask fails the same clear way.
        e.command("Dave ask again")
        e.wait_idle(timeout=10)
        assert e.text().count(expected) == 2


def test_invalid_option_is_reported_not_raised(nvim_env: dict[str, str]) -> None:
    with editor(nvim_env) as e:
        e.setup(window={"position": "middle"})
        note = e.notes()[-1]
        assert note["level"] == 4
        assert note["msg"].startswith(
            "dave: invalid setup option: window.position: expected one of"
        )
        assert "traceback" not in note["msg"]


def test_subcommands_complete(nvim_env: dict[str, str]) -> None:
    with editor(nvim_env) as e:
        names = e.nvim.call("getcompletion", "Dave ", "cmdline")
        assert {"ask", "cancel", "new", "delete", "sessions", "rules"} <= set(names)
        assert e.nvim.call("getcompletion", "Dave de", "cmdline") == ["delete"]
