"""What the Neovim plugin's tests share: reading the chat and what the plugin asked and
sent, prompts that script the fake model, diff tabs, jedi, and a Neovim with a backend of a
test's own. The fixtures are in tests/nvim/conftest.py; the Neovim itself in nvim.py."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from dave_lsp.testing import FakeModelServer
from tests.harness.nvim import SERVER_CMD, Editor, editor
from tests.harness.processes import cli_processes


def cli_pids() -> set[int]:
    """Live Claude Code CLI processes, as processes.py counts them."""
    return set(cli_processes())


PLAIN_PROMPT = pytest.mark.parametrize("review_diff", [False], ids=["plain-prompt"])


CONTEXT_OFF = pytest.mark.parametrize("active_file", [False], ids=["context-off"])


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


def bash(command: str) -> str:
    """A prompt whose scripted model runs the command with its Bash tool."""
    return "tool Bash " + json.dumps({"command": command})


def prompts(e: Editor) -> list[dict[str, Any]]:
    """The vim.ui.select prompts so far: their prompt, kind and items as shown."""
    return e.lua(
        "return vim.tbl_map(function(p) return { prompt = p.prompt, kind = p.kind,"
        " items = p.items } end, T.prompts)"
    )


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


def press_in_chat(e: Editor, keys: str) -> None:
    """Goes to the current chat's window and types keys there (Normal mode)."""
    e.lua("vim.api.nvim_set_current_win(vim.fn.win_findbuf(T.session().chat.buf)[1])")
    e.nvim.input(keys)


def warnings(e: Editor) -> list[str]:
    return [n["msg"] for n in e.notes() if n["level"] >= 3]


def prompt_area(e: Editor) -> list[str]:
    return e.lua("return vim.api.nvim_buf_get_lines(T.session().chat.prompt, 0, -1, true)")


def chat_window(e: Editor) -> int:
    return e.lua("return vim.fn.win_findbuf(T.session().chat.buf)[1]")
