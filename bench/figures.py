"""The figures of issue 9, each measured against its reference in the same run, the
two interleaved (A B A B ...) with the process tree left to go quiet before each run.

Every function takes the shared `Bench` and returns the table rows it measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench import procs
from bench.direct import DirectClient, one_shot
from bench.harness import Bench, start_to_initialize
from bench.model import FigureResult
from bench.progress_check import check_stream
from bench.stats import summary

STREAM_TOKENS = 20_000
STREAM_PROMPT = f"long {STREAM_TOKENS}"
STREAM_TEXT = "".join(f"w{i} " for i in range(STREAM_TOKENS))
HELLO = "hello"
BARE_SERVER = [sys.executable, str(Path(__file__).with_name("bare_server.py"))]
# CLI processes allowed over maxLiveSessions + prewarm before the RSS figure gives up
# (a session still closing, a spare being replaced).
RSS_SLACK = 2


async def _warm_direct(bench: Bench, turns: int = 1) -> DirectClient:
    client = DirectClient(bench.env, str(bench.cwd))
    await client.connect()
    for _ in range(turns):
        await client.turn(HELLO)
    bench.tracker.note()
    return client


async def startup(bench: Bench) -> list[FigureResult]:
    """Server start to `initialize` answered, dave-lsp vs a bare pygls server."""
    row = FigureResult(
        "startup",
        "server start to initialize answered",
        "bare pygls server",
        "<=",
        1.3,
        "s",
    )

    dave: list[float] = []
    bare: list[float] = []
    for _ in range(bench.reps.startup):
        await bench.quiet()
        dave.append(await start_to_initialize(bench, [sys.executable, "-m", "dave_lsp"], "startup"))
        await bench.quiet()
        bare.append(await start_to_initialize(bench, BARE_SERVER, "bare"))
    row.note = "process spawned to initialize answered; both get the same initializationOptions"
    return [row.judge(dave, bare)]


async def ttft(bench: Bench) -> list[FigureResult]:
    """First `token` report (editor side) vs the direct SDK's first text delta, both on
    a connected client that has answered before."""
    row = FigureResult(
        "ttft",
        "time to first token over stdio (editor side)",
        "ClaudeSDKClient directly",
        "<=",
        1.05,
        "s",
    )
    dave: list[float] = []
    direct: list[float] = []
    begins: list[float] = []  # query sent to its `begin` report: the stdio round trip
    async with bench.dave("ttft") as server:
        client = server.client
        for _ in range(2):
            await client.query("ttft", HELLO)
        sdk = await _warm_direct(bench, 2)
        try:
            for _ in range(bench.reps.ttft):
                await bench.quiet()
                query = await client.query("ttft", HELLO)
                dave.append(query.ttft)
                begins.append(query.reports[0][0] - query.sent)
                await bench.quiet()
                direct.append((await sdk.turn(HELLO)).first_token)
        finally:
            await sdk.close()
    row.judge(dave, direct)
    row.extra["begin_report_s"] = summary(begins)
    row.note = (
        f"prompt {HELLO!r} on a warm session; direct: first text_delta StreamEvent; "
        f"query to its begin report (stdio round trip): {statistics.median(begins) * 1000:.1f} ms"
    )
    return [row]


async def stream(bench: Bench) -> list[FigureResult]:
    """A 20,000-token stream: tokens/s through dave-lsp vs the direct SDK, and the
    `$/progress` reports it took (coalescing)."""
    rate = FigureResult(
        "throughput",
        f"tokens/s, {STREAM_TOKENS:,}-token stream",
        "ClaudeSDKClient directly",
        ">=",
        0.95,
        "tokens/s",
    )
    reports = FigureResult(
        "progress",
        "$/progress reports/s during that stream",
        "bound: 1 per 16 ms + 1 per 4 KB",
        "<=",
        1.0,
        "reports/s",
    )
    dave: list[float] = []
    direct: list[float] = []
    checks = []
    # CPU seconds per stream: dave's server process vs this process running the SDK.
    cpu: dict[str, list[float]] = {
        "dave_server": [],
        "dave_cli": [],
        "direct_python": [],
        "direct_cli": [],
    }
    remaining = bench.reps.stream
    generation = 0
    async with bench.dave("stream") as server:
        client = server.client
        while remaining > 0:
            generation += 1
            session = f"stream-{generation}"
            await client.query(session, HELLO)
            sdk = await _warm_direct(bench)
            try:
                for _ in range(min(remaining, bench.reps.streams_per_client)):
                    remaining -= 1
                    await bench.quiet()
                    clis = server.cli_pids()
                    before = procs.cpu_seconds([client.pid]), procs.cpu_seconds(clis)
                    query = await client.query(session, STREAM_PROMPT)
                    span = query.token_reports[-1][0] - query.first_token.result()
                    dave.append(STREAM_TOKENS / span)
                    checks.append(check_stream(query, STREAM_TEXT))
                    cpu["dave_server"].append(procs.cpu_seconds([client.pid]) - before[0])
                    cpu["dave_cli"].append(procs.cpu_seconds(clis) - before[1])
                    await bench.quiet()
                    assert sdk.pid is not None
                    before = procs.self_cpu_seconds(), procs.cpu_seconds([sdk.pid])
                    turn = await sdk.turn(STREAM_PROMPT)
                    if "".join(turn.text) != STREAM_TEXT:
                        raise RuntimeError("the direct SDK stream's text is not the expected one")
                    direct.append(STREAM_TOKENS / (turn.last_token - turn.first_token))
                    cpu["direct_python"].append(procs.self_cpu_seconds() - before[0])
                    cpu["direct_cli"].append(procs.cpu_seconds([sdk.pid]) - before[1])
            finally:
                await sdk.close()
            await client.delete(session)
    rate.judge(dave, direct)
    rate.extra["cpu_seconds_per_stream"] = cpu
    median = {k: statistics.median(v) for k, v in cpu.items() if v}
    rate.note = "tokens / (last token - first token), both sides"
    if len(median) == 4:
        rate.note += (
            f"; CPU s per stream: dave server {median['dave_server']:.2f} vs SDK in-process "
            f"{median['direct_python']:.2f}, CLI {median['dave_cli']:.2f} vs "
            f"{median['direct_cli']:.2f}"
        )
    reports_per_s = [c.rate for c in checks]
    bounds = [c.bound_rate for c in checks]
    reports.judge(reports_per_s, bounds)
    reports.extra |= {
        "reports": [c.reports for c in checks],
        "seconds": [c.seconds for c in checks],
        "first_report_text": checks[0].first_text if checks else "",
        "first_token_alone": all(c.first_alone for c in checks),
        "text_exact": all(c.exact for c in checks),
        "largest_report_chars": max((c.largest for c in checks), default=0),
        "largest_gap_ms": max((c.largest_gap * 1000 for c in checks), default=0),
    }
    count = statistics.median(c.reports for c in checks) if checks else 0
    reports.note = (
        f"median {count:.0f} token reports per stream; first token sent alone: "
        f"{reports.extra['first_token_alone']}; concatenation exact: "
        f"{reports.extra['text_exact']}"
    )
    if reports.status == "pass" and not (
        reports.extra["first_token_alone"] and reports.extra["text_exact"]
    ):
        reports.status = "fail"
    return [rate, reports]


async def followup(bench: Bench) -> list[FigureResult]:
    """A follow-up's whole answer in a persistent session vs one-shot `query()`, which
    starts a new CLI process per message."""
    row = FigureResult(
        "followup",
        "follow-up latency, persistent session",
        "one-shot query() per message",
        "<=",
        0.10,
        "s",
    )
    dave: list[float] = []
    once: list[float] = []
    async with bench.dave("followup") as server:
        client = server.client
        await client.query("followup", HELLO)
        for _ in range(bench.reps.followup):
            await bench.quiet()
            dave.append((await client.query("followup", HELLO)).latency)
            await bench.quiet()
            once.append((await one_shot(HELLO, bench.env, str(bench.cwd))).result)
    row.note = "query sent to answer received; one-shot: query() called to its ResultMessage"
    return [row.judge(dave, once)]


async def _wait_clis(bench: Bench, pids: Callable[[], list[int]], count: int) -> None:
    """Wait (up to 20 s) for `count` CLI processes, then for the tree to go quiet."""
    for _ in range(200):
        if len(pids()) >= count:
            break
        await asyncio.sleep(0.1)
    await bench.quiet()


async def prewarm(bench: Bench) -> list[FigureResult]:
    """A new session's first answer, with a prewarmed spare client, vs a follow-up in a
    warm session of the same server."""
    row = FigureResult(
        "prewarm",
        "new session's first answer, prewarm 1",
        "follow-up in a warm session",
        "<=",
        1.5,
        "s",
    )
    first: list[float] = []
    warm: list[float] = []
    async with bench.dave("prewarm", prewarm=1, maxLiveSessions=8) as server:
        missing = server.unsupported("prewarm")
        client = server.client
        await client.query("warm", HELLO)
        await client.query("warm", HELLO)
        spares = 0 if missing else 1
        for i in range(bench.reps.prewarm):
            await _wait_clis(bench, server.cli_pids, 1 + spares)
            session = f"new-{i}"
            first.append((await client.query(session, HELLO)).latency)
            await client.delete(session)
            await _wait_clis(bench, server.cli_pids, 1 + spares)
            warm.append((await client.query("warm", HELLO)).latency)
    row.judge(first, warm)
    floor = await _direct_first_turns(bench, bench.reps.diagnostics)
    if floor:
        row.extra["direct_first_turn_vs_followup"] = floor
    if missing:
        cold = row.ratio
        row.ratio = None
        row.unsupported(
            f"n/a: option not supported ({', '.join(missing)}); without prewarm the ratio "
            f"was {cold:.1f}"
        )
    else:
        row.note = "whole answers; the spare is replaced between runs"
        if floor:
            row.note += (
                f"; the CLI alone (direct SDK): first turn after connect / follow-up = "
                f"{floor['ratio']:.2f}"
            )
    return [row]


async def _direct_first_turns(bench: Bench, samples: int) -> dict[str, object]:
    """The CLI's own first-turn cost: a direct client's first turn after connect vs its
    next one. A prewarm that only connects cannot get below this ratio."""
    firsts: list[float] = []
    follows: list[float] = []
    for _ in range(samples):
        sdk = DirectClient(bench.env, str(bench.cwd))
        await sdk.connect()
        bench.tracker.note()
        try:
            await bench.quiet()
            firsts.append((await sdk.turn(HELLO)).result)
            await bench.quiet()
            follows.append((await sdk.turn(HELLO)).result)
        finally:
            await sdk.close()
    if not firsts:
        return {}
    return {
        "first_turn_s": firsts,
        "followup_s": follows,
        "ratio": statistics.median(firsts) / statistics.median(follows),
    }


async def concurrent(bench: Bench) -> list[FigureResult]:
    """Eight sessions streaming at once vs one, wall time, at a real model's pace."""
    prompt = bench.reps.concurrent_prompt
    row = FigureResult(
        "concurrent",
        "8 sessions streaming at once, wall time",
        "1 session",
        "<=",
        1.5,
        "s",
    )
    eight: list[float] = []
    one: list[float] = []
    async with bench.dave("concurrent", maxLiveSessions=8) as server:
        client = server.client
        sessions = [f"c{i}" for i in range(8)]
        await asyncio.gather(*(client.query(s, HELLO) for s in sessions))

        async def wall(group: list[str]) -> float:
            start = time.perf_counter()
            queries = await asyncio.gather(*(client.query(s, prompt) for s in group))
            end = max(q.answered for q in queries)
            return end - start

        for _ in range(bench.reps.concurrent):
            await bench.quiet()
            eight.append(await wall(sessions))
            await bench.quiet()
            one.append(await wall(sessions[:1]))
    _, count, pause = prompt.split()
    row.note = (
        f"prompt {prompt!r}: {count} tokens {pause} ms apart, a real model's pace; "
        f"the machine has {os.cpu_count()} cores"
    )
    row.judge(eight, one)
    if bench.reps.diagnostics:
        direct = await _direct_concurrent(bench, prompt, bench.reps.diagnostics)
        row.extra["direct_sdk_8_vs_1"] = direct
        row.note += f"; 8 direct SDK clients at once vs 1: {direct['ratio']:.2f}"
    return [row]


