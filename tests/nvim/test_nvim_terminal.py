"""The keystroke-safety rule in a real terminal: Neovim runs in tmux, the keys are typed with
`tmux send-keys`, the screen is read with `capture-pane`, and pynvim (over Neovim's --listen
socket) only watches. A permission request that arrives while the user types in another
buffer takes no key and answers nothing; a deliberate key in the chat answers it; a file
change arriving in Normal mode takes no focus (its diff tab opens on `:Dave review`)."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pynvim
import pytest

from tests.harness.nvim import NVIM, PLUGIN, SERVER_CMD, alive, descendants, proc, wait_until

TMUX = shutil.which("tmux")
pytestmark = pytest.mark.skipif(TMUX is None, reason="needs tmux")


class Terminal:
    """Neovim in a detached tmux session of its own tmux server."""

    def __init__(self, tmp: Path, env: dict[str, str], init: Path, file: Path) -> None:
        assert TMUX and NVIM
        self.socket_name = f"dave-test-{uuid.uuid4().hex[:8]}"
        self.listen = str(tmp / "nvim.sock")
        argv = ["env", *(f"{k}={v}" for k, v in env.items())]
        argv += [NVIM, "--clean", "-n", "--listen", self.listen, "-u", str(init), str(file)]
        command = " ".join(shlex.quote(a) for a in argv)
        self.tmux("new-session", "-d", "-x", "160", "-y", "45", "-s", "t", command)
        wait_until(lambda: Path(self.listen).exists(), 15, "nvim's socket")
        self.nvim = pynvim.attach("socket", path=self.listen)
        self.pid: int = self.nvim.call("getpid")
        self.seen = {proc(self.pid)}

    def tmux(self, *args: str) -> str:
        assert TMUX
        out = subprocess.run(
            [TMUX, "-L", self.socket_name, *args], check=True, capture_output=True, text=True
        )
        return out.stdout

    def keys(self, *keys: str) -> None:
        self.seen.update(descendants(self.pid))
        self.tmux("send-keys", "-t", "t", *keys)

    def type(self, text: str) -> None:
        self.keys("-l", text)

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "t")

    def lua(self, code: str) -> object:
        self.seen.update(descendants(self.pid))
        return self.nvim.exec_lua(code)

    def close(self) -> None:
        self.seen.update(descendants(self.pid))
        try:
            self.nvim.command("qa!")
        except Exception:
            pass
        try:
            wait_until(
                lambda: not any(alive(p) for p in self.seen), 10, "nvim and the server to exit"
            )
        finally:
            subprocess.run([TMUX or "tmux", "-L", self.socket_name, "kill-server"], check=False)


@pytest.fixture
def terminal(tmp_path: Path, backend_env: dict[str, str]) -> Iterator[Terminal]:
    work = tmp_path / "work"
    work.mkdir()
    xdg = {
        f"XDG_{name}_HOME": str(tmp_path / "xdg" / name.lower())
        for name in ("CONFIG", "DATA", "STATE", "CACHE")
    }
    opts = {"cmd": SERVER_CMD, "init_options": {"env": backend_env, "cwd": str(work)}}
    init = tmp_path / "init.lua"
    init.write_text(
        "\n".join(
            [
                f"vim.opt.rtp:prepend({json.dumps(str(PLUGIN))})",
                "vim.o.shortmess = vim.o.shortmess .. 'F'",
                f"require('dave').setup(vim.json.decode({json.dumps(json.dumps(opts))}))",
            ]
        )
    )
    term = Terminal(tmp_path, xdg, init, work / "notes.txt")
    try:
        yield term
    finally:
        term.close()


PENDING = "return require('dave.permissions').pending()"


def test_a_request_while_typing_in_another_buffer_takes_no_keys(
    terminal: Terminal, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    command = {"command": "touch ran.txt"}
    terminal.lua(f"require('dave').ask('tool Bash ' .. {json.dumps(json.dumps(command))})")
    terminal.keys("i")
    terminal.type("before ")
    wait_until(lambda: terminal.lua(PENDING) == 1, 60, "the permission request")
    # The user goes on typing as if a prompt had popped up: a choice's number, Enter, y,
    # Escape, then the chat's answer keys, all in their own buffer.
    terminal.type("typed while asked")
    terminal.keys("Enter")
    terminal.type("1")
    terminal.keys("Enter")
    terminal.type("y")
    terminal.keys("Escape")
    terminal.type("ga")
    terminal.keys("Enter")
    terminal.type("gd")
    wait_until(lambda: "typed while asked" in terminal.screen(), 10, "the typed text on screen")
    file_lines = "return vim.api.nvim_buf_get_lines(vim.fn.bufnr('notes.txt'), 0, -1, true)"
    wait_until(
        lambda: terminal.lua(file_lines) == ["before typed while asked", "1", "y"], 10, "the text"
    )
    assert terminal.lua("return vim.bo.filetype") != "dave"  # still in the user's buffer
    assert terminal.lua(PENDING) == 1  # nothing was answered...
    assert not (work / "ran.txt").exists()  # ...so nothing ran
    chat = "return require('dave.sessions').peek().chat:text()"
    text = str(terminal.lua(chat))
    assert "**? Allow Bash touch ran.txt?**" in text and "touch ran.txt" in text
    assert "→" not in text.split("**? Allow Bash", 1)[1]
    messages = "return vim.api.nvim_exec2('messages', { output = true }).output"
    assert "answer in the chat" in str(terminal.lua(messages))

    # A deliberate answer: `ga` in the chat window allows it.
    terminal.lua(
        "vim.api.nvim_set_current_win(vim.fn.win_findbuf(require('dave.sessions').peek().chat.buf)[1])"
    )
    terminal.type("ga")
    wait_until(lambda: (work / "ran.txt").exists(), 30, "the allowed command to run")
    wait_until(
        lambda: "→ allowed" in str(terminal.lua(chat)), 10, "the block to say it was allowed"
    )
    assert terminal.lua(PENDING) == 0

    # A file change that arrives in Normal mode takes no focus either: the `:w` the user types
    # then saves their own file and accepts nothing; the diff tab opens on :Dave review.
    idle = "return require('dave.sessions').peek().query == nil"
    wait_until(lambda: terminal.lua(idle), 30, "the turn to end")
    terminal.lua("vim.api.nvim_set_current_win(vim.fn.bufwinid('notes.txt'))")
    terminal.lua("require('dave').ask('write made.txt made')")
    wait_until(lambda: terminal.lua(PENDING) == 1, 60, "the proposal")
    terminal.type(":w")
    terminal.keys("Enter")
    notes = work / "notes.txt"
    wait_until(lambda: notes.exists(), 10, "the user's file to be saved")
    assert notes.read_text() == "before typed while asked\n1\ny\n"
    assert terminal.lua("return #vim.api.nvim_list_tabpages()") == 1
    assert str(terminal.lua("return vim.api.nvim_buf_get_name(0)")).endswith("notes.txt")
    assert terminal.lua(PENDING) == 1 and not (work / "made.txt").exists()
    assert "made.txt waits for review" in str(terminal.lua(messages))
    terminal.type(":Dave review")
    terminal.keys("Enter")
    wait_until(lambda: terminal.lua("return #vim.api.nvim_list_tabpages()") == 2, 10, "the tab")
    terminal.type(":w")  # now in the proposal: accepts it
    terminal.keys("Enter")
    wait_until(lambda: (work / "made.txt").exists(), 30, "the accepted write")
    assert (work / "made.txt").read_text() == "made"
