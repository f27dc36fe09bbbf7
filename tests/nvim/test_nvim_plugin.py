"""The Neovim plugin in a real headless Neovim, with the real server, the real Claude Code
CLI and the shipped fake model (tests/conftest.py)."""

from __future__ import annotations

import base64
import importlib.util
import json
import re
import shutil
import socket
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from nvim_harness import SERVER_CMD, Editor, editor, wait_until

from dave_lsp.testing import FakeModelServer
from dave_lsp.testing.samples import PNG, QUESTION


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
def review_diff() -> bool:
    """Whether file proposals open a diff tab (the default). Tests of the plain permission
    prompt with Write parametrize it to False (PLAIN_PROMPT)."""
    return True


PLAIN_PROMPT = pytest.mark.parametrize("review_diff", [False], ids=["plain-prompt"])


@pytest.fixture
def active_file() -> bool:
    """Whether a prompt carries the active file as `context` (the default). Tests of the
    plugin with it off (a range's lines pasted into the prompt) parametrize it to False."""
    return True


CONTEXT_OFF = pytest.mark.parametrize("active_file", [False], ids=["context-off"])


@pytest.fixture
def ed(
    nvim_env: dict[str, str],
    backend_env: dict[str, str],
    workdir: Path,
    review_diff: bool,
    active_file: bool,
) -> Iterator[Editor]:
    with editor(nvim_env) as e:
        e.setup(
            cmd=SERVER_CMD,
            init_options={"env": backend_env, "cwd": str(workdir)},
            review={"diff": review_diff},
            context={"active_file": active_file},
        )
        yield e


@contextmanager
def editor_with(
    nvim_env: dict[str, str], env: dict[str, str], workdir: Path, **opts: Any
) -> Iterator[Editor]:
    """A fresh Neovim whose server gives the backend env (a test's own: a dead endpoint...)."""
    with editor(nvim_env) as e:
        e.setup(cmd=SERVER_CMD, init_options={"env": env, "cwd": str(workdir)}, **opts)
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


@PLAIN_PROMPT
def test_allowed_write_writes_the_file_and_shows_its_summary(ed: Editor, workdir: Path) -> None:
    ed.lua("T.answer_with({ 'Allow' })")
    ed.command("Dave ask write notes.txt hello")
    ed.wait_text("Write notes.txt (5 bytes)")
    ed.wait_idle()
    assert (workdir / "notes.txt").read_text() == "hello"
    prompts = ed.lua("return vim.tbl_map(function(p) return p.prompt end, T.prompts)")
    assert len(prompts) == 1 and "Write" in prompts[0]
    assert "Tool said:" in answer(ed)


@PLAIN_PROMPT
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


@PLAIN_PROMPT
def test_denied_write_leaves_no_file(ed: Editor, workdir: Path) -> None:
    ed.lua("T.answer_with({ 'Deny' }, 'not today')")
    ed.command("Dave ask write secret.txt nope")
    ed.wait_text("Write denied")
    ed.wait_idle()
    assert not (workdir / "secret.txt").exists()
    assert "✓ Write secret.txt" not in ed.text()
    # The request was shown in full in the chat, and the reason given is echoed under it.
    block = ed.text().split("**? Allow Write secret.txt?**", 1)[1]
    assert "content: nope" in block and f"file_path: {workdir / 'secret.txt'}" in block
    assert "→ denied: not today" in block


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


@PLAIN_PROMPT
def test_permission_requests_queue_one_prompt_at_a_time(ed: Editor, workdir: Path) -> None:
    ed.lua("T.answer_with({})")  # prompts stay open until the test answers
    ed.command("Dave ask write one.txt 1")
    ed.command("Dave new")
    ed.command("Dave ask write two.txt 22")
    pending = "return require('dave.permissions').pending()"
    ed.wait(lambda: ed.lua(pending) == 2, what="two permission requests")
    assert ed.lua("return #T.prompts") == 1  # one menu at a time
    assert any("a permission prompt is open already" in n["msg"] for n in ed.notes())
    ed.lua("T.choose(1, 'Allow')")
    assert ed.lua(pending) == 1  # the other one still waits: nothing opens unasked
    ed.command("Dave permissions")
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


@PLAIN_PROMPT
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
    ed.lua("T.answer_with({ 'Keep' })")
    ed.command("Dave delete")  # asks first: kept
    [asked] = prompts(ed)
    assert asked["prompt"] == 'Delete the chat "hello" and end its session?'
    assert ed.lua("return T.session() ~= nil") and ours() == before
    ed.lua("T.answer_with({ 'Delete' })")
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


@CONTEXT_OFF  # with the active file as context, see test_a_visual_range_goes_as_the_selection
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
    listed = ed.lua("return T.listed")
    assert any(item.startswith("● second chat (") for item in listed), listed  # the current one
    assert any(item.startswith("  hello (") for item in listed), listed
    assert ed.lua("return #vim.lsp.get_clients({ name = 'dave' })") == 1  # one for both chats


def test_checkhealth_reports_no_error(ed: Editor, fake_model: FakeModelServer) -> None:
    ed.command("checkhealth dave")
    report = "\n".join(ed.nvim.current.buffer[:])
    assert "OK" in report and "protocol version 1" in report, report
    assert f"the model endpoint {fake_model.url} answers (HTTP " in report, report
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


# ---------------------------------------------------------------- reviewing changes (issue 14)


def tool(name: str, **tool_input: Any) -> str:
    """A prompt whose scripted model uses the tool with that input."""
    return f"tool {name} " + json.dumps(tool_input)


TAB_WINDOWS = """
local out = {}
for _, win in ipairs(vim.api.nvim_tabpage_list_wins(0)) do
  local buf = vim.api.nvim_win_get_buf(win)
  table.insert(out, {
    win = win, buf = buf, name = vim.api.nvim_buf_get_name(buf),
    lines = vim.api.nvim_buf_get_lines(buf, 0, -1, true), diff = vim.wo[win].diff,
    buftype = vim.bo[buf].buftype, modifiable = vim.bo[buf].modifiable,
  })
end
return out
"""


def tabs(e: Editor) -> int:
    return e.lua("return #vim.api.nvim_list_tabpages()")


def current_win(e: Editor) -> int:
    return e.lua("return vim.api.nvim_get_current_win()")


def diff_tab(e: Editor, windows: int = 2) -> list[dict[str, Any]]:
    """The windows of the diff tab, once it is the current tab with that many windows."""

    def shown() -> list[dict[str, Any]]:
        if tabs(e) != 2:
            return []
        wins = e.lua(TAB_WINDOWS)
        return wins if len(wins) == windows else []

    return e.wait(shown, what="the diff tab")


def dave_buffers(e: Editor) -> list[str]:
    return e.lua(
        "return vim.tbl_filter(function(n) return vim.startswith(n, 'dave://proposal') end,"
        " vim.tbl_map(vim.api.nvim_buf_get_name, vim.api.nvim_list_bufs()))"
    )


def answers(e: Editor) -> list[dict[str, Any]]:
    """The params of each dave/permission the plugin sent."""
    return e.lua("return T.answers")


