"""What every backend shares: one-line error text, the pump that drains a stream into
a queue and always ends with one `Ended`, and the `Done` of a finished turn."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterable, Callable
from typing import TypeVar

import attrs

from dave_lsp import events as ev

T = TypeVar("T")


def one_line(text: str, limit: int = 400) -> str:
    """`text` on one line (white space folded), cut to `limit` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


@attrs.frozen
class Ended:
    """The stream ended: normally (`error` None) or with an exception."""

    error: BaseException | None = None


async def pump(
    source: AsyncIterable[T],
    put: Callable[[T | Ended], None],
    divert: Callable[[T], bool] | None = None,
) -> None:
    """Read `source` into `put` until it ends, then put one `Ended`. `divert` may take an
    item instead (returning True), for a fast path that skips the queue. Cancelling the
    pump puts nothing: whoever cancelled it knows the stream is gone."""
    try:
        async for item in source:
            if divert is None or not divert(item):
                put(item)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # every failure reaches the turn as the stream's end
        put(Ended(exc))
    else:
        put(Ended())


def finished(
    *,
    text: str,
    stop_reason: str,
    usage: ev.Usage,
    cost_usd: float,
    started: float,
    backend_session_id: str,
) -> ev.Done:
    """The `Done` of a turn that began at `started` (time.monotonic())."""
    return ev.Done(
        text=text,
        stop_reason=stop_reason,
        usage=usage,
        cost_usd=cost_usd,
        duration_ms=int((time.monotonic() - started) * 1000),
        backend_session_id=backend_session_id,
    )
