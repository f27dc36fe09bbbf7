"""What the model reads of the editor's answers (tools/editor.py) and of the editor's
context (session/context.py): compact, relative, 1-based, bounded."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from dave_lsp.lsp.protocol import ActiveFile, Mention, ParamsError, Position, QueryContext, Range
from dave_lsp.session import context as editor_context
from dave_lsp.tools.editor import MAX_RESULTS, EditorToolError, EditorTools, find_symbol


def answering(result: Any) -> EditorTools:
    async def request(_method: str, _params: Any) -> Any:
        return result

    return EditorTools(["symbols", "hover", "openEditors", "selection", "definition"], request)


def test_a_symbol_position_is_in_utf16_units_and_whole_words_first(tmp_path: Path) -> None:
    source = tmp_path / "u.py"
    source.write_text("greeting = 1\nx = '😀'; greet = greeting\n")
    assert find_symbol(str(source), "greet", None) == {"line": 1, "character": 10}
    assert find_symbol(str(source), "greeting", 2) == {"line": 1, "character": 18}
    with pytest.raises(EditorToolError, match="does not appear on line 1"):
        find_symbol(str(source), "greet", 1)


def test_answers_become_compact_text(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("class Greeter:\n    pass\n")
    uri = source.as_uri()
    symbols = [
        {
            "name": "Greeter",
            "kind": 5,
            "location": {"uri": uri, "range": {"start": {"line": 0, "character": 6}}},
        }
    ] * (MAX_RESULTS + 2)
    text = asyncio.run(answering(symbols).call("searchSymbols", {"query": "Gre"}, str(tmp_path)))
    lines = text.splitlines()
    assert lines[0] == "class Greeter at m.py:1:7: class Greeter:"
    assert len(lines) == MAX_RESULTS + 1 and lines[-1] == "… and 2 more"
    hover = {"contents": {"kind": "markdown", "value": "```python\nclass Greeter\n```"}}
    text = asyncio.run(
        answering(hover).call("hover", {"path": "m.py", "symbol": "Greeter"}, str(tmp_path))
    )
    assert text == "```python\nclass Greeter\n```"
    editors = {"editors": [{"uri": uri, "languageId": "python", "isActive": True, "isDirty": True}]}
    text = asyncio.run(answering(editors).call("getOpenEditors", {}, str(tmp_path)))
    assert text == "m.py (python) [active, unsaved changes]"
    assert asyncio.run(answering(None).call("getCurrentSelection", {}, str(tmp_path))) == (
        "Nothing is selected."
    )
    link = [{"targetUri": uri, "targetSelectionRange": {"start": {"line": 0, "character": 6}}}]
    text = asyncio.run(
        answering(link).call("findDefinition", {"path": "m.py", "symbol": "Greeter"}, str(tmp_path))
    )
    assert text == "m.py:1:7: class Greeter:"
    with pytest.raises(EditorToolError, match="does not offer getDiagnostics"):
        asyncio.run(answering(None).call("getDiagnostics", {}, str(tmp_path)))


def test_context_is_bounded_and_a_missing_mention_is_the_clients_mistake(tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    big.write_text("".join(f"line {i}\n" for i in range(1, 1001)))
    context = QueryContext(
        active_file=ActiveFile(
            "big.txt",
            "text",
            Range(Position(4, 0), Position(4, 3)),
            "x" * (editor_context.MAX_SELECTION_CHARS + 10),
        ),
        mentions=[Mention("big.txt")],
    )
    sent = editor_context.render(context, "the prompt", str(tmp_path))
    assert sent.endswith("</editor-context>\n\nthe prompt")
    assert "with line 5 selected" in sent
    assert "(selection cut at 20000 characters)" in sent
    assert "500  line 500" in sent and "501  line 501" not in sent
    assert "cut at 500 lines; read big.txt for the rest" in sent
    assert editor_context.render(QueryContext(), "plain", str(tmp_path)) == "plain"
    with pytest.raises(ParamsError, match=r"mentions\[0\]\.path: nowhere\.txt does not exist"):
        editor_context.check(QueryContext(mentions=[Mention("nowhere.txt")]), str(tmp_path))
    with pytest.raises(ParamsError, match="is a folder, not a file"):
        editor_context.check(QueryContext(mentions=[Mention(".")]), str(tmp_path))