def test_a_write_proposal_waits_in_the_chat_then_its_diff_tab_accepts_the_edited_text(
    ed: Editor, workdir: Path
) -> None:
    ed.command(f"edit {workdir / 'other.txt'}")
    before = current_win(ed)
    ed.command("Dave ask write notes.txt hello")
    # It arrives in Normal mode and takes no focus: a block in the chat and a notification,
    # the user's window and buffer stay current (keys typed now, `:w`, stay theirs).
    ed.wait_text("**? Allow Write notes.txt?**")
    block = ed.text().split("**? Allow Write notes.txt?**", 1)[1]
    assert block.startswith(
        "\nnotes.txt (new file) +1 -0\ngr review the diff · gd reject · :Dave review"
    )
    ed.wait(
        lambda: any("notes.txt waits for review" in n["msg"] for n in ed.notes()), what="the note"
    )
    assert tabs(ed) == 1 and current_win(ed) == before
    assert ed.lua("return vim.api.nvim_buf_get_name(0)").endswith("other.txt")
    ed.command("Dave review")  # the deliberate way to it
    left, right = diff_tab(ed)
    assert left["name"] == "dave://proposal/notes.txt (new)"
    assert left["lines"] == [""]
    assert right["name"] == "dave://proposal/notes.txt"
    assert right["lines"] == ["hello"]
    assert left["diff"] and right["diff"]
    assert right["buftype"] == "acwrite" and right["modifiable"]
    assert current_win(ed) == right["win"]

    ed.lua(f"vim.api.nvim_buf_set_lines({right['buf']}, 0, -1, true, {{ 'hello', 'world' }})")
    ed.command("Dave accept")
    ed.wait(lambda: tabs(ed) == 1, what="the diff tab to close")
    assert current_win(ed) == before
    ed.wait_text("→ accepted")
    ed.wait_text("✓ Write notes.txt")
    ed.wait_idle()
    # The proposal had no final newline, so neither has the edited version.
    assert (workdir / "notes.txt").read_text() == "hello\nworld"
    [sent] = answers(ed)
    assert sent["decision"] == "allow" and sent["editedContent"] == "hello\nworld"
    assert "✓ Write: your edited version was accepted (the model is told)" in ed.text()
    assert "1 file changed (:Dave changes to review, :Dave undo to revert)" in ed.text()
    assert dave_buffers(ed) == []
    assert not [n for n in ed.notes() if n["level"] >= 3]


def test_writing_the_proposal_buffer_accepts_it_and_undo_removes_the_file(
    ed: Editor, workdir: Path
) -> None:
    ed.command("Dave ask write notes.txt hello")
    ed.open_review()
    diff_tab(ed)
    ed.command("write")  # :w in the proposal buffer
    ed.wait(lambda: tabs(ed) == 1, what="the diff tab to close")
    ed.wait_idle()
    assert (workdir / "notes.txt").read_text() == "hello"
    [sent] = answers(ed)
    assert sent["decision"] == "allow" and "editedContent" not in sent  # unchanged: a plain allow
    assert "your edited version" not in ed.text()

    assert ed.nvim.call("getcompletion", "Dave undo ", "cmdline") == ["notes.txt"]
    ed.command("Dave undo")
    ed.wait(lambda: not (workdir / "notes.txt").exists(), what="the created file to go")
    ed.wait(lambda: any("reverted notes.txt" in n["msg"] for n in ed.notes()), what="the note")
    assert "↶ reverted notes.txt" in ed.text()


def test_reject_leaves_the_file_untouched(ed: Editor, workdir: Path) -> None:
    keep = workdir / "keep.txt"
    keep.write_text("keep\n")
    ed.lua("T.answer_with({}, 'not this')")  # vim.ui.input gives the reason
    ed.command("Dave ask " + tool("Write", file_path=str(keep), content="gone\n"))
    ed.wait_text("keep.txt +1 -1\ngr review the diff")
    press_in_chat(ed, "gr")  # the chat's key for it
    left, right = diff_tab(ed)
    assert Path(left["name"]).resolve() == keep.resolve()  # the file itself, as it is now
    assert left["lines"] == ["keep"]
    assert right["lines"] == ["gone"]
    ed.command("Dave reject")
    ed.wait(lambda: tabs(ed) == 1, what="the diff tab to close")
    ed.wait_text("Write denied")
    ed.wait_idle()
    assert keep.read_text() == "keep\n"
    [sent] = answers(ed)
    assert sent["decision"] == "deny" and sent["reason"] == "not this"
    assert dave_buffers(ed) == []
    # The file's buffer, loaded only for the diff, went with it.
    assert ed.lua(f"return vim.fn.bufloaded('{keep}')") == 0


def test_an_edit_shows_the_exact_change_then_changes_lists_it_and_undo_reverts_it(
    ed: Editor, workdir: Path
) -> None:
    calc = workdir / "calc.py"
    original = "def add(a, b):\n    return a + b\n\nprint(add(1, 2))\n"
    edited = original.replace("return a + b", "return a - b")
    calc.write_text(original)
    # The CLI edits only a file read earlier in the conversation.
    ed.command(f"Dave ask {tool('Read', file_path=str(calc))}")
    ed.wait_text("✓ Read calc.py")
    ed.wait_idle()
    ed.command(
        "Dave ask "
        + tool("Edit", file_path=str(calc), old_string="return a + b", new_string="return a - b")
    )
    ed.open_review()
    left, right = diff_tab(ed)
    assert Path(left["name"]).resolve() == calc.resolve()
    assert left["lines"] == original.splitlines()
    assert right["lines"] == edited.splitlines()
    assert left["diff"] and right["diff"]
    ed.command("Dave accept")
    ed.wait(lambda: tabs(ed) == 1, what="the diff tab to close")
    ed.wait_idle()
    assert calc.read_text() == edited
    assert "1 file changed (:Dave changes" in ed.text()

    ed.command("Dave changes")
    before, after = diff_tab(ed)
    assert before["lines"] == original.splitlines()
    assert after["lines"] == edited.splitlines()
    assert before["name"].startswith("dave://changes/") and before["name"].endswith(
        "calc.py (before)"
    )
    assert not before["modifiable"] and not after["modifiable"]
    assert before["diff"] and after["diff"]
    qf = ed.lua(
        "return vim.tbl_map(function(i) return { name = vim.api.nvim_buf_get_name(i.bufnr),"
        " lnum = i.lnum, text = i.text } end, vim.fn.getqflist())"
    )
    [item] = qf
    assert Path(item["name"]).resolve() == calc.resolve()
    assert item["text"] == "modified +1 -1"
    assert item["lnum"] == 1  # the hunk's first line, context included
    ed.command("normal q")  # q closes the read-only diff
    ed.wait(lambda: tabs(ed) == 1, what="the changes tab to close")

    ed.command(f"edit {calc}")
    assert ed.nvim.current.buffer[:] == edited.splitlines()
    ed.command("Dave undo calc.py")
    ed.wait(lambda: calc.read_text() == original, what="the edit to be reverted")
    # :checktime reloaded the open buffer.
    ed.wait(lambda: ed.nvim.current.buffer[:] == original.splitlines(), what="the reload")


