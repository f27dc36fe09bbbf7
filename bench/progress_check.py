"""Checks of one streamed query's `$/progress` token reports: how many, how fast, and
whether coalescing kept the first token alone and the text exact."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from bench.lspclient import Query

# dave-lsp's coalescing (dave_lsp/lsp/progress.py): at most one merged report per 16 ms or
# per 4 KB of text, the first token of a turn sent at once.
FLUSH_SECONDS = 0.016
FLUSH_CHARS = 4096


@dataclass
class StreamCheck:
    reports: int  # token reports
    seconds: float  # first to last token report, as the client received them
    chars: int
    first_text: str
    first_alone: bool
    exact: bool
    largest: int  # characters in the largest report
    largest_gap: float  # seconds between two consecutive reports, at most

    @property
    def rate(self) -> float:
        return self.reports / self.seconds if self.seconds > 0 else float(self.reports)

    @property
    def bound(self) -> float:
        """Reports allowed: the first token, one per 16 ms, one per 4 KB, a last flush."""
        return 2 + self.seconds / FLUSH_SECONDS + self.chars / FLUSH_CHARS

    @property
    def bound_rate(self) -> float:
        return self.bound / self.seconds if self.seconds > 0 else self.bound


def check_stream(query: Query, expected: str) -> StreamCheck:
    reports = query.token_reports
    times = [t for t, _ in reports]
    texts = [v["text"] for _, v in reports]
    first_piece = expected.split(" ", 1)[0] + " "
    gaps = [b - a for a, b in itertools.pairwise(times)]
    return StreamCheck(
        reports=len(reports),
        seconds=times[-1] - times[0] if times else 0.0,
        chars=sum(len(t) for t in texts),
        first_text=texts[0] if texts else "",
        first_alone=bool(texts) and texts[0] == first_piece,
        exact="".join(texts) == expected,
        largest=max((len(t) for t in texts), default=0),
        largest_gap=max(gaps, default=0.0),
    )
