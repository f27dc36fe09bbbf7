"""What every figure shares: the fake model, a throwaway HOME and state folder, the
backend environment, dave-lsp servers started the way an editor starts them, waiting
for the process tree to go quiet, and the record of every CLI process seen."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import procs
from bench.lspclient import DAVE_CMD, LspClient, RpcError

log = logging.getLogger("bench")

# Options added by the lifecycle work (issue 4); a server without them logs them as
# unknown and ignores them, which the figures that need them report as "n/a".
LIFECYCLE_OPTIONS = ("prewarm", "maxLiveSessions", "idleTimeoutSeconds")
_PR_SET_CHILD_SUBREAPER = 36


@dataclass(frozen=True)
class Reps:
    """How many interleaved pairs (or sessions) each figure measures."""

    startup: int
    ttft: int
    stream: int  # 20,000-token streams per side
    streams_per_client: int  # streams on one session before a fresh one (history grows)
    followup: int
    prewarm: int
    concurrent: int
    concurrent_prompt: str
    rss_sessions: tuple[int, int]
    # Context runs that explain a figure (0: skipped, as in --quick): direct-SDK first
    # turns after connect, and eight direct clients at once.
    diagnostics: int

    @classmethod
    def for_mode(cls, quick: bool) -> Reps:
        if quick:
            return cls(3, 6, 2, 2, 3, 3, 2, "slow 40 25", (10, 14), 0)
        return cls(12, 40, 9, 3, 16, 10, 6, "slow 80 25", (50, 100), 4)


class FakeModel:
    """The shipped fake model in its own process (`python -m dave_lsp.testing`), so it
    never competes with a direct-SDK reference for this process's GIL."""

    def __init__(self, log_path: Path) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = log_path
        self.url = ""

    def start(self) -> None:
        with self.log_path.open("wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "dave_lsp.testing"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        deadline = time.monotonic() + 30
        text = ""
        while time.monotonic() < deadline and self.process.poll() is None:
            text = self.log_path.read_text(errors="replace")
            found = re.search(r"http://[0-9.]+:[0-9]+", text)
            if found is not None:
                self.url = found.group(0)
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the fake model did not start: {text.strip()[-300:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Bench:
    """One benchmark run's shared state; use as an async context manager."""

    def __init__(self, quick: bool) -> None:
        self.quick = quick
        self.reps = Reps.for_mode(quick)
        self.tracker = procs.Tracker()
        self.tmp = Path(tempfile.mkdtemp(prefix="dave-bench-"))
        self.fake = FakeModel(self.tmp / "fake-model.log")
        self.home = self.tmp / "home"
        self.cwd = self.tmp / "work"
        self.logs = self.tmp / "logs"
        self._servers = 0
        self.live: list[LspClient] = []

    async def __aenter__(self) -> Bench:
        for folder in (self.home, self.cwd, self.logs):
            folder.mkdir(parents=True)
        # Orphans of our children become ours, so a CLI left behind is still found.
        with contextlib.suppress(Exception):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        self.fake.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        for client in list(self.live):
            with contextlib.suppress(Exception):
                await client.stop()
        self.fake.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    @property
    def env(self) -> dict[str, str]:
        """The backend environment: the real CLI pointed at the fake model."""
        return {
            "ANTHROPIC_BASE_URL": self.fake.url,
            "ANTHROPIC_API_KEY": "sk-ant-fake-bench-key-0123456789",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "CLAUDE_CODE_MAX_RETRIES": "0",
            "HOME": str(self.home),
        }

    @property
    def server_env(self) -> dict[str, str]:
        """The server process's own environment additions: its state stays in tmp."""
        return {"XDG_STATE_HOME": str(self.tmp / "state"), "PYTHONUNBUFFERED": "1"}

    def stderr_file(self, label: str) -> Path:
        self._servers += 1
        return self.logs / f"{self._servers:03d}-{label}.log"

    async def spawn(self, command: list[str], label: str) -> tuple[LspClient, Path]:
        """Start a server process (not yet initialized); its stderr goes to a log file."""
        path = self.stderr_file(label)
        with path.open("wb") as err:
            client = LspClient(command, stderr=err)
            await client.start(self.server_env)
        self.live.append(client)
        return client, path

    async def stop(self, client: LspClient) -> None:
        self.tracker.note()
        await client.stop()
        if client in self.live:
            self.live.remove(client)

    def options(self, **extra: Any) -> dict[str, Any]:
        return {"env": self.env, "cwd": str(self.cwd), **extra}

    @contextlib.asynccontextmanager
    async def dave(self, label: str, **extra: Any) -> AsyncIterator[Server]:
        """A dave-lsp server, initialized with the backend env plus `extra` options."""
        client, log_path = await self.spawn(DAVE_CMD, label)
        server = Server(client, log_path, extra)
        try:
            try:
                await asyncio.wait_for(client.initialize(self.options(**extra)), 60)
            except RpcError as exc:
                rejected = [k for k in extra if k in LIFECYCLE_OPTIONS]
                if not rejected:
                    raise
                # A server that rejects the lifecycle options: run without them.
                await self.stop(client)
                client, log_path = await self.spawn(DAVE_CMD, label + "-retry")
                kept = {k: v for k, v in extra.items() if k not in LIFECYCLE_OPTIONS}
                await asyncio.wait_for(client.initialize(self.options(**kept)), 60)
                server = Server(client, log_path, kept, rejected={k: str(exc) for k in rejected})
            yield server
        finally:
            await self.stop(server.client)

    async def quiet(self, within: float = 15.0) -> bool:
        """Wait until this benchmark's process tree is (nearly) idle."""
        me = os.getpid()
        self.tracker.note()
        return await asyncio.to_thread(
            procs.wait_quiet, lambda: procs.descendants(me), timeout=within
        )


async def start_to_initialize(bench: Bench, command: list[str], label: str) -> float:
    """Seconds from spawning `command` to its `initialize` answer; then it is stopped."""
    client, _ = await bench.spawn(command, label)
    await asyncio.wait_for(client.initialize(bench.options()), 60)
    elapsed = time.perf_counter() - client.started
    await bench.stop(client)
    return elapsed


class Server:
    """An initialized dave-lsp server and what it said about its options."""

    def __init__(
        self,
        client: LspClient,
        log_path: Path,
        options: dict[str, Any],
        rejected: dict[str, str] | None = None,
    ) -> None:
        self.client = client
        self.log_path = log_path
        self.options = options
        self.rejected = rejected or {}

    def unsupported(self, *keys: str) -> list[str]:
        """The given options the server rejected or logged as unknown (and ignored)."""
        try:
            stderr = self.log_path.read_text(errors="replace")
        except OSError:
            stderr = ""
        said = stderr + "\n".join(message for _, message in self.client.logs)
        unknown_lines = [line for line in said.splitlines() if "unknown" in line.lower()]
        return [
            key
            for key in keys
            if key in self.rejected or any(key in line for line in unknown_lines)
        ]

    def cli_pids(self) -> list[int]:
        return procs.cli_descendants(self.client.pid)
