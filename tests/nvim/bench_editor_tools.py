"""Round trip of the findReferences editor tool through Neovim and jedi-language-server.

    .venv/bin/python tests/nvim/bench_editor_tools.py [calls]

A real headless Neovim (the plugin, jedi attached to a Python buffer), the real server and
CLI, the fake model: one warm-up turn, then one turn whose scripted model calls
`mcp__editor__findReferences` `calls` times (default 10). The server runs behind a tap
that timestamps every JSON-RPC message on the pipe, so a round trip is the time from the
server writing `dave/editor/references` to Neovim's answer arriving, as the server sees
it. The Lua handler's own time (entry to return) is printed too.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1])]


def tap(log_path: str) -> int:
    """Runs `python -m dave_lsp` between stdin/stdout and it, logging each message."""
    log = open(log_path, "a", buffering=1)  # open for the process's life
    server = subprocess.Popen(
        [sys.executable, "-m", "dave_lsp"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    lock = threading.Lock()

    def pump(src: IO[bytes], dst: IO[bytes], direction: str) -> None:
        buf = b""
        while chunk := os.read(src.fileno(), 65536):
            now = time.monotonic()
            dst.write(chunk)
            dst.flush()
            buf += chunk
            while True:
                head, sep, rest = buf.partition(b"\r\n\r\n")
                if not sep:
                    break
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
                if len(rest) < length:
                    break
                msg, buf = json.loads(rest[:length]), rest[length:]
                brief = {k: msg[k] for k in ("id", "method") if k in msg}
                brief["response"] = "result" in msg or "error" in msg
                with lock:
                    log.write(f"{now:.6f} {direction} {json.dumps(brief)}\n")
        dst.close()

    out = threading.Thread(target=pump, args=(server.stdout, sys.stdout.buffer, "s2c"), daemon=True)
    out.start()
    assert server.stdin is not None
    pump(sys.stdin.buffer, server.stdin, "c2s")
    code = server.wait()
    out.join(2)
    return code


def bench(calls: int) -> None:
    from dave_lsp.testing import FakeModelServer
    from tests.conftest import backend_env_for
    from tests.harness.nvim import editor

    jedi = str(Path(sys.executable).parent / "jedi-language-server")
    tmp = Path(tempfile.mkdtemp(prefix="dave-bench-"))
    work = tmp / "work"
    work.mkdir()
    a = work / "greeting.py"
    a.write_text('def greet(name):\n    return "hi " + name\n\n\ngreet("x")\n')
    (work / "use.py").write_text('from greeting import greet\n\nprint(greet("y"))\n')
    log = tmp / "tap.log"
    call = ["mcp__editor__findReferences", {"path": str(a), "symbol": "greet"}]
    xdg = {
        f"XDG_{n}_HOME": str(tmp / "xdg" / n.lower()) for n in ("CONFIG", "DATA", "STATE", "CACHE")
    }
    with FakeModelServer() as model, editor(xdg) as e:
        e.setup(
            cmd=[sys.executable, __file__, "--tap", str(log)],
            init_options={"env": backend_env_for(model.url, tmp / "home"), "cwd": str(work)},
        )
        e.command(f"edit {a}")
        client = e.lua(
            "local c, r = ...; return vim.lsp.start({ name = 'jedi', cmd = { c }, root_dir = r })",
            jedi,
            str(work),
        )
        e.wait(
            lambda: e.lua(
                "local c = vim.lsp.get_client_by_id(...); return c and c.initialized", client
            ),
            20,
        )
        e.lua(
            """
            local tools = require('dave.tools'); T.ms = {}
            local handler = tools.handlers.references
            tools.handlers.references = function(p)
              local t = vim.uv.hrtime(); local r = handler(p)
              table.insert(T.ms, (vim.uv.hrtime() - t) / 1e6); return r
            end"""
        )
        e.lua("require('dave').ask(...)", "steps " + json.dumps([call]))  # warm-up
        e.wait_text("Tool said:", 60)
        e.wait_idle(60)
        e.lua("require('dave').ask(...)", "steps " + json.dumps([call] * calls))
        e.wait(lambda: e.lua("return #T.ms") >= calls + 1, 120, "the calls")
        e.wait_idle(60)
        handler_ms = e.lua("return T.ms")
    sent: dict[int, float] = {}
    trips: list[float] = []
    for line in log.read_text().splitlines():
        stamp, direction, raw = line.split(" ", 2)
        msg = json.loads(raw)
        if direction == "s2c" and msg.get("method") == "dave/editor/references":
            sent[msg["id"]] = float(stamp)
        elif direction == "c2s" and msg["response"] and msg.get("id") in sent:
            trips.append((float(stamp) - sent.pop(msg["id"])) * 1000)

    def show(name: str, cold: float, warm: list[float]) -> None:
        xs = sorted(warm)
        print(
            f"{name}: cold {cold:.1f} ms; warm n={len(xs)} median {statistics.median(xs):.1f} ms,"
            f" min {xs[0]:.1f}, max {xs[-1]:.1f}; all {[round(x, 1) for x in warm]}"
        )

    show("server sends dave/editor/references -> answer", trips[0], trips[1:])
    show("Lua handler, entry -> return", handler_ms[0], handler_ms[1:])


if __name__ == "__main__":
    if sys.argv[1:2] == ["--tap"]:
        sys.exit(tap(sys.argv[2]))
    bench(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