def test_closing_the_diff_tab_leaves_the_request_pending_until_answered(
    ed: Editor, workdir: Path
) -> None:
    ed.command("Dave ask write later.txt soon")
    ed.open_review()
    _, right = diff_tab(ed)
    ed.lua(f"vim.api.nvim_buf_set_lines({right['buf']}, 0, -1, true, {{ 'my version' }})")
    ed.command("tabclose")
    assert tabs(ed) == 1
    assert ed.lua("return require('dave.permissions').pending()") == 1
    assert ed.running()
    ed.command("Dave review")  # reopens it, the edit kept
    _, right = diff_tab(ed)
    assert right["lines"] == ["my version"]
    ed.command("Dave cancel")  # resolved by the cancel: the tab closes
    ed.wait(lambda: tabs(ed) == 1, what="the diff tab to close")
    ed.wait_idle(timeout=6)
    assert not (workdir / "later.txt").exists()
    assert dave_buffers(ed) == []


def test_a_proposal_waits_while_the_user_types(ed: Editor, workdir: Path) -> None:
    mine = workdir / "mine.txt"
    ed.command(f"edit {mine}")
    ed.nvim.input("i")
    ed.wait(lambda: ed.lua("return vim.api.nvim_get_mode().mode") == "i", what="Insert mode")
    ed.lua("require('dave').ask('write typed.txt later')")
    ed.wait(lambda: any("waits for review" in n["msg"] for n in ed.notes()), what="the review note")
    assert tabs(ed) == 1
    assert ed.lua("return vim.api.nvim_get_mode().mode") == "i"
    # The user finishes and saves their own file, as they would: <Esc>:w<CR>. The diff tab
    # does not open in between, so the :w saves their file and accepts nothing.
    ed.nvim.input("my text<Esc>:w<CR>")
    ed.wait(lambda: mine.exists() and mine.read_text() == "my text\n", what="the user's file")
    assert tabs(ed) == 1
    assert ed.lua("return require('dave.permissions').pending()") == 1
    assert not (workdir / "typed.txt").exists()
    ed.command("Dave review")  # the deliberate way to it
    diff_tab(ed)
    ed.command("Dave accept")
    ed.wait_idle()
    assert (workdir / "typed.txt").read_text() == "later"


def test_a_truncated_proposal_shows_its_diff_read_only(nvim_env: dict[str, str]) -> None:
    # The server sends only the diff of a file over 256 KiB: it is shown, not edited.
    with editor(nvim_env) as e:
        e.setup(init_options={"cwd": "/project"})
        e.lua("require('dave.client').request = function(m, p) table.insert(T.answers, p) end")
        e.lua(
            """require('dave.permissions').ask({ requestId = 'r1', sessionId = 's',
              toolName = 'Write', proposal = { path = '/project/big.txt', exists = true,
              diff = '--- big.txt\\n+++ big.txt\\n@@ -1 +1 @@\\n-a\\n+b\\n',
              truncated = true } })"""
        )
        e.open_review()
        [only] = diff_tab(e, windows=1)
        assert only["name"] == "dave://proposal/big.txt (diff)"
        assert only["lines"] == ["--- big.txt", "+++ big.txt", "@@ -1 +1 @@", "-a", "+b"]
        assert not only["modifiable"]
        e.command("Dave accept")
        e.wait(lambda: tabs(e) == 1, what="the tab to close")
        assert e.lua("return T.answers") == [{"requestId": "r1", "decision": "allow"}]


def test_review_open_auto_opens_the_tab_at_once_in_normal_mode(nvim_env: dict[str, str]) -> None:
    # The old way, for users who set it: the tab opens unasked (but never while typing).
    with editor(nvim_env) as e:
        e.setup(init_options={"cwd": "/project"}, review={"open": "auto"})
        e.lua("require('dave.client').request = function(m, p) table.insert(T.answers, p) end")
        e.lua(
            """require('dave.permissions').ask({ requestId = 'r1', sessionId = 's',
              toolName = 'Write', proposal = { path = '/project/new.txt', exists = false,
              original = '', proposed = 'x\\n', diff = '' } })"""
        )
        _, right = diff_tab(e)
        assert right["name"] == "dave://proposal/new.txt" and current_win(e) == right["win"]
        e.command("Dave accept")
        e.wait(lambda: tabs(e) == 1, what="the tab to close")
        e.setup(review={"open": "sometimes"})
        assert e.notes()[-1]["msg"].startswith(
            "dave: invalid setup option: review.open: expected one of ask, auto"
        )


def test_review_commands_complete(nvim_env: dict[str, str]) -> None:
    with editor(nvim_env) as e:
        names = set(e.nvim.call("getcompletion", "Dave ", "cmdline"))
        assert {"review", "accept", "reject", "changes", "undo"} <= names
        assert e.nvim.call("getcompletion", "Dave accept ", "cmdline") == ["always"]


# ------------------------------------------------------ the editor's context and tools (issue 15)

JEDI = str(Path(sys.executable).parent / "jedi-language-server")
EDITOR_TOOLS = [
    "diagnostics",
    "definition",
    "references",
    "symbols",
    "hover",
    "openEditors",
    "selection",
]


def steps(*calls: tuple[str, dict[str, Any]]) -> str:
    """A prompt whose scripted model calls these tools one after another."""
    return "steps " + json.dumps([[name, tool_input] for name, tool_input in calls])


def ask(e: Editor, prompt: str) -> None:
    """`:Dave ask prompt`, with the prompt as one argument whatever it holds."""
    e.lua("require('dave').ask(...)", prompt)


def start_jedi(e: Editor, root: Path) -> int:
    """jedi-language-server attached to the current buffer, initialized."""
    client_id = e.lua(
        "local cmd, root = ...;"
        " return vim.lsp.start({ name = 'jedi', cmd = { cmd }, root_dir = root })",
        JEDI,
        str(root),
    )
    e.wait(
        lambda: e.lua(
            "local c = vim.lsp.get_client_by_id(...); return c ~= nil and c.initialized == true"
            " and #vim.lsp.get_clients({ bufnr = 0, name = 'jedi' }) == 1",
            client_id,
        ),
        20,
        "jedi to start",
    )
    return client_id


def model_saw(fake_model: FakeModelServer, marker: str) -> str:
    """Every message request the model received that holds marker, as one text."""
    return "\n".join(
        json.dumps(r.body, ensure_ascii=False) for r in fake_model.requests_containing(marker)
    )


@pytest.fixture
def project(workdir: Path) -> dict[str, Path]:
    a = workdir / "greeting.py"
    a.write_text('def greet(name):\n    return "hi " + name\n\n\ngreet("x")\n')
    b = workdir / "use.py"
    b.write_text('from greeting import greet\n\nprint(greet("y"))\n')
    return {"a": a, "b": b}


