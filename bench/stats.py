"""Summaries of repeated measurements: median and spread, and ratios of paired runs."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any


def quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile of a non-empty sequence."""
    data = sorted(values)
    if len(data) == 1:
        return data[0]
    pos = q * (len(data) - 1)
    low = int(pos)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (pos - low)


def summary(values: Sequence[float]) -> dict[str, Any]:
    """n, median, p25, p75, min, max and the raw values."""
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "median": statistics.median(values),
        "p25": quantile(values, 0.25),
        "p75": quantile(values, 0.75),
        "min": min(values),
        "max": max(values),
        "values": list(values),
    }


def ratio_of_medians(measured: Sequence[float], reference: Sequence[float]) -> float:
    return statistics.median(measured) / statistics.median(reference)


def paired_ratios(measured: Sequence[float], reference: Sequence[float]) -> list[float]:
    """measured[i] / reference[i] for each interleaved pair."""
    return [a / b for a, b in zip(measured, reference, strict=False) if b]
