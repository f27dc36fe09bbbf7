"""The checkpoint figure (issue 27): what checkpoints of the session's folder cost a
follow-up, in a folder of 5,000 files (20 MB), against the same server with
`checkpoints: {enabled: false}`, both live at once and interleaved (A B A B ...).

Two rows: `checkpoint`, a follow-up that answers `hello` (the checkpoint before the
turn; no second record, since no tool ran), and `checkpoint_bash`, a follow-up whose
model runs a Bash command that changes a file (the checkpoint before, the second record
after, and the change listed). Both servers run in bypassPermissions, so nobody answers
a permission request mid-measurement.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from bench.harness import Bench
from bench.model import FigureResult

FILES = 5_000
FILE_BYTES = 4_000  # 5,000 x 4,000 bytes: 20 MB
HELLO = "hello"
BASH = "tool Bash " + json.dumps(
    {"command": "date +%s%N > bench-out.txt", "description": "write a file"}
)


def make_folder(folder: Path) -> Path:
    """5,000 files of 4,000 bytes in 50 folders (made once per run)."""
    if folder.exists():
        return folder
    for i in range(FILES):
        sub = folder / f"d{i % 50:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"f{i:05d}.txt").write_bytes(os.urandom(FILE_BYTES // 2).hex().encode())
    return folder


async def checkpoint(bench: Bench) -> list[FigureResult]:
    """A follow-up (hello; and one that runs Bash) with checkpoints over the same without."""
    rows = [
        FigureResult(
            "checkpoint",
            "follow-up (hello) in 5,000 files / 20 MB, checkpoints on",
            "the same, checkpoints off",
            "<=",
            1.15,
            "s",
        ),
        FigureResult(
            "checkpoint_bash",
            "follow-up running Bash in 5,000 files / 20 MB, checkpoints on",
            "the same, checkpoints off",
            "<=",
            1.5,  # context: the issue sets no target for a turn that runs Bash
            "s",
        ),
    ]
    folder = make_folder(bench.tmp / "checkpoint-work")
    options: dict[str, Any] = {
        "cwd": str(folder),
        "prewarm": 0,
        "permissionMode": "bypassPermissions",
        "env": {**bench.env, "IS_SANDBOX": "1"},  # bypass as root (docs/architecture.md)
    }
    times: dict[tuple[str, bool], list[float]] = {}
    async with (
        bench.dave("checkpoint-on", **options) as on,
        bench.dave("checkpoint-off", checkpoints={"enabled": False}, **options) as off,
    ):
        servers = {True: on, False: off}
        for server in servers.values():
            # The first turn builds the checkpoint's index (0.6 s for 20 MB): not a follow-up.
            await server.client.query("cp", HELLO)
            await server.client.query("cp", BASH)
        for rep in range(bench.reps.followup):
            for prompt in (HELLO, BASH):
                # Which server goes first alternates, so neither always runs right
                # after the other's turn.
                for enabled in (True, False) if rep % 2 == 0 else (False, True):
                    server = servers[enabled]
                    await bench.quiet()
                    query = await server.client.query("cp", prompt)
                    times.setdefault((prompt, enabled), []).append(query.latency)
        listed = (await on.client.query("cp", BASH)).response.result()
    for row, prompt in zip(rows, (HELLO, BASH), strict=True):
        row.judge(times[(prompt, True)], times[(prompt, False)])
    changed = [change["path"] for change in listed.get("changes", [])]
    rows[1].note = f"the Bash turn's changes listed with checkpoints on: {changed}"
    rows[0].note = "query sent to answer received; a server with checkpoints off is the reference"
    return rows


FIGURES = {"checkpoint": checkpoint, "checkpoint_bash": checkpoint}
ORDER = [checkpoint]
