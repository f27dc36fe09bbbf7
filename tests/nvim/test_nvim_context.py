"""What goes with a prompt in a real headless Neovim (dave.context, issue 15): the active file
and its selection, ranges, `@` mentions and images, and their completion.
The real server, the real Claude Code CLI and the shipped fake model (tests/conftest.py)."""

from __future__ import annotations

import base64
import re
import uuid
from pathlib import Path

from dave_lsp.testing import FakeModelServer
from dave_lsp.testing.samples import PNG
from tests.harness.nvim import Editor, editor
from tests.harness.nvim_plugin import CONTEXT_OFF, answer, ask, model_saw, prompt_area, warnings


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