def test_the_model_reads_neovims_diagnostics_and_jedis_references(
    ed: Editor, project: dict[str, Path], fake_model: FakeModelServer
) -> None:
    a = project["a"]
    ed.command(f"edit {a}")
    start_jedi(ed, a.parent)
    marker = uuid.uuid4().hex
    ed.lua(
        """
        local ns = vim.api.nvim_create_namespace("dave-test")
        vim.diagnostic.set(ns, 0, { { lnum = 1, col = 11, end_col = 15,
          severity = vim.diagnostic.severity.WARN,
          message = "greeting too short " .. ..., source = "mylint", code = "G001" } })
        """,
        marker,
    )
    ask(
        ed,
        steps(
            ("mcp__editor__getDiagnostics", {}),
            ("mcp__editor__findReferences", {"path": str(a), "symbol": "greet"}),
        ),
    )
    ed.wait_text("Tool said:", 30)
    ed.wait_idle(30)
    said = answer(ed)
    # jedi's references, as the model received them: file:line:column and the line.
    assert "greeting.py:1:5: def greet(name):" in said
    assert 'greeting.py:5:1: greet("x")' in said
    assert "use.py:1:22: from greeting import greet" in said
    assert 'use.py:3:7: print(greet("y"))' in said
    # The client offered every editor tool in initialize.
    offered = "return vim.lsp.get_clients({ name = 'dave' })[1].capabilities.experimental.dave"
    assert ed.lua(offered) == {"editorTools": EDITOR_TOOLS}
    # The diagnostic set in Neovim reached the model as the first tool's result.
    seen = model_saw(fake_model, marker)
    assert f"greeting.py:2:12: warning [mylint G001]: greeting too short {marker}" in seen
    assert not [n for n in ed.notes() if n["level"] >= 3]


def test_a_file_not_loaded_is_loaded_for_its_language_server(
    ed: Editor, project: dict[str, Path]
) -> None:
    # use.py is in no buffer: it is loaded (unlisted) and the running jedi, whose root holds
    # it, is attached to it, then asked.
    a, b = project["a"], project["b"]
    ed.command(f"edit {a}")
    start_jedi(ed, a.parent)
    ask(ed, steps(("mcp__editor__findDefinition", {"path": str(b), "symbol": "greet", "line": 3})))
    ed.wait_text("Tool said:", 30)
    ed.wait_idle(30)
    said = answer(ed)
    assert "greeting.py:1:5: def greet(name):" in said, said
    buf = ed.lua("return vim.fn.bufnr(...)", str(b))
    assert buf > 0
    assert ed.lua("return vim.bo[...].buflisted", buf) is False
    assert ed.lua("return #vim.lsp.get_clients({ bufnr = ..., name = 'jedi' })", buf) == 1
    # ...so it is no open editor; the file the chat was opened from is the active one.
    ask(ed, steps(("mcp__editor__getOpenEditors", {})))
    ed.wait_text("Tool said: greeting.py (python) [active]", 30)
    ed.wait_idle()
    assert "use.py" not in answer(ed)


def test_hover_symbols_and_a_file_no_language_server_serves(
    ed: Editor, project: dict[str, Path], workdir: Path
) -> None:
    a = project["a"]
    ed.command(f"edit {a}")
    start_jedi(ed, a.parent)
    ask(ed, steps(("mcp__editor__hover", {"path": str(a), "symbol": "greet"})))
    ed.wait_text("Tool said:", 30)
    ed.wait_idle(30)
    assert "greet(name)" in answer(ed)
    ask(ed, steps(("mcp__editor__searchSymbols", {"query": "greet"})))
    ed.wait_idle(30)
    assert "function greet" in answer(ed) and "greeting.py:1:5" in answer(ed)
    notes = workdir / "notes.txt"
    notes.write_text("hello there\n")
    ask(ed, steps(("mcp__editor__findReferences", {"path": str(notes), "symbol": "hello"})))
    ed.wait_idle(30)
    said = answer(ed)
    assert "Tool said: (error)" in said
    assert "no language server in Neovim serves notes.txt (filetype text)" in said


def test_the_selection_tool_answers_with_the_last_visual_selection(
    ed: Editor, project: dict[str, Path]
) -> None:
    a = project["a"]
    ed.command(f"edit {a}")
    ask(ed, steps(("mcp__editor__getCurrentSelection", {})))
    ed.wait_text("Tool said: Nothing is selected.")
    ed.wait_idle()
    assert ed.lua("return vim.bo.filetype") == "python"  # the chat opened beside it
    ed.nvim.feedkeys(ed.nvim.replace_termcodes("2G0wvj\\<Esc>", True, False, True), "x", False)
    ask(ed, steps(("mcp__editor__getCurrentSelection", {})))
    # Onto the empty line 3 at its first column: the text is line 2's (with its newline),
    # and a range ending at column 0 does not take that line.
    ed.wait_text("Tool said: greeting.py, line 2:")
    ed.wait_idle()
    assert answer(ed).endswith('return "hi " + name')


def test_a_visual_range_goes_as_the_selection(
    ed: Editor, workdir: Path, fake_model: FakeModelServer
) -> None:
    marker = uuid.uuid4().hex
    source = workdir / "calc.py"
    line2 = f"    return a + b  # {marker}"
    source.write_text(f"def add(a, b):\n{line2}\n\nprint(add(1, 2))\n")
    ed.command(f"edit {source}")
    # A charwise selection from `add` on line 1 to the end of line 2.
    ed.nvim.feedkeys(ed.nvim.replace_termcodes("1G0wvj$<Esc>", True, False, True), "x", False)
    ed.command("'<,'>Dave ask explain this")
    ed.wait_text("You said: explain this")
    ed.wait_idle()
    [query] = ed.lua("return T.queries")
    assert query["prompt"] == "explain this"  # nothing pasted into it
    assert query["context"]["activeFile"] == {
        "path": str(source),
        "languageId": "python",
        "selection": {
            "start": {"line": 0, "character": 4},
            "end": {"line": 1, "character": len(line2)},
        },
        "selectedText": f"add(a, b):\n{line2}",
    }
    assert "_with calc.py, lines 1-2_" in ed.text()
    # What the model received: the editor's context block, then the prompt.
    seen = model_saw(fake_model, marker)
    assert (
        "The user's active file in the editor is calc.py (python), with lines 1-2 selected:" in seen
    )
    assert "print(add" not in seen
    # Whole lines for a range that is not the last Visual selection's.
    ed.command("4Dave ask and this")
    ed.wait_idle()
    assert ed.lua("return T.queries[2].context.activeFile.selectedText") == "print(add(1, 2))"
    assert ed.lua("return T.queries[2].context.activeFile.selection") == {
        "start": {"line": 3, "character": 0},
        "end": {"line": 3, "character": 16},
    }


def test_every_prompt_carries_the_file_the_chat_was_opened_from(
    ed: Editor, project: dict[str, Path]
) -> None:
    a = project["a"]
    ed.command(f"edit {a}")
    ed.command("Dave")  # opens the chat and enters it
    assert ed.lua("return vim.bo.filetype") == "dave"
    ask(ed, "hello")
    ed.wait_idle()
    assert ed.lua("return T.queries[1].context") == {
        "activeFile": {"path": str(a), "languageId": "python"}
    }
    assert "_with" not in ed.text()  # no selection went along


