"""The `startup_own` figure (issue 28): the server the VS Code extension installs for
itself, started the way the extension starts it (`<venv>/bin/python -m dave_lsp`),
against a `dave-lsp` on PATH (this venv's console script), spawn to `initialize`
answered, interleaved. Target: at most 50 ms more (the figure's ratio limit is that
50 ms over the reference's median).

The venv is made as `editors/vscode/src/server/provision.ts` makes it: `python -m venv`
with this Python, then `pip install` of the wheel built from this repository (its
dependencies from pip's configured index). It is kept in
`~/.cache/dave-lsp-bench/own/venv` for later runs, which reinstall only dave-lsp itself
when the wheel changed (the tree's files are in it); `DAVE_BENCH_OWN_VENV` names
another one (an extension's `globalStorage/dave-lsp.dave-lsp/server/venv`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.harness import Bench, start_to_initialize
from bench.model import FigureResult

ROOT = Path(__file__).resolve().parent.parent
LIMIT_S = 0.050
CACHE = Path.home() / ".cache" / "dave-lsp-bench"


def _build_wheel(out: Path) -> Path:
    name = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from setuptools import build_meta as b; print(b.build_wheel(sys.argv[1]))",
            str(out),
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()[-1]
    return out / name


def own_venv() -> tuple[Path, str]:
    """The provisioned venv, made now if there is none; and how it came."""
    given = os.environ.get("DAVE_BENCH_OWN_VENV")
    if given:
        return Path(given), "DAVE_BENCH_OWN_VENV"
    venv = CACHE / "own" / "venv"
    marker_file = venv / "dave-install.json"
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-input"]
    with tempfile.TemporaryDirectory(prefix="dave-bench-wheel-") as tmp:
        wheel = _build_wheel(Path(tmp))
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        with contextlib.suppress(OSError, ValueError):
            if json.loads(marker_file.read_text()).get("sha256") == digest:
                return venv, "cached"
            # The same dependencies: only dave-lsp itself is new.
            subprocess.run([*pip, "--no-deps", "--force-reinstall", str(wheel)], check=True)
            marker_file.write_text(json.dumps({"wheel": wheel.name, "sha256": digest}))
            return venv, "cached, dave-lsp reinstalled"
        shutil.rmtree(venv, ignore_errors=True)
        started = time.monotonic()
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([*pip, str(wheel)], check=True)
        seconds = time.monotonic() - started
        marker = {"wheel": wheel.name, "sha256": digest, "seconds": round(seconds, 1)}
        marker_file.write_text(json.dumps(marker))
        return venv, f"provisioned now in {seconds:.1f} s"


async def startup_own(bench: Bench) -> list[FigureResult]:
    """The extension's own server vs dave-lsp on PATH, spawn to initialize answered."""
    row = FigureResult(
        "startup_own",
        "own (provisioned) server start to initialize answered",
        "dave-lsp on PATH",
        "<=",
        1.0,
        "s",
    )
    on_path = Path(sys.executable).with_name("dave-lsp")
    if not on_path.exists():
        return [row.unsupported(f"no {on_path}: install dave-lsp into this venv")]
    try:
        venv, how = await asyncio.to_thread(own_venv)
    except (subprocess.CalledProcessError, OSError) as exc:
        return [row.unsupported(f"could not provision a venv: {exc}")]

    own: list[float] = []
    path: list[float] = []
    for _ in range(bench.reps.startup):
        await bench.quiet()
        own_command = [str(venv / "bin" / "python"), "-m", "dave_lsp"]
        own.append(await start_to_initialize(bench, own_command, "startup-own"))
        await bench.quiet()
        path.append(await start_to_initialize(bench, [str(on_path)], "startup-path"))
    # "At most 50 ms more" as the ratio the table judges: 50 ms over the reference.
    row.limit = 1 + LIMIT_S / statistics.median(path)
    row.judge(own, path)
    added = statistics.median([a - b for a, b in zip(own, path, strict=True)])
    row.extra.update(added_s=added, venv=str(venv), venv_source=how)
    row.note = f"adds {added * 1000:+.0f} ms (median of pairs; target <= +50 ms); venv {how}"
    return [row]


FIGURES = {"startup_own": startup_own}
ORDER = [startup_own]
