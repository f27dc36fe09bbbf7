"""Folder trust in the Neovim plugin (issue 24, finding 1), in a real headless Neovim with the
real server, the real Claude Code CLI and the shipped fake model: the first query in a folder
whose Claude Code settings would run code asks, in the chat, whether to trust it (listing what
would run); "no" runs the chat without them; `:Dave trust` loads them from the next query."""

from __future__ import annotations

import json
from pathlib import Path

from tests.harness.nvim import SERVER_CMD, Editor, editor

HOOK = "id > HOOKED"
QUESTION = "Trust this folder's Claude Code settings?"


def hooked_folder(root: Path) -> Path:
    """A repository whose `.claude/settings.json` runs a command when a session starts."""
    work = root / "repo"
    (work / ".claude").mkdir(parents=True)
    hooks = {"SessionStart": [{"hooks": [{"type": "command", "command": HOOK}]}]}
    (work / ".claude" / "settings.json").write_text(json.dumps({"hooks": hooks}))
    return work


def notes(e: Editor) -> list[str]:
    return [n["msg"] for n in e.notes()]


def press_in_chat(e: Editor, keys: str) -> None:
    """Goes to the current chat's window and types keys there (Normal mode)."""
    e.lua("vim.api.nvim_set_current_win(vim.fn.win_findbuf(T.session().chat.buf)[1])")
    e.nvim.input(keys)


def test_the_first_query_asks_to_trust_the_folder_and_trust_runs_its_hook(
    tmp_path: Path, backend_env: dict[str, str]
) -> None:
    work = hooked_folder(tmp_path)
    xdg = {
        f"XDG_{name}_HOME": str(tmp_path / "xdg" / name.lower())
        for name in ("CONFIG", "DATA", "STATE", "CACHE")
    }
    with editor(xdg) as e:
        e.setup(cmd=SERVER_CMD, init_options={"env": backend_env, "cwd": str(work)})
        assert e.nvim.call("getcompletion", "Dave tr", "cmdline") == ["trust"]
        assert "untrust" in e.nvim.call("getcompletion", "Dave un", "cmdline")

        e.command("Dave ask hello")
        e.wait_text(QUESTION, timeout=30)
        e.wait_text(HOOK)
        text = e.text()
        block = text.split(QUESTION, 1)[1]
        assert block.startswith(" 1 hook**"), block
        assert f"hook SessionStart: {HOOK}" in block  # the command in full
        assert "ga trust · gd don't trust" in block
        # The query waits for the answer: nothing is sent yet, and keys typed in another
        # buffer meanwhile stay there (a `y` answers nothing).
        assert e.lua("return #T.queries") == 0
        e.nvim.input("iy<Esc>")
        e.wait(lambda: e.lua("return vim.api.nvim_get_current_line()") == "y", 5, "the typed y")
        assert e.lua("return require('dave.permissions').pending()") == 1
        assert e.lua("return #T.queries") == 0
        assert any(QUESTION in n for n in notes(e))

        press_in_chat(e, "gd")  # the deliberate "don't trust"
        e.wait_text("You said: hello", timeout=30)
        e.wait_idle(timeout=30)
        assert "→ not trusted" in e.text()
        assert not (work / "HOOKED").exists(), "the untrusted folder's hook ran"

        e.command("Dave trust")
        e.wait(lambda: any(n.startswith("dave: trusted ") for n in notes(e)), 15, ":Dave trust")
        e.command("Dave ask again")
        e.wait_text("You said: again", timeout=30)
        e.wait_idle(timeout=30)
        e.wait(lambda: (work / "HOOKED").exists(), 30, "the trusted folder's hook")
        assert e.text().count(QUESTION) == 1, "asked twice about one folder"
        assert [q["prompt"] for q in e.lua("return T.queries")] == ["hello", "again"]

        e.command("Dave untrust")
        e.wait(lambda: any("is not trusted any more" in n for n in notes(e)), 15, ":Dave untrust")
        e.command("checkhealth dave")
        report = "\n".join(e.nvim.current.buffer[:])
        assert "is not trusted: its settings would run 1 hook; they do not load" in report, report