@CONTEXT_OFF
def test_no_active_file_with_context_off(ed: Editor, project: dict[str, Path]) -> None:
    ed.command(f"edit {project['a']}")
    ask(ed, "hello")
    ed.wait_idle()
    assert ed.lua("return T.queries[1].context") is None


def test_at_mentions_become_context_and_stay_in_the_prompt(
    ed: Editor, workdir: Path, fake_model: FakeModelServer
) -> None:
    marker = uuid.uuid4().hex
    (workdir / "src").mkdir()
    util = workdir / "src" / "util.py"
    util.write_text(f"# line 1 {marker}-one\n# line 2 {marker}-two\n# line 3\n# line 4\n")
    other = workdir / "other.txt"
    other.write_text("other\n")
    ed.command(f"cd {workdir}")
    prompt = f"look at @src/util.py#L2-3, @other.txt and @missing.py\nping {marker}"
    ask(ed, prompt)
    ed.wait_text(f"You said: ping {marker}")
    ed.wait_idle()
    [query] = ed.lua("return T.queries")
    assert query["prompt"] == prompt
    assert query["context"]["mentions"] == [
        {"path": str(util), "startLine": 2, "endLine": 3},
        {"path": str(other)},
    ]
    seen = model_saw(fake_model, f"{marker}-two")
    assert "The user mentioned src/util.py, lines 2-3:" in seen
    assert f"{marker}-one" not in seen
    ask(ed, f"@src/util.py#L4 only\nping {marker}")
    ed.wait_idle()
    assert ed.lua("return T.queries[2].context.mentions") == [
        {"path": str(util), "startLine": 4, "endLine": 4}
    ]


def test_at_completes_file_names_in_the_prompt(ed: Editor, workdir: Path) -> None:
    (workdir / "src").mkdir()
    (workdir / "src" / "util.py").write_text("")
    (workdir / "setup.cfg").write_text("")
    ed.command(f"cd {workdir}")
    complete = "return require('dave.context').complete_input(...)"
    assert ed.lua(complete, "see @s") == ["see @setup.cfg", "see @src/"]
    assert ed.lua(complete, "see @src/") == ["see @src/util.py"]
    assert ed.lua(complete, "mail a@s") == []
    # The prompt area offers it as its 'omnifunc' (<C-x><C-o>).
    ed.lua("require('dave').prompt()")
    ed.nvim.input("see @src/u<C-x><C-o>")
    ed.wait(lambda: prompt_area(ed) == ["see @src/util.py"], what="the completed mention")
    # And so does `:Dave ask`.
    assert ed.nvim.call("getcompletion", "Dave ask look at @src/u", "cmdline") == ["@src/util.py"]


def test_selections_are_lsp_positions_in_utf16(nvim_env: dict[str, str]) -> None:
    with editor(nvim_env) as e:
        e.lua("require('dave').setup({})")
        e.lua("vim.api.nvim_buf_set_lines(0, 0, -1, false, { 'héllo wörld 𝄞 x', 'two' })")
        selection = "return require('dave.context').visual_selection(0)"
        e.nvim.feedkeys(e.nvim.replace_termcodes("1G0wv$<Esc>", True, False, True), "x", False)
        assert e.lua(selection) == {
            "range": {"start": {"line": 0, "character": 6}, "end": {"line": 0, "character": 16}},
            "text": "wörld 𝄞 x",
            "line1": 1,
            "line2": 1,
        }
        e.nvim.feedkeys(e.nvim.replace_termcodes("1G0wwvj<Esc>", True, False, True), "x", False)
        got = e.lua(selection)
        assert got["range"] == {
            "start": {"line": 0, "character": 12},
            "end": {"line": 1, "character": 3},
        }
        assert got["text"] == "𝄞 x\ntwo"
        e.nvim.feedkeys(e.nvim.replace_termcodes("2GV<Esc>", True, False, True), "x", False)
        got = e.lua(selection)
        assert got["text"] == "two" and got["range"]["start"] == {"line": 1, "character": 0}


def test_editor_tools_off_gives_the_model_none(
    nvim_env: dict[str, str], backend_env: dict[str, str], workdir: Path
) -> None:
    with editor_with(nvim_env, backend_env, workdir, editor_tools=False) as e:
        ask(e, steps(("mcp__editor__getOpenEditors", {})))
        e.wait_text("Tool said: (error)", 30)
        e.wait_idle()
        assert "No such tool available: mcp__editor__getOpenEditors" in answer(e)
        offered = "return vim.lsp.get_clients({ name = 'dave' })[1].capabilities.experimental.dave"
        assert e.lua(offered) == {"editorTools": []}  # an empty list (or object): none


# ---------------------------------------------------------------- the turn's state (issue 16)


def press_in_chat(e: Editor, keys: str) -> None:
    """Goes to the current chat's window and types keys there (Normal mode)."""
    e.lua("vim.api.nvim_set_current_win(vim.fn.win_findbuf(T.session().chat.buf)[1])")
    e.nvim.input(keys)


def warnings(e: Editor) -> list[str]:
    return [n["msg"] for n in e.notes() if n["level"] >= 3]


def test_a_prompt_sent_while_a_turn_runs_is_queued_and_sent_after_it(ed: Editor) -> None:
    ed.command("Dave ask slow 30 50")
    ed.wait_text("s1 ")
    ed.command("Dave ask hello queued")
    assert "⏳ queued (1): hello queued" in ed.text()
    assert ed.lua("return require('dave').status()").endswith("1 queued")
    ed.wait_text("You said: hello queued", timeout=30)
    ed.wait_idle()
    text = ed.text()
    assert (
        text.index("s29 ")
        < text.index("## You\n\nhello queued")
        < text.index("You said: hello queued")
    )
    assert [q["prompt"] for q in ed.lua("return T.queries")] == ["slow 30 50", "hello queued"]
    assert answer(ed) == "You said: hello queued"
    assert not warnings(ed)

    # A queued prompt can be removed before it runs; it is never sent.
    ed.command("Dave ask slow 20 50")
    ed.wait_text("s1 ")
    ed.command("Dave ask hello first")
    ed.command("Dave ask hello never")
    ed.command("Dave unqueue")
    assert "⏳ unqueued: hello never" in ed.text()
    ed.wait_text("You said: hello first", timeout=30)
    ed.wait_idle()
    assert [q["prompt"] for q in ed.lua("return T.queries")][2:] == ["slow 20 50", "hello first"]
    assert "You said: hello never" not in ed.text()
    ed.command("Dave unqueue")
    assert any("no prompt is queued" in n["msg"] for n in ed.notes())
    assert not warnings(ed)


