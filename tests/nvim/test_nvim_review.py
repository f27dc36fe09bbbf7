"""Reviewing changes in a real headless Neovim (dave.review, dave.diff_tab, dave.changes,
issue 14): a proposal's diff tab, accept/reject, `:Dave changes` and `:Dave undo`.
The real server, the real Claude Code CLI and the shipped fake model (tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

from tests.harness.nvim import Editor, editor
from tests.harness.nvim_plugin import (
    answers,
    current_win,
    dave_buffers,
    diff_tab,
    press_in_chat,
    tabs,
    tool,
)


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
