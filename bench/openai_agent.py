"""A Read-then-Edit turn through the OpenAI backend's own agent loop, beside the same turn
through the Claude backend (the bundled Claude Code CLI), both against the shipped fake
model: `python -m bench.openai_agent [--runs 10]`.

Each backend gets one warm session (opened, and one turn run, before timing), in
acceptEdits so neither asks; each timed turn is the fake model's `steps` command (Read,
then Edit the file from `v<i>` to `v<i+1>`): three model requests and two tools. The
turns of the two backends are interleaved, so both see the same load. Prints the median
and the p25-p75 of each, in milliseconds, and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from dave_lsp.backends.base import BackendSession, PermissionAnswer, SessionConfig
from dave_lsp.backends.claude.session import ClaudeSession
from dave_lsp.backends.openai.session import OpenAISession
from dave_lsp.backends.registry import OpenAIOptions
from dave_lsp.events import Done
from dave_lsp.testing import FakeModelServer


async def _never_asked(*_args: Any) -> PermissionAnswer:
    raise AssertionError("acceptEdits asks nothing for a Read and an Edit in the cwd")


def _prompt(path: Path, i: int) -> str:
    edit = {"file_path": str(path), "old_string": f"v{i}", "new_string": f"v{i + 1}"}
    return "steps " + json.dumps([["Read", {"file_path": str(path)}], ["Edit", edit]])


async def _turn(session: BackendSession, path: Path, i: int) -> float:
    started = time.perf_counter()
    events = [e async for e in session.query(_prompt(path, i), ())]
    elapsed = time.perf_counter() - started
    assert isinstance(events[-1], Done), events
    _check(path, i + 1)  # after the clock stopped: a blocking read is fine here
    return elapsed


def _check(path: Path, version: int) -> None:
    text = path.read_text()
    assert text == f"value v{version}\n", text


def _quartiles(values: list[float]) -> tuple[float, float, float]:
    q = statistics.quantiles(values, n=4)
    return q[0] * 1000, statistics.median(values) * 1000, q[2] * 1000


async def measure(runs: int) -> dict[str, list[float]]:
    with FakeModelServer() as fake, tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        home = root / "home"
        home.mkdir()
        env = {
            "ANTHROPIC_BASE_URL": fake.url,
            "ANTHROPIC_API_KEY": "sk-ant-fake-bench-key-0123456789",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "CLAUDE_CODE_MAX_RETRIES": "0",
            "HOME": str(home),
            "OPENAI_API_KEY": "sk-fake-bench",
        }
        sessions: dict[str, BackendSession] = {}
        files: dict[str, Path] = {}
        for name in ("openai", "claude"):
            cwd = root / name
            cwd.mkdir()
            files[name] = cwd / "file.txt"
            config = SessionConfig(
                session_id=f"bench-{name}",
                cwd=str(cwd),
                model="fake-model" if name == "openai" else None,
                permission_mode="acceptEdits",
                env=env,
                backend=name,
                backend_options=OpenAIOptions(base_url=fake.url + "/v1")
                if name == "openai"
                else None,
            )
            cls = OpenAISession if name == "openai" else ClaudeSession
            session: BackendSession = cls(config, _never_asked)
            await session.open()
            sessions[name] = session
        times: dict[str, list[float]] = {name: [] for name in sessions}
        try:
            for i in range(runs + 1):  # the first turn of each warms it up
                for name, session in sessions.items():
                    files[name].write_text(f"value v{i}\n")
                    elapsed = await _turn(session, files[name], i)
                    if i:
                        times[name].append(elapsed)
        finally:
            for session in sessions.values():
                await session.close()
        return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    times = asyncio.run(measure(args.runs))
    for name, values in times.items():
        p25, median, p75 = _quartiles(values)
        print(
            f"{name:7s} median {median:7.1f} ms  (p25-p75 {p25:.1f}-{p75:.1f} ms, n={len(values)})"
        )
    ratio = statistics.median(times["openai"]) / statistics.median(times["claude"])
    print(f"openai / claude: {ratio:.3f}")


if __name__ == "__main__":
    main()
