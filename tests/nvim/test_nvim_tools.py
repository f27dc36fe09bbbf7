"""The editor tools in a real headless Neovim (dave.tools, dave.language_servers, issue 15):
the model reads Neovim's diagnostics, jedi's answers, open editors and the selection.
The real server, the real Claude Code CLI and the shipped fake model (tests/conftest.py)."""

from __future__ import annotations

import uuid
from pathlib import Path

from dave_lsp.testing import FakeModelServer
from tests.harness.nvim import Editor
from tests.harness.nvim_plugin import (
    EDITOR_TOOLS,
    answer,
    ask,
    editor_with,
    model_saw,
    start_jedi,
    steps,
)


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
