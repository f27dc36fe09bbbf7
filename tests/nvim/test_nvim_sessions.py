"""Chats as server sessions in a real headless Neovim (dave.sessions, dave.session_picker):
the transcript rule, `:Dave sessions`, delete, model and mode, the status line.
The real server, the real Claude Code CLI and the shipped fake model (tests/conftest.py)."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

from dave_lsp.testing import FakeModelServer
from tests.harness.nvim import SERVER_CMD, Editor, editor, wait_until
from tests.harness.nvim_plugin import ask, cli_pids, prompts


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