def test_the_models_questions_are_asked_with_vim_ui_select(ed: Editor) -> None:
    ask_one = "tool AskUserQuestion " + json.dumps({"questions": [QUESTION]})
    ed.lua("T.answer_with({ 'Blue' })")
    ask(ed, ask_one)
    ed.wait_text('"Which color?"="Blue"')
    ed.wait_idle()
    [asked] = prompts(ed)
    assert asked["kind"] == "dave.question"
    assert asked["prompt"] == "[Color] Which color?"
    assert asked["items"] == ["Blue — calm", "Red — warm", "Other…"]
    assert answers(ed)[-1]["decision"] == "allow"
    assert answers(ed)[-1]["answers"] == {"Which color?": "Blue"}

    # Other…: the user's own words.
    ed.lua("T.answer_with({ 'Other' }, 'green please')")
    ask(ed, ask_one)
    ed.wait_text('"Which color?"="green please"')
    ed.wait_idle()

    # multiSelect: rounds until Done.
    multi = {**QUESTION, "multiSelect": True}
    ed.lua("T.answer_with({ 'Blue', 'Red', 'Done' })")
    ask(ed, "tool AskUserQuestion " + json.dumps({"questions": [multi]}))
    ed.wait_text('"Which color?"="Blue, Red"')
    ed.wait_idle()
    assert [p["items"] for p in prompts(ed)] == [
        ["Blue — calm", "Red — warm", "Other…", "Done"],
        ["Red — warm", "Other…", "Done"],
        ["Other…", "Done"],
    ]
    assert answers(ed)[-1]["answers"] == {"Which color?": ["Blue", "Red"]}

    # Dismissing the menu answers nothing; the chat shows the question, and `gd` there
    # declines it.
    ed.lua("T.answer_with({})")
    ask(ed, ask_one)
    ed.wait(lambda: len(prompts(ed)) == 1, what="the question")
    ed.lua("T.prompts[1].on_choice(nil)")
    assert ed.lua("return require('dave.permissions').pending()") == 1
    block = ed.text().rsplit("**? [Color] Which color?**", 1)[1]
    assert block.startswith("\n1. Blue — calm\n2. Red — warm\n")
    press_in_chat(ed, "gd")
    ed.wait_text("The user declined to answer.")
    assert "→ declined" in ed.text()
    ed.wait_idle()
    assert answers(ed)[-1]["decision"] == "deny"
    assert not warnings(ed)


def test_a_plan_is_shown_and_approved_into_accept_edits(ed: Editor, workdir: Path) -> None:
    ed.command("Dave mode plan")  # a chat the server does not know yet: created in plan mode
    ed.wait_text("_mode: plan_")
    ed.lua("T.answer_with({})")  # the approval stays open
    ask(ed, "plan # Tidy up | - rename x")
    ed.wait(lambda: len(prompts(ed)) == 1, what="the plan's approval")
    [asked] = prompts(ed)
    assert asked["kind"] == "dave.plan"
    assert asked["items"] == ["Approve", "Approve and accept edits", "Keep planning"]
    shown = ed.lua(
        "for _, win in ipairs(vim.api.nvim_list_wins()) do"
        " local buf = vim.api.nvim_win_get_buf(win)"
        " if vim.api.nvim_buf_get_name(buf):find('dave://plan/', 1, true) then"
        " return { lines = vim.api.nvim_buf_get_lines(buf, 0, -1, true),"
        " ft = vim.bo[buf].filetype, float = vim.api.nvim_win_get_config(win).relative ~= '' }"
        " end end"
    )
    assert shown == {"lines": ["# Tidy up", "- rename x"], "ft": "markdown", "float": True}
    ed.lua("T.choose(1, 'Approve and accept edits')")
    ed.wait_idle(timeout=30)
    assert answers(ed)[-1]["decision"] == "allow"
    assert answers(ed)[-1]["permissionMode"] == "acceptEdits"
    assert not ed.lua(
        "for _, b in ipairs(vim.api.nvim_list_bufs()) do"
        " if vim.api.nvim_buf_get_name(b):find('dave://plan/', 1, true) then return true end"
        " end return false"
    )
    # The approved mode holds: the next write runs without asking.
    ed.lua("T.answer_with({})")
    ask(ed, "write after-plan.txt done")
    ed.wait_text("Write after-plan.txt (4 bytes)")
    ed.wait_idle()
    assert (workdir / "after-plan.txt").read_text() == "done"
    assert prompts(ed) == []
    assert tabs(ed) == 1  # no diff tab either
    assert not warnings(ed)


@pytest.mark.parametrize("review_diff", [False], ids=["plain-prompt"])
def test_keep_planning_sends_the_feedback(ed: Editor) -> None:
    ed.command("Dave mode plan")
    ed.wait_text("_mode: plan_")
    ed.lua("T.answer_with({ 'Keep planning' }, 'add tests')")
    ask(ed, "plan # Tidy up | - rename x")
    ed.wait_idle(timeout=30)
    assert answers(ed)[-1] == {
        "requestId": answers(ed)[-1]["requestId"],
        "decision": "deny",
        "reason": "add tests",
    }
    assert "add tests" in answer(ed)


def test_model_and_mode_apply_to_the_current_chat(ed: Editor, workdir: Path) -> None:
    assert ed.nvim.call("getcompletion", "Dave mode a", "cmdline") == ["acceptEdits"]
    assert set(ed.nvim.call("getcompletion", "Dave mode ", "cmdline")) == {
        "default",
        "acceptEdits",
        "plan",
        "bypassPermissions",
    }
    ed.command("Dave ask hello")
    ed.wait_text("You said: hello")
    ed.wait_idle()
    ed.command("Dave mode acceptEdits")  # a session the server knows: dave/setPermissionMode
    ed.wait_text("_mode: acceptEdits_")
    ed.command("Dave model claude-sonnet-4-5")
    ed.wait_text("_model: claude-sonnet-4-5_")
    ed.lua(
        "require('dave.client').request('dave/listSessions', vim.empty_dict(),"
        " function(_, r) T.listed = r end)"
    )
    ed.wait(lambda: ed.lua("return T.listed ~= nil"), what="dave/listSessions")
    sid = ed.lua("return T.session().id")
    [mine] = [s for s in ed.lua("return T.listed.sessions") if s["sessionId"] == sid]
    assert mine["permissionMode"] == "acceptEdits"
    ed.lua("T.answer_with({})")
    ask(ed, "write mode.txt ok")
    ed.wait_text("Write mode.txt (2 bytes)")
    ed.wait_idle()
    assert prompts(ed) == []
    ed.lua("pcall(vim.cmd, 'Dave mode sideways')")
    assert any("unknown mode" in n["msg"] for n in ed.notes())


def test_status_shows_the_state_context_meter_and_cost(ed: Editor) -> None:
    assert ed.lua("return require('dave').status()") == ""
    ed.command("Dave ask hello meter")
    ed.wait_text("You said: hello meter")
    ed.wait_idle()
    status = ed.lua("return require('dave').status()")
    assert re.fullmatch(r"Dave: ready · \d+k?(/\d+k)? · \$\d+\.\d\d", status), status
    ed.command("Dave ask hello again")  # the backend knows the model's window by now
    ed.wait_text("You said: hello again")
    ed.wait_idle()
    status = ed.lua("return require('dave').status()")
    assert re.fullmatch(r"Dave: ready · \d+k?/\d+[kM] · \$\d+\.\d\d", status), status
    usage = ed.lua("return T.session().usage")
    assert usage["contextTokens"] > 0 and usage["contextWindow"] > usage["contextTokens"]