async def _direct_concurrent(bench: Bench, prompt: str, pairs: int) -> dict[str, object]:
    """The same 8-vs-1 comparison with eight ClaudeSDKClients in this process and no
    dave-lsp: what the CLIs themselves cost on this machine."""
    clients = [DirectClient(bench.env, str(bench.cwd)) for _ in range(8)]
    eight: list[float] = []
    one: list[float] = []
    try:
        for client in clients:
            await client.connect()
        await asyncio.gather(*(c.turn(HELLO) for c in clients))
        bench.tracker.note()
        for _ in range(pairs):
            await bench.quiet()
            start = time.perf_counter()
            await asyncio.gather(*(c.turn(prompt) for c in clients))
            eight.append(time.perf_counter() - start)
            await bench.quiet()
            start = time.perf_counter()
            await clients[0].turn(prompt)
            one.append(time.perf_counter() - start)
    finally:
        for client in clients:
            with contextlib.suppress(Exception):
                await client.close()
    return {
        "eight_s": eight,
        "one_s": one,
        "ratio": statistics.median(eight) / statistics.median(one),
    }


async def rss(bench: Bench) -> list[FigureResult]:
    """RSS of the server plus its descendants after N sessions with maxLiveSessions 8,
    vs one CLI process; and its growth from N to 2N sessions."""
    low, high = bench.reps.rss_sessions
    row = FigureResult(
        "rss",
        f"RSS of server + CLIs after {low} sessions, maxLiveSessions 8",
        "one CLI process",
        "<=",
        9.5,
        "MB",
    )
    flat = FigureResult(
        "rss_growth",
        f"RSS after {high} sessions vs after {low}",
        f"RSS after {low} sessions",
        "<=",
        1.10,
        "MB",
    )
    sdk = await _warm_direct(bench)
    try:
        await bench.quiet()
        reference = []
        for _ in range(3):
            assert sdk.pid is not None
            reference.append(procs.tree_rss_kb(sdk.pid)[0] / 1024)
            await asyncio.sleep(0.3)
    finally:
        await sdk.close()
    samples: dict[int, list[float]] = {}
    counts: dict[int, int] = {}
    async with bench.dave("rss", maxLiveSessions=8, prewarm=1) as server:
        missing = server.unsupported("maxLiveSessions", "prewarm")
        if "maxLiveSessions" in missing:
            note = "n/a: option not supported (maxLiveSessions); not starting 50 CLI processes"
            return [row.unsupported(note), flat.unsupported(note)]
        limit = 8 + (0 if "prewarm" in missing else 1) + RSS_SLACK
        client = server.client
        for i in range(high):
            await client.query(f"rss-{i}", HELLO)
            bench.tracker.note()
            if len(server.cli_pids()) > limit:
                await bench.quiet()  # sessions still closing, a spare being replaced
                live = server.cli_pids()
                if len(live) > limit:
                    note = (
                        f"n/a: maxLiveSessions not enforced ({len(live)} CLI processes "
                        f"after {i + 1} sessions)"
                    )
                    return [row.unsupported(note), flat.unsupported(note)]
            if i + 1 in (low, high):
                await bench.quiet()
                taken = []
                for _ in range(3):
                    taken.append(procs.tree_rss_kb(server.client.pid)[0] / 1024)
                    await asyncio.sleep(0.3)
                samples[i + 1] = taken
                counts[i + 1] = len(server.cli_pids())
    row.judge(samples[low], reference)
    flat.judge(samples[high], samples[low])
    row.extra.update(cli_processes=counts, rss_mb=samples, one_cli_mb=reference)
    row.note = f"CLI processes live: {counts[low]} after {low}, {counts[high]} after {high}"
    flat.note = "flat: the live set is bounded, so more sessions must not mean more memory"
    if missing:
        row.note += f"; not supported: {', '.join(missing)}"
    return [row, flat]


