"""Prints the figures the reliability tests counted (queries run, faults injected,
inputs tried, anything lost), for docs/reliability.md."""

from __future__ import annotations

from typing import Any

from tests.reliability.helpers import TALLY


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if TALLY:
        terminalreporter.section("reliability figures")
        for name, count in sorted(TALLY.items()):
            terminalreporter.write_line(f"{name}: {count}")
