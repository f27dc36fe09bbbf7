"""The rewind figure (issue 27): `dave/rewind` of a ten-turn session back to before turn
2, files and conversation, against a follow-up on the same server, interleaved
(A B A B ...). Each of the ten turns writes a file, so the rewind reverts nine change
sets; the reference is a follow-up (`hello`) on a live session.

The rewind's own request is the figure (sent to answered). For Claude it closes the
session's CLI, whose next start resumes a copy of the conversation cut after turn 1:
that next query's latency over a follow-up is in the row's `extra` (`next_query`).
"""

from __future__ import annotations

import statistics
import time

from bench.harness import Bench
from bench.model import FigureResult

TURNS = 10
HELLO = "hello"


async def rewind(bench: Bench) -> list[FigureResult]:
    """dave/rewind of a ten-turn session to turn 2 over a follow-up."""
    row = FigureResult(
        "rewind",
        f"dave/rewind of a {TURNS}-turn session to turn 2 (files and conversation)",
        "a follow-up (hello) on a live session",
        "<=",
        5.0,
        "s",
    )
    rewinds: list[float] = []
    followups: list[float] = []
    nexts: list[float] = []
    restored: list[int] = []
    async with bench.dave("rewind", prewarm=0, permissionMode="acceptEdits") as server:
        client = server.client
        await client.query("warm", HELLO)
        for rep in range(bench.reps.followup):
            session = f"rewind-{rep}"
            for turn in range(1, TURNS + 1):
                await client.query(session, f"write rewind-{rep}-{turn}.txt turn {turn}")
            await bench.quiet()
            followups.append((await client.query("warm", HELLO)).latency)
            await bench.quiet()
            sent = time.perf_counter()
            result = await client.request("dave/rewind", {"sessionId": session, "turn": 2})
            rewinds.append(time.perf_counter() - sent)
            restored.append(len(result["restored"]))
            await bench.quiet()
            nexts.append((await client.query(session, HELLO)).latency)
    row.judge(rewinds, followups)
    follow = statistics.median(followups) if followups else 0.0
    row.extra.update(
        files_restored=restored,
        next_query_s=nexts,
        next_query_over_followup=statistics.median(nexts) / follow if follow else None,
    )
    row.note = (
        f"request sent to answered, {TURNS - 1} change sets reverted each time "
        f"(files restored: {restored}); the next query (the CLI restarted on the cut "
        f"conversation) took {statistics.median(nexts) / follow:.1f}x a follow-up"
        if follow and nexts
        else "no measurement"
    )
    return [row]


FIGURES = {"rewind": rewind}
ORDER = [rewind]