def test_slash_commands_complete_and_go_as_typed(ed: Editor) -> None:
    complete = "return require('dave.context').complete_input(...)"
    ed.lua(complete, "/comp")  # the first call fetches the list
    ed.wait(lambda: "/compact" in ed.lua(complete, "/comp"), 60, "/compact to complete")
    assert all(c.startswith("/comp") for c in ed.lua(complete, "/comp"))
    assert ed.lua(complete, "see /comp") == []
    ed.command("Dave ask hello before compacting")
    ed.wait_text("You said: hello before compacting")
    ed.wait_idle()
    ed.command("Dave ask /compact")
    ed.wait_idle(timeout=60)
    last = ed.lua("return T.queries[#T.queries]")
    assert last["prompt"] == "/compact"
    assert "context" not in last
    assert not warnings(ed)


def test_an_image_mention_is_attached(ed: Editor, workdir: Path) -> None:
    (workdir / "shot.png").write_bytes(PNG)
    ed.command(f"cd {workdir}")
    ask(ed, "images @shot.png")
    ed.wait_text("Images: image/png")
    ed.wait_idle()
    assert re.fullmatch(r"Images: image/png \(\d+ bytes\)", answer(ed)), answer(ed)
    [query] = ed.lua("return T.queries")
    assert query["attachments"] == [
        {"type": "image", "mediaType": "image/png", "data": base64.b64encode(PNG).decode()}
    ]
    assert "mentions" not in (query.get("context") or {})
    assert "_with image shot.png_" in ed.text()
    assert query["prompt"] == "images shot.png"  # not `@shot.png`: the CLI would attach it again


def test_a_subagents_tool_lines_are_indented_under_its_agent(ed: Editor, workdir: Path) -> None:
    (workdir / "inner.txt").write_text("from the subagent\n")
    inner = "tool Read " + json.dumps({"file_path": str(workdir / "inner.txt")})
    agent = {
        "description": "look",
        "prompt": inner,
        "subagent_type": "general-purpose",
        "run_in_background": False,
    }
    ask(ed, "tool Agent " + json.dumps(agent))
    ed.wait_idle(timeout=60)
    lines = ed.text().split("\n")
    [start] = [i for i, line in enumerate(lines) if line.startswith("▸ Agent")]
    [read] = [i for i, line in enumerate(lines) if "Read inner.txt (1 line)" in line]
    assert start < read
    assert lines[read] == "    ✓ Read inner.txt (1 line)"


# ------------------------------------------------- a chat a daily Neovim user keeps (issue 17)


def test_checkhealth_reports_a_dead_model_endpoint_as_an_error(
    nvim_env: dict[str, str], backend_env: dict[str, str], workdir: Path
) -> None:
    with socket.socket() as s:  # a port nothing listens on once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = f"http://127.0.0.1:{port}"
    with editor_with(nvim_env, {**backend_env, "ANTHROPIC_BASE_URL": dead}, workdir) as e:
        e.command("checkhealth dave")
        report = "\n".join(e.nvim.current.buffer[:])
        assert re.search(rf"ERROR.*the model endpoint {re.escape(dead)} does not answer", report), (
            report
        )
        assert "answered initialize" in report  # the server itself is fine


def test_help_opens_from_a_plain_runtimepath_install_and_the_shipped_tags_are_current(
    nvim_env: dict[str, str], tmp_path: Path
) -> None:
    doc = Path(__file__).resolve().parents[2] / "editors" / "nvim" / "doc"
    fresh = tmp_path / "doc"
    fresh.mkdir()
    shutil.copy(doc / "dave.txt", fresh / "dave.txt")
    with editor(nvim_env) as e:  # editors/nvim on 'runtimepath', nothing else
        e.command(f"helptags {fresh}")
        assert (fresh / "tags").read_text() == (doc / "tags").read_text(), (
            "editors/nvim/doc/tags is stale: nvim --headless -c 'helptags editors/nvim/doc' -c q"
        )
        for topic in ("dave", "dave-permissions", "dave-prompt", ":Dave"):
            e.command(f"help {topic}")
            assert e.lua("return vim.bo.filetype") == "help"
            assert Path(e.lua("return vim.api.nvim_buf_get_name(0)")) == doc / "dave.txt", topic
            e.command("helpclose")


def test_a_retry_is_shown_in_the_winbar_as_it_happens(
    nvim_env: dict[str, str], backend_env: dict[str, str], workdir: Path
) -> None:
    with editor_with(nvim_env, {**backend_env, "CLAUDE_CODE_MAX_RETRIES": "2"}, workdir) as e:
        e.lua(
            """
            T.bars = {}
            local Chat = require("dave.chat")
            local render = Chat._render_winbar
            Chat._render_winbar = function(self)
              render(self)
              for _, win in ipairs(self:windows()) do
                local bar = vim.wo[win].winbar
                if T.bars[#T.bars] ~= bar then table.insert(T.bars, bar) end
              end
            end
            """
        )
        e.command("Dave ask error 500 still down")
        e.wait_text("**Error:**", timeout=90)
        e.wait_idle()
        bars = "\n".join(e.lua("return T.bars"))
        for attempt in (1, 2):
            assert re.search(
                rf"retrying: API Error 500.*, attempt {attempt} of 2, in \d+ s", bars
            ), bars
        assert "failed" in e.lua(
            "return vim.wo[vim.fn.win_findbuf(T.session().chat.buf)[1]].winbar"
        )


def prompt_area(e: Editor) -> list[str]:
    return e.lua("return vim.api.nvim_buf_get_lines(T.session().chat.prompt, 0, -1, true)")


def test_the_prompt_area_takes_a_multiline_prompt_while_an_answer_streams(ed: Editor) -> None:
    ed.command("Dave ask slow 40 50")
    ed.wait_text("s1 ")
    press_in_chat(ed, "i")  # the chat's `i` goes to its prompt area, in Insert mode
    ed.wait(lambda: ed.lua("return vim.api.nvim_get_mode().mode") == "i", what="Insert mode")
    assert ed.lua("return vim.b.dave_prompt") == ed.lua("return T.session().id")
    ed.nvim.input("first line<CR>second line")
    ed.wait_text("s12 ")  # the answer goes on streaming while the user writes
    assert ed.lua("return vim.api.nvim_get_mode().mode") == "i"
    ed.wait(lambda: prompt_area(ed) == ["first line", "second line"], what="the typed prompt")
    ed.nvim.input("<C-s>")  # sent while busy: queued
    ed.wait_text("⏳ queued (1): first line")
    assert prompt_area(ed) == [""]
    ed.wait_text("## You\n\nfirst line\nsecond line\n", timeout=40)
    ed.wait_idle()
    assert [q["prompt"] for q in ed.lua("return T.queries")] == [
        "slow 40 50",
        "first line\nsecond line",
    ]
    # <CR> in Normal mode sends too; an empty prompt area sends nothing.
    ed.nvim.input("<Esc>")
    ed.nvim.input("<CR>")
    ed.wait(lambda: any("the prompt is empty" in n["msg"] for n in ed.notes()), what="the note")
    ed.nvim.input("ihello area<Esc><CR>")
    ed.wait_text("You said: hello area")
    ed.wait_idle()
    assert len(ed.lua("return T.queries")) == 3
    assert not warnings(ed)


