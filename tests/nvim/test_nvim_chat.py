"""The chat in a real headless Neovim (dave.chat, dave.chat_window, dave.prompt, dave.turn):
streaming, tool lines, the winbar, the prompt area, queued prompts, folds and layout.
The real server, the real Claude Code CLI and the shipped fake model (tests/conftest.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.harness.nvim import Editor
from tests.harness.nvim_plugin import (
    PLAIN_PROMPT,
    answer,
    ask,
    chat_window,
    editor_with,
    press_in_chat,
    prompt_area,
    prompts,
    warnings,
)


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