Measure = Callable[[Bench], Awaitable[list[FigureResult]]]

# --only NAME: the figure's name, or the group that measures it.
FIGURES: dict[str, Measure] = {
    "startup": startup,
    "ttft": ttft,
    "throughput": stream,
    "progress": stream,
    "followup": followup,
    "prewarm": prewarm,
    "concurrent": concurrent,
    "rss": rss,
    "rss_growth": rss,
}
ORDER: list[Measure] = [startup, ttft, stream, followup, prewarm, concurrent, rss]

# The ACP figures (issue 19), side by side with claude-agent-acp: bench/acp.py.
from bench import acp as _acp  # noqa: E402

FIGURES.update(_acp.FIGURES)
ORDER += _acp.ORDER

# What checkpoints of the session's folder cost a follow-up (issue 27): bench/checkpoint.py.
from bench import checkpoint as _checkpoint  # noqa: E402

FIGURES.update(_checkpoint.FIGURES)
ORDER += _checkpoint.ORDER

# What dave/rewind costs against a follow-up (issue 27): bench/rewind.py.
from bench import rewind as _rewind  # noqa: E402

FIGURES.update(_rewind.FIGURES)
ORDER += _rewind.ORDER

# The VS Code extension's own (provisioned) server vs dave-lsp on PATH (issue 28):
# bench/provisioned.py.
from bench import provisioned as _own  # noqa: E402

FIGURES.update(_own.FIGURES)
ORDER += _own.ORDER