def test_a_selection_without_text_asks_for_the_question_first(ed: Editor, workdir: Path) -> None:
    source = workdir / "calc.py"
    source.write_text("def add(a, b):\n    return a + b\n\nprint(add(1, 2))\n")
    ed.command(f"edit {source}")
    ed.nvim.feedkeys(ed.nvim.replace_termcodes("1GVj<Esc>", True, False, True), "x", False)
    ed.command("'<,'>Dave")
    ed.wait(lambda: ed.lua("return vim.api.nvim_get_mode().mode") == "i", what="Insert mode")
    assert ed.lua("return vim.b.dave_prompt") is not None
    assert "with calc.py, lines 1-2" in ed.lua("return vim.wo.winbar")
    assert ed.lua("return T.queries") == []  # nothing is sent before the question
    ed.nvim.input("what does it do?<C-s>")
    ed.wait_text("You said: what does it do?")
    ed.wait_idle()
    [query] = ed.lua("return T.queries")
    assert query["prompt"] == "what does it do?"
    assert query["context"]["activeFile"]["selectedText"] == "def add(a, b):\n    return a + b"
    assert "_with calc.py, lines 1-2_" in ed.text()
    # With text, it sends at once.
    ed.nvim.input("<Esc>")
    ed.lua("vim.api.nvim_set_current_win(vim.fn.bufwinid(...))", str(source))
    ed.command("4Dave ask and this?")
    ed.wait_text("You said: and this?")
    ed.wait_idle()
    assert ed.lua("return T.queries[2].context.activeFile.selectedText") == "print(add(1, 2))"


def test_a_remembered_session_opens_with_its_conversation_after_a_restart(
    nvim_env: dict[str, str], backend_env: dict[str, str], workdir: Path
) -> None:
    marker = uuid.uuid4().hex[:12]
    opts = {"cmd": SERVER_CMD, "init_options": {"env": backend_env, "cwd": str(workdir)}}
    with editor(nvim_env) as e:
        e.setup(**opts)
        e.command(f"Dave ask remember {marker}")
        e.wait_text(f"You said: remember {marker}", timeout=30)
        e.wait_idle()
        sid = e.lua("return T.session().id")
    # Neovim and its server start afresh (the same state folder): the chat is remembered.
    with editor(nvim_env) as e:
        e.setup(**opts)
        e.lua(
            """
            vim.ui.select = function(items, o, on_choice)
              T.listed = vim.tbl_map(o.format_item, items)
              on_choice(items[1])
            end
            """
        )
        e.command("Dave sessions")
        e.wait(lambda: e.lua("return T.listed ~= nil"), 30, "the session list")
        [listed] = e.lua("return T.listed")
        assert re.fullmatch(
            rf"  remember {marker} \(not running, 1 turn, last active (just now|\d+ min ago)\)",
            listed,
        ), listed
        assert e.lua("return T.session().id") == sid
        e.wait_text("(1 earlier turn, from the server)", timeout=30)
        text = e.text()
        assert f"## You\n\nremember {marker}\n\n## Dave\nYou said: remember {marker}\n" in text
        assert e.lua("return T.session().transcript") == [
            {"role": "user", "content": f"remember {marker}"},
            {"role": "assistant", "content": f"You said: remember {marker}"},
        ]
        # The current chat is marked in the list.
        e.command("Dave sessions")
        e.wait(lambda: e.lua("return T.listed[1]").startswith("● "), 30, "the current mark")


def chat_window(e: Editor) -> int:
    return e.lua("return vim.fn.win_findbuf(T.session().chat.buf)[1]")


def test_thinking_is_shown_folded(ed: Editor) -> None:
    ed.command("Dave ask think about folds")
    ed.wait_text("Thought: about folds")
    ed.wait_idle()
    lines = ed.text().split("\n")
    start = lines.index("> _thinking_")
    assert lines[start + 1] == "> Thinking about about folds"
    assert lines[start + 2] == "" and lines[start + 3] == "Thought: about folds"
    win = chat_window(ed)
    closed = (
        "local win, lnum = ...;"
        " return vim.api.nvim_win_call(win, function() return vim.fn.foldclosed(lnum) end)"
    )
    assert ed.lua(closed, win, start + 1) == start + 1  # the thinking: a closed fold
    assert ed.lua(closed, win, start + 4) == -1  # the answer: not folded


def test_the_chat_window_holds_its_layout(ed: Editor) -> None:
    ed.command("Dave")  # an empty chat says how to ask
    buf = ed.lua("return T.session().chat.buf")
    hint = ed.lua(
        "return vim.api.nvim_buf_get_extmarks(..., -1, 0, -1, { details = true })[1][4]"
        ".virt_text[1][1]",
        buf,
    )
    assert hint.startswith("Ask in the prompt area below") and ed.text() == ""
    win = chat_window(ed)
    assert ed.lua(f"return vim.wo[{win}].conceallevel") == 2
    # The chat keeps its 40 % when Neovim is resized.
    for columns in (100, 200):
        ed.command(f"set columns={columns}")
        ed.command("doautocmd VimResized")
        assert ed.lua(f"return vim.api.nvim_win_get_width({win})") == columns * 0.4
    # The buffer is named by its title; a narrow window shortens the title, not the status.
    ed.command("Dave ask hello " + "x" * 80)
    ed.wait_idle()
    assert ed.lua(f"return vim.api.nvim_buf_get_name({buf})").startswith("dave://hello xxx")
    ed.lua(f"vim.api.nvim_win_set_width({win}, 30)")
    ed.lua("require('dave.sessions').peek().chat:_render_winbar()")
    bar = ed.lua(f"return vim.wo[{win}].winbar")
    assert bar.startswith(" Dave · hello") and bar.endswith("…  ● ready"), bar
    # A new chat in the same window: no line numbers, its winbar at once.
    ed.command("set number")
    ed.command("Dave new")
    assert chat_window(ed) == win
    assert ed.lua(f"return vim.wo[{win}].number") is False
    assert ed.lua(f"return vim.wo[{win}].winbar").startswith(" Dave · new chat")


def test_after_a_delete_the_chat_left_is_shown(ed: Editor) -> None:
    ed.command("Dave new")
    first = ed.lua("return T.session().id")
    ed.command("Dave new")
    ed.command("Dave delete!")  # `!`: without asking
    ed.wait(lambda: ed.lua("return T.session().id") == first, 30, "the first chat to be current")
    assert ed.lua("return #vim.fn.win_findbuf(T.session().chat.buf)") == 1
    ed.command("Dave")  # toggles the chat that is left: closed, not a new one
    ed.command("Dave")
    assert ed.lua("return T.session().id") == first
    assert ed.lua("return #require('dave.sessions').list()") == 1
