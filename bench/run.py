"""`python -m bench`: run the figures, print the table, write JSON (and a plot).

Every figure is a ratio against a reference measured in the same run, interleaved, so
a noisy machine moves both sides alike; absolute medians are printed as context.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import procs, report
from bench.figures import FIGURES, ORDER, Measure
from bench.harness import Bench
from bench.model import FigureResult

log = logging.getLogger("bench")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="dave-lsp benchmarks: each figure as a ratio against a reference "
        "measured in the same run (real bundled Claude Code CLI, shipped fake model).",
    )
    parser.add_argument(
        "--quick", action="store_true", help="fewer repetitions: the whole run in under 2 minutes"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(FIGURES),
        metavar="NAME",
        help=f"run only this figure (repeatable): {', '.join(sorted(FIGURES))}",
    )
    parser.add_argument(
        "--plot", action="store_true", help="also draw bench/results/<timestamp>.png (matplotlib)"
    )
    parser.add_argument(
        "--markdown",
        type=Path,
        metavar="RESULTS_JSON",
        help="print the Markdown table of a results file (for bench/README.md) and exit",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    return parser.parse_args(argv)


def _selected(only: list[str] | None) -> list[Measure]:
    if not only:
        return list(ORDER)
    wanted = {FIGURES[name] for name in only}
    return [m for m in ORDER if m in wanted]


async def _run(args: argparse.Namespace) -> tuple[list[FigureResult], list[int]]:
    rows: list[FigureResult] = []
    async with Bench(quick=args.quick) as bench:
        for measure in _selected(args.only):
            name = measure.__name__
            started = time.monotonic()
            print(f"[bench] {name} ...", file=sys.stderr, flush=True)
            try:
                got = await measure(bench)
            except Exception as exc:
                log.debug("figure %s failed", name, exc_info=True)
                traceback.print_exc(file=sys.stderr)
                got = [
                    FigureResult(name, name, "", "<=", 0, "", status="error", note=f"error: {exc}")
                ]
            if args.only:
                got = [r for r in got if r.name in args.only] or got
            for row in got:
                row.extra["figure_seconds"] = round(time.monotonic() - started, 1)
                print(f"[bench]   {row.name}: {row.status} ratio={row.ratio}", file=sys.stderr)
            print(
                f"[bench] {name} took {time.monotonic() - started:.0f} s",
                file=sys.stderr,
                flush=True,
            )
            rows += got
        leftovers = bench.tracker.leftovers()
    # Anything still alive after every server stopped was left behind: end it, and say so.
    await asyncio.sleep(0.5)
    leftovers = [p for p in leftovers if procs.alive(p)]
    procs.kill(leftovers)
    _reap_adopted()
    return rows, leftovers


def _reap_adopted() -> None:
    """Collect orphans that ended while this process was their subreaper."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0] != 0:
            pass


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.markdown is not None:
        print(report.markdown_report(args.markdown))
        return 0
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    started = time.monotonic()
    when = datetime.now(UTC)
    stamp = when.strftime("%Y%m%dT%H%M%SZ")
    rows, leftovers = asyncio.run(_run(args))
    elapsed = time.monotonic() - started
    meta: dict[str, Any] = {
        "timestamp": when.isoformat(),
        "mode": "quick" if args.quick else "full",
        "only": args.only,
        "seconds": round(elapsed, 1),
        "machine": report.machine(),
        "command": "python -m bench " + " ".join(sys.argv[1:] if argv is None else argv),
        "leftover_cli_processes": leftovers,
    }
    print()
    print(report.table(rows))
    path = report.write_json(rows, meta, stamp)
    print(f"\n{meta['mode']} run, {elapsed:.0f} s; results: {path} (and latest.json)")
    if args.plot:
        _, note = report.plot(rows, stamp)
        print(note)
    if leftovers:
        print(f"LEFT BEHIND: CLI processes {leftovers} (killed)", file=sys.stderr)
        return 2
    print("no CLI process left behind")
    failed = [r.name for r in rows if r.status in ("fail", "error")]
    if failed:
        print(f"missed or failed: {', '.join(failed)}")
    return 0
