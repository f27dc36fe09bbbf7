"""Result types: one `FigureResult` per row of the table, and how it is judged."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from bench.stats import paired_ratios, ratio_of_medians, summary

Status = Literal["pass", "fail", "n/a", "error"]


@dataclass
class FigureResult:
    """One figure: its measurements, its reference's, and the verdict."""

    name: str
    title: str
    reference: str
    op: Literal["<=", ">="]
    limit: float
    unit: str  # of the absolute values: "s", "tokens/s", "reports/s", "MB", "x"
    status: Status = "n/a"
    ratio: float | None = None
    measured: dict[str, Any] = field(default_factory=dict)
    reference_values: dict[str, Any] = field(default_factory=dict)
    pair_ratios: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def target(self) -> str:
        return f"{self.op} {self.limit:g}"

    def judge(self, measured: list[float], reference: list[float]) -> FigureResult:
        """Set the ratio, its spread, and pass/fail.

        The ratio is the median of the interleaved pairs' ratios (each pair ran under the
        same conditions), its spread their p25-p75; the ratio of the two medians is kept
        as `ratio_of_medians` for context.
        """
        self.measured = summary(measured)
        self.reference_values = summary(reference)
        if not measured or not reference:
            self.status = "error"
            self.note = self.note or "no measurements"
            return self
        pairs = paired_ratios(measured, reference)
        self.pair_ratios = summary(pairs)
        self.ratio = statistics.median(pairs) if pairs else None
        self.extra["ratio_of_medians"] = ratio_of_medians(measured, reference)
        if self.ratio is None:
            self.status = "error"
            return self
        self.verdict()
        return self

    def verdict(self) -> None:
        assert self.ratio is not None
        ok = self.ratio <= self.limit if self.op == "<=" else self.ratio >= self.limit
        self.status = "pass" if ok else "fail"

    def unsupported(self, note: str) -> FigureResult:
        self.status = "n/a"
        self.note = note
        return self

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["target"] = self.target
        return out
